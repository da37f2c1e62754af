import { compact } from '../shared/compact';
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { rotators as builtInRotators, type RotatorRegistry } from '../rotators/registry';
import { prebuiltWorkflowBundle } from './bundle-workflows';

export interface RotorWorkerOptions extends Omit<ActivityDeps, 'rotators' | 'storeWritesTaskQueue'> {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  rotators?: RotatorRegistry;
  /**
   * A prebuilt workflow bundle (tests build one per file); otherwise the build's dist/workflow-bundle.js, or, from
   * the sources, the workflows bundled at start.
   */
  workflowBundle?: WorkerOptions['workflowBundle'];
  maxConcurrentActivityTaskExecutions?: number;
  /** Workflows kept in memory between their tasks (the SDK's default sizes it from the heap limit). */
  maxCachedWorkflows?: number;
}

/** Where the workflow code lives, whether rotor runs from TypeScript sources or from the compiled package. */
export function workflowsPath(): string {
  return require.resolve('../workflows');
}

/** The task queue of the store-writing steps of rotations on `taskQueue`. */
export function storeWritesTaskQueue(taskQueue: string): string {
  return `${taskQueue}-store-writes`;
}

/**
 * Every store-writing step on the rotation path writes at most twice (create: one PutSecretValue; finish: two
 * UpdateSecretVersionStage), so a ceiling of N writes per second admits N/2 such steps per second.
 */
export const MAX_WRITES_PER_STORE_STEP = 2;

/** A Worker that runs rotor's workflows and activities on `taskQueue`. */
export async function createRotorWorker(options: RotorWorkerOptions): Promise<Worker> {
  const [main] = await createRotorWorkers(options);
  return main;
}

/**
 * The Workers of one rotor worker process: the main one (workflows and activities on `taskQueue`) and, with
 * `storeWrites`, an activity-only one polling `storeWritesTaskQueue(taskQueue)`.
 *
 * With `storeWrites.fleetPerSecond`, prepare routes each rotation's create and finish to that queue, and the Worker
 * asks the server to dispatch at most fleetPerSecond / MAX_WRITES_PER_STORE_STEP of its tasks per second: the
 * matching service enforces that rate for all pollers of the queue together, so the ceiling holds however many
 * workers run. Without it the queue is still polled, so rotations prepared while the setting was on still finish.
 */
export async function createRotorWorkers(
  options: RotorWorkerOptions & { storeWrites?: { fleetPerSecond?: number } },
): Promise<[Worker, ...Worker[]]> {
  const {
    connection,
    namespace,
    taskQueue,
    workflowBundle,
    maxConcurrentActivityTaskExecutions,
    maxCachedWorkflows,
    rotators,
    storeWrites,
    ...deps
  } = options;
  const fleetPerSecond = storeWrites?.fleetPerSecond;
  const writesQueue = storeWritesTaskQueue(taskQueue);
  const activities = createActivities({
    ...deps,
    rotators: rotators ?? builtInRotators,
    ...(fleetPerSecond !== undefined ? { storeWritesTaskQueue: writesQueue } : {}),
  });
  const common = {
    connection,
    namespace,
    activities,
    maxConcurrentActivityTaskExecutions: maxConcurrentActivityTaskExecutions ?? 20,
    // Steps run local-first (src/workflows/local-first.ts): the same limit for their local attempts.
    maxConcurrentLocalActivityExecutions: maxConcurrentActivityTaskExecutions ?? 20,
    // Workflows finish their current task and activities their step before the process exits.
    shutdownGraceTime: '10s',
  } satisfies Partial<WorkerOptions>;
  const main = await Worker.create({
    ...common,
    taskQueue,
    ...workflowCode(workflowBundle),
    ...compact({ maxCachedWorkflows }),
  });
  if (!storeWrites) return [main];
  const writes = await Worker.create({
    ...common,
    taskQueue: writesQueue,
    ...(fleetPerSecond !== undefined
      ? { maxTaskQueueActivitiesPerSecond: fleetPerSecond / MAX_WRITES_PER_STORE_STEP }
      : {}),
  });
  return [main, writes];
}

function workflowCode(
  given: RotorWorkerOptions['workflowBundle'],
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (given) return { workflowBundle: given };
  const prebuilt = prebuiltWorkflowBundle();
  return prebuilt ? { workflowBundle: { codePath: prebuilt } } : { workflowsPath: workflowsPath() };
}

/** Asks every one of `workers` that still runs to shut down. */
export function shutdownAll(workers: Worker[]): void {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
}

/** Runs `workers` until all have stopped; when one stops (shutdown or failure), the others are shut down too. */
export async function runTogether(workers: Worker[]): Promise<void> {
  const results = await Promise.allSettled(workers.map((w) => w.run().finally(() => shutdownAll(workers))));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
