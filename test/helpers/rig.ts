import { afterAll, beforeAll, expect } from 'vitest';
import { ScheduleManager, type RotationClient } from '../../packages/rotor/src/client';
import { parseConfig } from '../../packages/rotor/src/config/rotor-config';
import { scheduleIdFor } from '../../packages/rotor/src/shared/constants';
import type { RotationStatus } from '../../packages/rotor/src/shared/status';
import { uniqueName } from './env';
import { rememberPasswords, rotationClient, waitForStatus } from './stack';
import { WorkerProcess } from './worker-process';

/** A `rotor worker` process on a task queue of its own and a RotationClient for it, for one test file. */
export interface WorkerRig {
  readonly taskQueue: string;
  readonly worker: WorkerProcess;
  readonly rotor: RotationClient;
  /** SIGKILLs the worker while the test step of `secretId` is held, then starts the one that must finish it. */
  killWhileHeld(secretId: string): Promise<void>;
  /** SIGKILLs the worker wherever it is and starts another on the same queue. */
  killAndRestart(): Promise<void>;
}

/**
 * Starts the worker and the client before the file's tests and stops both after them. `holdDir` lets tests hold a
 * step (see faulty-rotators); `env` is read when the worker starts, so it may depend on what other hooks set up.
 */
export function useWorkerRig(
  prefix: string,
  options: { holdDir?: string; env?: () => NodeJS.ProcessEnv; main?: string } = {},
): WorkerRig {
  const taskQueue = uniqueName(prefix);
  let worker: WorkerProcess | undefined;
  let rotor: RotationClient | undefined;
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the ${what} of ${taskQueue} is not started: use the rig inside tests`);
    return value;
  };
  beforeAll(async () => {
    worker = await WorkerProcess.start(taskQueue, options.holdDir, options.env?.() ?? {}, options.main);
    rotor = await rotationClient(taskQueue);
  });
  afterAll(async () => {
    await worker?.stop();
    await rotor?.client.connection.close();
  });
  return {
    taskQueue,
    get worker() {
      return started(worker, 'worker');
    },
    get rotor() {
      return started(rotor, 'client');
    },
    async killAndRestart() {
      const killed = started(worker, 'worker');
      await killed.kill();
      if (killed.exitInfo.signal !== 'SIGKILL') throw new Error(`worker ended with ${JSON.stringify(killed.exitInfo)}`);
      worker = await WorkerProcess.start(taskQueue, options.holdDir, options.env?.() ?? {}, options.main);
    },
    async killWhileHeld(secretId) {
      if (!options.holdDir) throw new Error('killWhileHeld needs a rig made with a holdDir');
      worker = await started(worker, 'worker').killWhileHeld(taskQueue, options.holdDir, secretId);
    },
  };
}

/**
 * Rotates `secretId` through the rig's worker, waits for its outcome and adds every version's password to `seen`;
 * fails the test, with the rotation's message, unless it completed.
 */
export async function rotateToCompletion(
  rig: WorkerRig,
  secretId: string,
  seen: Set<string>,
  graceMs = 0,
): Promise<void> {
  expect(await rotateToEnd(rig, secretId, seen, graceMs)).toBe('completed');
}

/**
 * Rotates `secretId` through the rig's worker, waits for its outcome and adds every version's password to `seen`;
 * returns the outcome word, or `failed: <the rotation's message>`.
 */
export async function rotateToEnd(rig: WorkerRig, secretId: string, seen: Set<string>, graceMs = 0): Promise<string> {
  await rig.rotor.rotate(secretId, { graceMs });
  const outcome = await rig.rotor.wait(secretId);
  await rememberPasswords(secretId, seen);
  return outcome.outcome === 'failed' ? `failed: ${outcome.message}` : outcome.outcome;
}

/**
 * Declares `secretId` in a rotor.yaml with an every-1m schedule and `grace`, applies it through the rig's task
 * queue, fires the schedule every 5 s (rotor.yaml allows no less than a minute; tests stay short) and waits for the
 * first scheduled rotation to complete. The schedule is deleted afterwards. Returns that rotation's status.
 */
export async function rotateOnSchedule(rig: WorkerRig, secretId: string, grace: string): Promise<RotationStatus> {
  const schedules = new ScheduleManager(rig.rotor.client, rig.taskQueue);
  const config = parseConfig(`secrets:\n  - id: ${secretId}\n    schedule: { every: 1m }\n    grace: ${grace}\n`);
  for (const s of config.secrets) if (s.schedule.kind === 'every') s.schedule.everyMs = 5000;
  try {
    await schedules.apply(config, await schedules.plan(config, { prune: false }));
    const status = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'completed', 60_000);
    expect(status.trigger).toEqual({ kind: 'schedule', by: scheduleIdFor(secretId) });
    return status;
  } finally {
    await rig.rotor.client.schedule
      .getHandle(scheduleIdFor(secretId))
      .delete()
      .catch(() => undefined);
  }
}
