import { Client as PgClient, escapeIdentifier } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore, type StoredAuditEvent } from '../../packages/rotor/src/audit/audit-store';
import { InvalidInputError, UnavailableError } from 'rotor-consumers/core';
import { stackEnv, uniqueName } from '../helpers/env';

const tables: string[] = [];
const stores: AuditStore[] = [];

/** A table of its own for this file (and test), dropped at the end. */
function newTable(): string {
  const table = uniqueName('rotor_audit_it').replace(/-/g, '_');
  tables.push(table);
  return table;
}

async function open(table: string, options: { pageSize?: number } = {}): Promise<AuditStore> {
  const store = await AuditStore.connect(stackEnv('ROTOR_AUDIT_URL'), { table, ...options });
  stores.push(store);
  return store;
}

async function withAudit<T>(work: (db: PgClient) => Promise<T>): Promise<T> {
  const db = new PgClient({ connectionString: stackEnv('ROTOR_AUDIT_URL') });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

/** The events of one rotation of `secretId`, as a workflow reports them. */
function rotationEvents(secretId: string, runId = uniqueName('run')): StoredAuditEvent[] {
  const base = { secretId, workflowId: `rotate/${secretId}`, runId };
  const at = (n: number) => new Date(Date.UTC(2025, 5, 1, 3, 0, n, 250)).toISOString();
  const id = (n: number) => `${base.workflowId}/${runId}/${n}`;
  return [
    {
      ...base,
      eventId: id(0),
      at: at(0),
      kind: 'triggered',
      actor: 'cli:alice',
      detail: { reason: 'scheduled', force: false },
    },
    {
      ...base,
      eventId: id(1),
      at: at(1),
      kind: 'step',
      step: 'create',
      phase: 'creating',
      outcome: 'created',
      versionId: 'v-2',
      durationMs: 812,
    },
    {
      ...base,
      eventId: id(2),
      at: at(2),
      kind: 'step',
      step: 'set',
      phase: 'setting',
      outcome: 'already-set',
      versionId: 'v-2',
      durationMs: 40,
    },
    {
      ...base,
      eventId: id(3),
      at: at(3),
      kind: 'step',
      step: 'test',
      phase: 'testing',
      outcome: 'failed',
      versionId: 'v-2',
      durationMs: 10_000,
    },
    {
      ...base,
      eventId: id(4),
      at: at(4),
      kind: 'step',
      step: 'compensate',
      phase: 'compensating',
      outcome: 'completed',
      durationMs: 95,
    },
    {
      ...base,
      eventId: id(5),
      at: at(5),
      kind: 'outcome',
      outcome: 'compensated',
      durationMs: 11_500,
      detail: { attempts: 3, note: null },
    },
  ];
}

afterAll(async () => {
  for (const store of stores) await store.close();
  await withAudit(async (db) => {
    for (const table of tables) await db.query(`DROP TABLE IF EXISTS ${escapeIdentifier(table)}`);
  });
});

describe('AuditStore', () => {
  let audit: AuditStore;
  beforeAll(async () => {
    audit = await open(newTable());
  });

  it('names the audit database without its password', () => {
    const url = new URL(stackEnv('ROTOR_AUDIT_URL'));
    expect(audit.description).toBe(`audit database ${url.pathname.slice(1)} at ${url.hostname}:${url.port || 5432}`);
    if (url.password) expect(audit.description).not.toContain(decodeURIComponent(url.password));
  });

  it("returns a rotation's events in order, writing a retried event once", async () => {
    const secretId = uniqueName('it/audit');
    const events = rotationEvents(secretId);
    for (const e of events) expect(await audit.append(e)).toBe('appended');
    expect(await audit.append(events[3]!)).toBe('duplicate');
    expect(await audit.append(events[0]!)).toBe('duplicate');

    const history = await audit.history(secretId);
    expect(history.map((r) => r.eventId)).toEqual(events.map((e) => e.eventId));
    expect(history.map(({ seq: _s, recordedAt: _r, prevHash: _p, hash: _h, ...event }) => event)).toEqual(events);
    expect(history[0]!.recordedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (let i = 1; i < history.length; i++) {
      expect(history[i]!.seq).toBe(history[i - 1]!.seq + 1);
      expect(history[i]!.prevHash).toBe(history[i - 1]!.hash);
    }
    expect((await audit.history(secretId, { limit: 2 })).map((r) => r.eventId)).toEqual(
      events.slice(-2).map((e) => e.eventId),
    );
  });

  it("tells when a secret's events of one kind since a time happened, newest first (the bake's daily cap)", async () => {
    const secretId = uniqueName('it/audit-times');
    const base = { secretId, workflowId: `rotate/${secretId}`, runId: 'r' };
    const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
    const rows: StoredAuditEvent[] = [
      { ...base, eventId: `${secretId}/0`, at: hoursAgo(30), kind: 'auto-rollback' },
      { ...base, eventId: `${secretId}/1`, at: hoursAgo(20), kind: 'auto-rollback' },
      { ...base, eventId: `${secretId}/2`, at: hoursAgo(10), kind: 'outcome', outcome: 'rolled-back' },
      { ...base, eventId: `${secretId}/3`, at: hoursAgo(2), kind: 'auto-rollback' },
      { ...base, secretId: `${secretId}-other`, eventId: `${secretId}/4`, at: hoursAgo(1), kind: 'auto-rollback' },
    ];
    for (const row of rows) await audit.append(row);
    expect(await audit.timesOf(secretId, 'auto-rollback', hoursAgo(24), 100)).toEqual([rows[3]!.at, rows[1]!.at]);
    expect(await audit.timesOf(secretId, 'auto-rollback', hoursAgo(24), 1)).toEqual([rows[3]!.at]);
  });

  it('keeps one linear chain when 20 appends race from two processes, duplicates included', async () => {
    const other = await open(tables[0]!);
    const secretId = uniqueName('it/audit-race');
    const unique = Array.from({ length: 14 }, (_, n): StoredAuditEvent => ({
      eventId: `race/${secretId}/${n}`,
      at: new Date(Date.UTC(2025, 5, 1, 4, 0, n)).toISOString(),
      secretId,
      kind: 'step',
      step: 'set',
      outcome: n % 2 ? 'completed' : 'failed',
    }));
    const attempts = [...unique, ...unique.slice(0, 6)];
    const results = await Promise.all(attempts.map((e, i) => (i % 2 ? other : audit).append(e)));
    expect(results.filter((r) => r === 'appended')).toHaveLength(14);
    expect(results.filter((r) => r === 'duplicate')).toHaveLength(6);

    const history = await audit.history(secretId);
    expect(new Set(history.map((r) => r.eventId)).size).toBe(14);
    expect(history).toHaveLength(14);
    const verdict = await audit.verify();
    expect(verdict).toMatchObject({ ok: true, problems: [], headHash: history.at(-1)!.hash });
  });

  it('rejects a malformed event naming the field, and writes nothing', async () => {
    const secretId = uniqueName('it/audit-bad');
    const good = rotationEvents(secretId)[0]!;
    await expect(audit.append({ ...good, secretId: '' })).rejects.toThrow(InvalidInputError);
    await expect(
      audit.append({ ...good, detail: { value: { password: 'x' } } as unknown as StoredAuditEvent['detail'] }),
    ).rejects.toThrow(/detail\.value/);
    await expect(audit.append({ ...good, kind: undefined } as unknown as StoredAuditEvent)).rejects.toThrow(/kind/);
    expect(await audit.history(secretId)).toEqual([]);
  });

  it('creates the schema once when several processes connect at the same moment', async () => {
    const table = newTable();
    const racing = await Promise.all([open(table), open(table), open(table)]);
    expect(await racing[1]!.append(rotationEvents('it/audit-ddl')[0]!)).toBe('appended');
    expect(await racing[2]!.verify()).toMatchObject({ ok: true, rows: 1 });
  });

  it('refuses a table name that is not a plain identifier', async () => {
    await expect(AuditStore.connect(stackEnv('ROTOR_AUDIT_URL'), { table: 'x"; DROP TABLE y; --' })).rejects.toThrow(
      InvalidInputError,
    );
  });
});

describe('AuditStore.verify', () => {
  let audit: AuditStore;
  let table: string;
  const secretId = uniqueName('it/audit-tamper');
  beforeAll(async () => {
    table = newTable();
    // A small page, so the walk crosses page boundaries.
    audit = await open(table, { pageSize: 4 });
    for (const e of [...rotationEvents(secretId), ...rotationEvents(secretId)]) await audit.append(e);
  });

  it('passes a clean chain and reports its head hash', async () => {
    const history = await audit.history(secretId);
    expect(await audit.verify()).toEqual({
      ok: true,
      rows: 12,
      headSeq: 12,
      headHash: history.at(-1)!.hash,
      problems: [],
    });
  });

  it('reports the seq of a row edited behind its back', async () => {
    const failed = (await audit.history(secretId)).find((r) => r.outcome === 'failed')!;
    await withAudit((db) =>
      db.query(`UPDATE ${escapeIdentifier(table)} SET outcome = 'completed' WHERE seq = $1`, [failed.seq]),
    );
    const verdict = await audit.verify();
    expect(verdict.ok).toBe(false);
    expect(verdict.problems).toEqual([{ seq: failed.seq, problem: expect.stringContaining('edited') }]);

    await withAudit((db) =>
      db.query(`UPDATE ${escapeIdentifier(table)} SET outcome = 'failed' WHERE seq = $1`, [failed.seq]),
    );
    expect((await audit.verify()).ok).toBe(true);
  });

  it('reports the seq of a deleted middle row', async () => {
    const middle = (await audit.history(secretId))[5]!;
    await withAudit((db) => db.query(`DELETE FROM ${escapeIdentifier(table)} WHERE seq = $1`, [middle.seq]));
    const verdict = await audit.verify();
    expect(verdict).toMatchObject({ ok: false, rows: 11 });
    expect(verdict.problems).toEqual([{ seq: middle.seq, problem: expect.stringContaining('missing') }]);
  });
});

describe('AuditStore.connect', () => {
  it('throws UnavailableError naming the database, never the password, when it cannot connect', async () => {
    const password = 'pw-Never-Shown-9f3a';
    const attempt = AuditStore.connect(`postgres://x:${password}@127.0.0.1:1/db`);
    await expect(attempt).rejects.toThrow(UnavailableError);
    const message = await attempt.catch((e: Error) => e.message);
    expect(message).toContain('audit database db at 127.0.0.1:1');
    expect(message).not.toContain(password);
  });

  it('throws UnavailableError for the URL from the brief, without its password', async () => {
    const error = await AuditStore.connect('postgres://x:y@127.0.0.1:1/db').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).not.toContain('x:y');
  });
});
