import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type pino from 'pino';
import { createActivities } from '../activities';
import { readEnv } from '../config/env';
import { rotators as builtInRotators, type RotatorRegistry } from '../rotators/registry';
import { AwsSecretsManagerStore } from '../stores/aws-secrets-manager';
import type { SecretStore } from '../stores/secret-store';
import { createLogger, installRuntimeLogger } from './logger';

export interface RotorWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  store: SecretStore;
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
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: workflowsPath() }),
    activities: createActivities({ store: options.store, rotators: options.rotators ?? builtInRotators }),
    maxConcurrentActivityTaskExecutions: options.maxConcurrentActivityTaskExecutions ?? 20,
    // Workflows finish their current task and activities their step before the process exits.
    shutdownGraceTime: '10s',
  });
}

/**
 * `rotor worker`: connects with Temporal's environment configuration, polls ROTOR_TASK_QUEUE, and shuts down
 * gracefully on SIGINT/SIGTERM (the SDK's default shutdown signals).
 */
export async function runWorker(
  overrides: { rotators?: RotatorRegistry; store?: SecretStore; logger?: pino.Logger } = {},
): Promise<void> {
  const env = readEnv();
  const logger = overrides.logger ?? createLogger(env.ROTOR_LOG_LEVEL);
  installRuntimeLogger(logger);
  const { connectionOptions, namespace = 'default' } = loadClientConnectConfig();
  const connection = await NativeConnection.connect(connectionOptions);
  try {
    const store = overrides.store ?? new AwsSecretsManagerStore();
    const worker = await createRotorWorker({
      connection,
      namespace,
      taskQueue: env.ROTOR_TASK_QUEUE,
      store,
      ...(overrides.rotators ? { rotators: overrides.rotators } : {}),
      maxConcurrentActivityTaskExecutions: env.ROTOR_MAX_CONCURRENT_ACTIVITIES,
    });
    logger.info({ taskQueue: env.ROTOR_TASK_QUEUE, namespace, address: connectionOptions.address, store: store.description }, 'rotor worker started');
    await worker.run();
    logger.info('rotor worker stopped');
  } finally {
    await connection.close();
  }
}
