import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { rotators as builtInRotators, type RotatorRegistry } from '../rotators/registry';

export interface RotorWorkerOptions extends Omit<ActivityDeps, 'rotators'> {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  rotators?: RotatorRegistry;
  /** A prebuilt workflow bundle (tests build one per file); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  maxConcurrentActivityTaskExecutions?: number;
}

/** Where the workflow code lives, whether rotor runs from TypeScript sources or from the compiled package. */
export function workflowsPath(): string {
  return require.resolve('../workflows');
}

/** A Worker that runs rotor's workflows and activities on `taskQueue`. */
export async function createRotorWorker(options: RotorWorkerOptions): Promise<Worker> {
  const { connection, namespace, taskQueue, workflowBundle, maxConcurrentActivityTaskExecutions, rotators, ...deps } = options;
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: workflowsPath() }),
    activities: createActivities({ ...deps, rotators: rotators ?? builtInRotators }),
    maxConcurrentActivityTaskExecutions: maxConcurrentActivityTaskExecutions ?? 20,
    // Workflows finish their current task and activities their step before the process exits.
    shutdownGraceTime: '10s',
  });
}
