import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RotationClient } from '../../packages/rotor/src/client';
import { rotationWorkflowId } from '../../packages/rotor/src/shared/constants';
import {
  createRotorWorkers,
  MAX_WRITES_PER_STORE_STEP,
  runTogether,
  shutdownAll,
  storeWritesTaskQueue,
} from '../../packages/rotor/src/worker/create-worker';
import { KeyedSemaphore, RateLimiter, throttledStore } from '../../packages/rotor/src/worker/throttle';
import { stackEnv, uniqueName } from '../helpers/env';
import { historiesText } from '../helpers/hygiene';
import { busiestWindow, observedStore, pool, WRITE_OPERATIONS } from '../helpers/observed-store';
import { labels, logsIn, passwordAt, rememberPasswords, roleWithSecret, rotationClient, store } from '../helpers/stack';
import { rotorWorkflowBundle } from '../helpers/workflow-bundle';

/**
 * The store-write ceiling across a fleet: two worker processes (each with its own connection, its own per-process
 * limiter and target bound, as two `rotor worker`s have) rotate one batch of secrets. With
 * `throughput.fleetStoreWritesPerSecond` the cluster holds their writes together under the ceiling; the control,
 * two workers each paced per process at that same number, writes about twice as fast: the failure the fleet
 * ceiling prevents. Writes are timed where they reach the store.
 */

const SECRETS = 24;
const CEILING = 4;
let workflowBundle: Awaited<ReturnType<typeof bundleWorkflowCode>>;
const seen = new Set<string>();
/** The histories of every run's rotations, for the no-password check. */
const histories: string[] = [];
let fleet: Awaited<ReturnType<typeof roleWithSecret>>[];

interface Fleet {
  rotor: RotationClient;
  /** When each write reached the store, per worker process. */
  writes: number[][];
  stop(): Promise<void>;
}

/** Starts two worker processes' worth of Workers on a fresh task queue. */
async function startFleet(options: { fleetPerSecond?: number; perProcessPerSecond: number }): Promise<Fleet> {
  const taskQueue = uniqueName('it-fleet');
  const writes: number[][] = [[], []];
  const parts = await Promise.all(
    writes.map(async (times) => {
      const connection = await NativeConnection.connect({ address: stackEnv('TEMPORAL_ADDRESS') });
      const workers = await createRotorWorkers({
        workflowBundle,
        connection,
        namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
        taskQueue,
        store: throttledStore(
          observedStore(store, (op) => WRITE_OPERATIONS.has(op) && times.push(performance.now())),
          new RateLimiter(options.perProcessPerSecond),
        ),
        targets: new KeyedSemaphore(4),
        maxConcurrentActivityTaskExecutions: 40,
        storeWrites: options.fleetPerSecond !== undefined ? { fleetPerSecond: options.fleetPerSecond } : {},
      });
      return { connection, workers, running: runTogether(workers) };
    }),
  );
  const rotor = await rotationClient(taskQueue);
  return {
    rotor,
    writes,
    async stop() {
      for (const p of parts) shutdownAll(p.workers);
      for (const p of parts) {
        await p.running;
        await p.connection.close();
      }
      await rotor.client.connection.close();
    },
  };
}

/** Rotates every secret at once through `f`; returns the writes' rate over the run and in its busiest second. */
async function rotateAll(
  f: Fleet,
): Promise<{ total: number; perWorker: number[]; average: number; busiest: number; busiestAfterFirstSecond: number }> {
  await pool(fleet, 24, (m) => f.rotor.rotate(m.secretId, { graceMs: 0 }));
  const outcomes = await pool(fleet, 24, (m) => f.rotor.wait(m.secretId));
  expect(
    outcomes.filter((o) => o.outcome !== 'completed').map((o) => (o.outcome === 'failed' ? o.message : o.outcome)),
  ).toEqual([]);
  histories.push((await historiesText(f.rotor.client, f.rotor.taskQueue)).text);
  const all = f.writes.flat().sort((a, b) => a - b);
  const spanSeconds = (all.at(-1)! - all[0]!) / 1000;
  return {
    total: all.length,
    perWorker: f.writes.map((w) => w.length),
    average: all.length / spanSeconds,
    busiest: busiestWindow(all),
    busiestAfterFirstSecond: busiestWindow(all.filter((t) => t >= all[0]! + 1000)),
  };
}

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  workflowBundle = await rotorWorkflowBundle();
  fleet = await pool(
    Array.from({ length: SECRETS }, (_, i) => i),
    8,
    (i) => roleWithSecret('it', `fleet-${i}`, seen),
  );
}, 120_000);

describe('the store-write ceiling across two workers', () => {
  let control: Awaited<ReturnType<typeof rotateAll>>;

  it(`control: two workers each paced at ${CEILING} writes/s per process write faster than ${CEILING}/s together`, async () => {
    const f = await startFleet({ perProcessPerSecond: CEILING });
    try {
      control = await rotateAll(f);
    } finally {
      await f.stop();
    }
    console.log(`per-process pacing only: ${JSON.stringify(control)}`);
    expect(control.total).toBe(SECRETS * 3);
    expect(control.perWorker.every((n) => n > 0)).toBe(true);
    expect(control.average).toBeGreaterThan(CEILING * 1.3);
  }, 180_000);

  it(`with fleetStoreWritesPerSecond: ${CEILING}, the same two workers stay under ${CEILING} writes/s together`, async () => {
    // Per process the pace would allow far more: only the cluster's ceiling binds.
    const f = await startFleet({ fleetPerSecond: CEILING, perProcessPerSecond: 50 });
    let result: Awaited<ReturnType<typeof rotateAll>>;
    try {
      result = await rotateAll(f);
      // create and finish ran on the store-writes queue, where the cluster paced them.
      const history = await f.rotor.client.workflow.getHandle(rotationWorkflowId(fleet[0]!.secretId)).fetchHistory();
      const queues = Object.fromEntries(
        (history.events ?? [])
          .map((e) => e.activityTaskScheduledEventAttributes)
          .filter((a) => a?.activityType?.name === 'createPending' || a?.activityType?.name === 'finishRotation')
          .map((a) => [a!.activityType!.name!, a!.taskQueue!.name!]),
      );
      expect(queues).toEqual({
        createPending: storeWritesTaskQueue(f.rotor.taskQueue),
        finishRotation: storeWritesTaskQueue(f.rotor.taskQueue),
      });
    } finally {
      await f.stop();
    }
    console.log(`fleet ceiling ${CEILING}/s: ${JSON.stringify(result)}`);
    expect(result.total).toBe(SECRETS * 3);
    // Both workers wrote: the ceiling is not one worker doing all the work.
    expect(result.perWorker.every((n) => n > 0)).toBe(true);
    expect(result.average).toBeLessThanOrEqual(CEILING);
    expect(result.average).toBeLessThan(control.average);
    // The server's bucket starts full (a step or two of burst in the first second); after it, any second holds the
    // ceiling, give or take one step's writes landing late.
    expect(result.busiestAfterFirstSecond).toBeLessThanOrEqual(CEILING + MAX_WRITES_PER_STORE_STEP);
  }, 180_000);

  it('leaves no password in the histories of either run', async () => {
    for (const m of fleet) await rememberPasswords(m.secretId, seen);
    expect(seen.size).toBe(SECRETS * 3);
    const text = histories.join('\n');
    expect(histories).toHaveLength(2);
    for (const m of fleet) expect(text).toContain(m.secretId);
    for (const password of seen) expect(text.includes(password)).toBe(false);
  });

  it('rotated every secret twice: labels moved, the newest password logs in, the first does not', async () => {
    for (const m of fleet) expect(await labels(m.secretId)).toMatchObject({ versions: 3 });
    for (const m of fleet.slice(0, 4)) {
      expect(await logsIn(m.username, await passwordAt(m.secretId, 'AWSCURRENT'))).toBe(true);
      expect(await logsIn(m.username, m.password)).toBe(false);
    }
  });
});
