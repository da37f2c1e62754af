import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { setTimeout } from 'node:timers/promises';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RotationClient } from '../../packages/rotor/src/client';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import type { Rotator } from '../../packages/rotor/src/rotators/rotator';
import { createRotorWorker } from '../../packages/rotor/src/worker';
import { KeyedSemaphore, RateLimiter, throttledStore } from '../../packages/rotor/src/worker/throttle';
import { stackEnv, uniqueName } from '../helpers/env';
import { busiestWindow, observedStore, pool, WRITE_OPERATIONS } from '../helpers/observed-store';
import { createSecret, labels, logsIn, passwordAt, pgSecret, rotationClient, store, withAdmin } from '../helpers/stack';
import { rotorWorkflowBundle } from '../helpers/workflow-bundle';

/**
 * A fleet-wide rotation: 100 secrets on one database rotate at once through one worker whose Secrets Manager
 * writes are capped and whose concurrency per target database is bounded. The test measures what reached the
 * store and the database.
 */

const SECRETS = 100;
// Below what the local store takes at its busiest (moto peaks near 12 writes/s here), so the guards bind.
const WRITES_PER_SECOND = 8;
const PER_TARGET = 2;
const TARGET_LATENCY_MS = 100;
const taskQueue = uniqueName('it-throughput');
let connection: NativeConnection;
let worker: Worker;
let running: Promise<void>;
let rotor: RotationClient;
const writes: number[] = [];
const inFlight = new Map<string, number>();
const peak = new Map<string, number>();

/**
 * Counts the rotator calls in flight per target, and keeps the peak. Each call takes at least
 * TARGET_LATENCY_MS, as a database across a network does: a local one answers in a few milliseconds, so calls would
 * seldom overlap and the per-target limit would go untested.
 */
function measuringRotators(): typeof rotators {
  const track = async <T>(key: string, call: () => Promise<T>): Promise<T> => {
    inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    peak.set(key, Math.max(peak.get(key) ?? 0, inFlight.get(key)!));
    try {
      const [result] = await Promise.all([call(), setTimeout(TARGET_LATENCY_MS)]);
      return result;
    } finally {
      inFlight.set(key, inFlight.get(key)! - 1);
    }
  };
  const wrap = <S>(inner: Rotator<S>): Rotator<S> => ({
    ...inner,
    set: (id, v, ctx) => track(inner.target(v.current), () => inner.set(id, v, ctx)),
    test: (id, v, ctx) => track(inner.target(v), () => inner.test(id, v, ctx)),
    restore: (id, v, ctx) => track(inner.target(v.want), () => inner.restore(id, v, ctx)),
    retire: (id, v, ctx) => track(inner.target(v.current), () => inner.retire(id, v, ctx)),
  });
  return Object.fromEntries(
    Object.entries(rotators).map(([kind, r]) => [kind, wrap(r as Rotator<unknown>)]),
  ) as typeof rotators;
}

interface Fleet {
  secretId: string;
  username: string;
  password: string;
  versionId: string;
}
let fleet: Fleet[];

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const base = uniqueName('rotor_fleet').replace(/-/g, '_');
  const members = Array.from({ length: SECRETS }, (_, i) => ({
    secretId: uniqueName(`it/fleet-${i}`),
    username: `${base}_${i}`,
    password: `Init-${i}-${Math.random().toString(36).slice(2)}`,
  }));
  await withAdmin(async (admin) => {
    for (const m of members)
      await admin.query(`CREATE ROLE ${escapeIdentifier(m.username)} LOGIN PASSWORD ${escapeLiteral(m.password)}`);
  });
  fleet = await pool(members, 10, async (m) => ({
    ...m,
    versionId: await createSecret(m.secretId, pgSecret(m.username, m.password)),
  }));

  connection = await NativeConnection.connect({ address: stackEnv('TEMPORAL_ADDRESS') });
  const workflowBundle = await rotorWorkflowBundle();
  worker = await createRotorWorker({
    workflowBundle,
    connection,
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue,
    store: throttledStore(
      observedStore(store, (op) => WRITE_OPERATIONS.has(op) && writes.push(performance.now())),
      new RateLimiter(WRITES_PER_SECOND),
    ),
    rotators: measuringRotators(),
    targets: new KeyedSemaphore(PER_TARGET),
    maxConcurrentActivityTaskExecutions: 100,
  });
  running = worker.run();
  rotor = await rotationClient(taskQueue);
}, 240_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await connection?.close();
  await rotor?.client.connection.close();
});

describe(`${SECRETS} secrets rotating at once`, () => {
  it(`never write to Secrets Manager more than ${WRITES_PER_SECOND} times in any second, nor open more than ${PER_TARGET} rotations on one database`, async () => {
    const started = performance.now();
    await pool(fleet, 20, (m) => rotor.rotate(m.secretId, { graceMs: 0 }));
    const outcomes = await pool(fleet, 50, (m) => rotor.wait(m.secretId));
    const seconds = (performance.now() - started) / 1000;
    expect(
      outcomes.filter((o) => o.outcome !== 'completed').map((o) => (o.outcome === 'failed' ? o.message : o.outcome)),
    ).toEqual([]);

    // Every write in a sliding one-second window, at its worst.
    const sorted = [...writes].sort((a, b) => a - b);
    const worst = busiestWindow(sorted);
    const spanSeconds = (sorted.at(-1)! - sorted[0]!) / 1000;
    console.log(
      `${SECRETS} rotations in ${seconds.toFixed(1)}s: ${sorted.length} store writes, ${(sorted.length / spanSeconds).toFixed(1)}/s on average, ` +
        `${worst} in the busiest second (ceiling ${WRITES_PER_SECOND}); peak rotations per database ${JSON.stringify(Object.fromEntries(peak))}`,
    );
    expect(sorted.length).toBeGreaterThanOrEqual(SECRETS * 3);
    // Each limit holds, and is reached: the guards bound the load, they do not serialise it.
    expect(worst).toBe(WRITES_PER_SECOND);
    expect([...peak.values()]).toEqual([PER_TARGET]);
    // 100 rotations at the local store's pace take under a minute here: a budget, not an assertion on speed.
  }, 360_000);

  it('moved every label, and the new passwords log in where the old ones do not', async () => {
    const after = await pool(fleet, 10, async (m) => ({ m, l: await labels(m.secretId) }));
    for (const { m, l } of after) expect(l).toMatchObject({ previous: m.versionId, versions: 2 });
    for (const m of fleet.filter((_, i) => i % 20 === 0)) {
      expect(await logsIn(m.username, await passwordAt(m.secretId, 'AWSCURRENT'))).toBe(true);
      expect(await logsIn(m.username, m.password)).toBe(false);
    }
  });
});
