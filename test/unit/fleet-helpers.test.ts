import { afterEach, describe, expect, it, vi } from 'vitest';
import { progress } from '../../packages/rotor/src/cli/context';
import { mapLimit } from '../../packages/rotor/src/client/concurrency';
import { rotationQueries } from '../../packages/rotor/src/client/overview';
import { bakeUnlessIncident } from '../../packages/rotor/src/cli/commands/rotate';
import type { BakePolicy } from '../../packages/rotor/src/shared/bake';

describe('mapLimit', () => {
  it('keeps the order, never runs more than the limit at once, and reports each one done', async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    const results = await mapLimit(
      Array.from({ length: 50 }, (_, i) => i),
      7,
      async (n) => {
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, (n * 7) % 5));
        running--;
        return n * 2;
      },
      (done) => seen.push(done),
    );
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
    expect(peak).toBe(7);
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('stops starting calls after the first error and throws it once the others settle', async () => {
    const started: number[] = [];
    await expect(
      mapLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('two failed');
        await new Promise((r) => setTimeout(r, 5));
        return n;
      }),
    ).rejects.toThrow('two failed');
    expect(started.length).toBeLessThan(6);
  });
});

describe('progress', () => {
  const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  afterEach(() => {
    vi.restoreAllMocks();
    if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
    else delete (process.stderr as { isTTY?: boolean }).isTTY;
  });

  it('writes a line on a terminal, clears it at the end, and never with --json or off a terminal', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    const shown = progress('reading schedules');
    shown.tick(10, 10);
    shown.end();
    expect(write.mock.calls.map((c) => String(c[0]))).toEqual(['\r\x1b[Kreading schedules: 10/10', '\r\x1b[K']);

    write.mockClear();
    const json = progress('reading schedules', true);
    json.tick(10, 10);
    json.end();
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    const piped = progress('reading schedules');
    piped.tick(10, 10);
    piped.end();
    expect(write).not.toHaveBeenCalled();
  });

  it('shows the count alone while the total is unknown, at most every 100 ms', () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    let now = 1_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const shown = progress('reading rotations');
    shown.tick(1, 0);
    shown.tick(2, 0);
    now += 100;
    shown.tick(3, 0);
    expect(write.mock.calls.map((c) => String(c[0]))).toEqual([
      '\r\x1b[Kreading rotations: 1',
      '\r\x1b[Kreading rotations: 3',
    ]);
  });
});

describe('rotationQueries', () => {
  it('asks for the running rotations and those of the managed secrets, 100 ids a query', () => {
    const ids = Array.from({ length: 250 }, (_, i) => `prod/db-${i}`);
    const queries = rotationQueries(ids, false);
    expect(queries).toHaveLength(4);
    expect(queries[0]).toBe(`WorkflowType = 'rotateSecret' AND ExecutionStatus = 'Running'`);
    expect(queries[1]).toMatch(
      /^WorkflowType = 'rotateSecret' AND RotorSecretId IN \('prod\/db-0', 'prod\/db-1', .*'prod\/db-99'\)$/,
    );
    expect(queries.slice(1).flatMap((q) => q.match(/'prod\/db-\d+'/g) ?? [])).toHaveLength(250);
  });

  it('reads every rotation with --all, or when an id could not be quoted safely', () => {
    expect(rotationQueries(['prod/db'], true)).toEqual([`WorkflowType = 'rotateSecret'`]);
    expect(rotationQueries(['prod/db', `x') OR ('1' = '1`], false)).toEqual([`WorkflowType = 'rotateSecret'`]);
    expect(
      rotationQueries(['arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf'], false),
    ).toHaveLength(2);
  });
});

describe('bakeUnlessIncident', () => {
  const bake: BakePolicy = {
    windowMs: 60_000,
    minEvents: 10,
    minInstances: 2,
    maxFailureShare: 0.2,
    maxWindowMs: 120_000,
  };
  it('keeps the bake of an ordinary rotation, and drops it for --no-bake and for a grace of 0s on its own', () => {
    expect(bakeUnlessIncident(bake, 3_600_000, undefined)).toEqual({ bake });
    expect(bakeUnlessIncident(bake, 3_600_000, false)).toEqual({});
    // `--grace 0s` alone (no --no-bake): an incident rotation, no automatic rollback.
    expect(bakeUnlessIncident(bake, 0, undefined)).toEqual({});
    expect(bakeUnlessIncident(bake, 30_000, undefined)).toEqual({});
    expect(bakeUnlessIncident(undefined, 3_600_000, undefined)).toEqual({});
  });
});
