import { afterAll, beforeAll, expect } from 'vitest';
import type { RotationClient } from '../../src/client';
import { uniqueName } from './env';
import { rememberPasswords, rotationClient } from './stack';
import { WorkerProcess } from './worker-process';

/** A `rotor worker` process on a task queue of its own and a RotationClient for it, for one test file. */
export interface WorkerRig {
  readonly taskQueue: string;
  readonly worker: WorkerProcess;
  readonly rotor: RotationClient;
  /** SIGKILLs the worker while the test step of `secretId` is held, then starts the one that must finish it. */
  killWhileHeld(secretId: string): Promise<void>;
}

/**
 * Starts the worker and the client before the file's tests and stops both after them. `holdDir` lets tests hold a
 * step (see faulty-rotators); `env` is read when the worker starts, so it may depend on what other hooks set up.
 */
export function useWorkerRig(prefix: string, options: { holdDir?: string; env?: () => NodeJS.ProcessEnv; main?: string } = {}): WorkerRig {
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
export async function rotateToCompletion(rig: WorkerRig, secretId: string, seen: Set<string>, graceMs = 0): Promise<void> {
  await rig.rotor.rotate(secretId, { graceMs });
  const outcome = await rig.rotor.wait(secretId);
  await rememberPasswords(secretId, seen);
  expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
}
