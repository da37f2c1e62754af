import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../packages/rotor/src/shared/canonical-json';
import {
  chainRecord,
  GENESIS_HASH,
  hashRecord,
  normaliseEvent,
  verifyLinks,
  verifyRecords,
  type StoredAuditEvent,
  type ChainedRecord,
} from '../../packages/rotor/src/audit/hash-chain';
import { InvalidInputError } from 'rotor-consumers/core';

function event(n: number, overrides: Partial<StoredAuditEvent> = {}): StoredAuditEvent {
  return {
    eventId: `rotate-db/run-1/${n}`,
    at: new Date(Date.UTC(2025, 0, 1, 12, 0, n)).toISOString(),
    secretId: 'prod/db',
    workflowId: 'rotate-db',
    runId: 'run-1',
    kind: 'step',
    step: 'create',
    outcome: 'created',
    versionId: 'v-2',
    durationMs: 120 + n,
    actor: 'schedule',
    detail: { attempt: 1, label: 'AWSPENDING', final: false, note: null },
    ...overrides,
  };
}

/** A valid chain of `count` records, seq 1..count. */
function chain(count: number): ChainedRecord[] {
  const records: ChainedRecord[] = [];
  for (let n = 1; n <= count; n++) records.push(chainRecord(event(n), n, records.at(-1)?.hash ?? GENESIS_HASH));
  return records;
}

describe('canonical hashing', () => {
  it('gives the same hash whatever the order of the keys', () => {
    const a = { ...event(1), seq: 1 };
    const reversed = Object.fromEntries(Object.entries(a).reverse()) as typeof a;
    reversed.detail = Object.fromEntries(Object.entries(a.detail!).reverse());
    expect(canonicalJson(reversed)).toBe(canonicalJson(a));
    expect(hashRecord(GENESIS_HASH, reversed)).toBe(hashRecord(GENESIS_HASH, a));
  });

  it('is deterministic and ignores absent fields', () => {
    const withUndefined = { ...event(1), phase: undefined, seq: 1 };
    expect(hashRecord(GENESIS_HASH, withUndefined)).toBe(hashRecord(GENESIS_HASH, { ...event(1), seq: 1 }));
    expect(hashRecord(GENESIS_HASH, { ...event(1), seq: 1 })).toMatch(/^[0-9a-f]{64}$/);
    expect(canonicalJson({ b: 1, a: { d: [1, 'x'], c: null } })).toBe('{"a":{"c":null,"d":[1,"x"]},"b":1}');
  });

  it('changes when any field, the seq or the previous hash changes', () => {
    const base = { ...event(1), seq: 1 };
    const baseHash = hashRecord(GENESIS_HASH, base);
    const changes: Partial<typeof base>[] = [
      { seq: 2 },
      { eventId: 'other' },
      { at: '2025-01-01T12:00:01.001Z' },
      { secretId: 'prod/other' },
      { workflowId: 'w2' },
      { runId: 'r2' },
      { kind: 'outcome' },
      { step: 'set' },
      { phase: 'setting' },
      { outcome: 'failed' },
      { versionId: 'v-3' },
      { durationMs: 1 },
      { actor: 'cli:mallory' },
      { detail: { ...base.detail, attempt: 2 } },
      { detail: { ...base.detail, extra: true } },
    ];
    for (const change of changes)
      expect(hashRecord(GENESIS_HASH, { ...base, ...change }), JSON.stringify(change)).not.toBe(baseHash);
    expect(hashRecord('f'.repeat(64), base)).not.toBe(baseHash);
  });
});

describe('normaliseEvent', () => {
  it('spells the time as toISOString does and drops null optional fields', () => {
    const normal = normaliseEvent({ ...event(1), at: '2025-01-01T13:00:00+01:00', phase: null });
    expect(normal.at).toBe('2025-01-01T12:00:00.000Z');
    expect(normal).not.toHaveProperty('phase');
  });

  it.each([
    [{ eventId: '' }, 'eventId'],
    [{ secretId: undefined }, 'secretId'],
    [{ kind: 42 as unknown as string }, 'kind'],
    [{ at: 'yesterday' }, 'at'],
    [{ durationMs: 1.5 }, 'durationMs'],
    [{ detail: { nested: { a: 1 } } as unknown as StoredAuditEvent['detail'] }, 'detail.nested'],
    [{ detail: { list: [1] } as unknown as StoredAuditEvent['detail'] }, 'detail.list'],
    [{ detail: { n: Number.NaN } }, 'detail.n'],
    [{ value: 'hunter2' } as Partial<StoredAuditEvent>, '"value"'],
  ])('rejects %j naming the field', (change, field) => {
    expect(() => normaliseEvent({ ...event(1), ...change })).toThrow(InvalidInputError);
    expect(() => normaliseEvent({ ...event(1), ...change })).toThrow(field);
  });
});

describe('verifyRecords', () => {
  it('passes a chain it built and reports its head hash', () => {
    const records = chain(5);
    expect(verifyRecords(records)).toEqual({ ok: true, rows: 5, headHash: records[4]!.hash, problems: [] });
    expect(verifyRecords([])).toEqual({ ok: true, rows: 0, problems: [] });
  });

  it('reports the seq of an edited record', () => {
    const records = chain(5);
    records[2] = { ...records[2]!, outcome: 'completed' };
    const result = verifyRecords(records);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([{ seq: 3, problem: expect.stringContaining('edited') }]);
  });

  it('reports a record whose hash was recomputed after an edit at the next link', () => {
    const records = chain(5);
    const edited = { ...records[2]!, outcome: 'completed' };
    records[2] = { ...edited, hash: hashRecord(edited.prevHash, edited) };
    expect(verifyRecords(records).problems).toEqual([
      { seq: 4, problem: expect.stringContaining('prev_hash does not match the hash of seq 3') },
    ]);
  });

  it('reports the seq of a removed record', () => {
    const records = chain(5);
    records.splice(2, 1);
    const result = verifyRecords(records);
    expect(result.ok).toBe(false);
    expect(result.rows).toBe(4);
    expect(result.problems).toEqual([{ seq: 3, problem: expect.stringContaining('missing') }]);
  });

  it('reports removed first records, and a range of removed records once', () => {
    expect(verifyRecords(chain(4).slice(1)).problems).toEqual([
      { seq: 1, problem: expect.stringContaining('genesis') },
    ]);
    const records = chain(8);
    records.splice(2, 3);
    expect(verifyRecords(records).problems).toEqual([
      { seq: 3, problem: expect.stringContaining('seqs 3..5 are missing') },
    ]);
  });

  it('reports reordered records', () => {
    const records = chain(5);
    [records[1], records[2]] = [records[2]!, records[1]!];
    const result = verifyRecords(records);
    expect(result.ok).toBe(false);
    expect(result.problems).toContainEqual({ seq: 2, problem: expect.stringContaining('out of order') });
  });

  it('gives the same verdict page by page as over the whole chain', () => {
    const records = chain(10);
    records.splice(4, 1);
    records[6] = { ...records[6]!, actor: 'cli:mallory' };
    const whole = verifyRecords(records);
    let position;
    const problems = [];
    for (let i = 0; i < records.length; i += 3) {
      const page = verifyLinks(records.slice(i, i + 3), position);
      position = page.position;
      problems.push(...page.problems);
    }
    expect(problems).toEqual(whole.problems);
    expect(whole.problems.map((p) => p.seq)).toEqual([5, 8]);
    expect(position).toEqual({ rows: 9, seq: 10, hash: records[8]!.hash });
  });
});
