import { hookRunner } from '../activities/hook-runner';
import { LastKnownCurrent } from '../activities/last-known';
import { readFile } from 'node:fs/promises';
import { compact } from '../shared/compact';
import { Client } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type pino from 'pino';
import { webhookNotifier } from '../alerts/notifier';
import { AuditStore } from '../audit/audit-store';
import { readEnv } from '../config/env';
import { InvalidInputError } from 'rotor-consumers/core';
import { defaultConfig, loadConfig, type RotorConfig } from '../config/rotor-config';
import { rotators as builtInRotators, type RotatorRegistry } from '../rotators/registry';
import { DEFAULT_TEMPORAL_UI_URL, Stage, temporalUiLink } from '../shared/constants';
import { STEPS } from '../shared/vocabulary';
import type { SecretStore } from 'rotor-consumers/stores';
import { leaseCounts } from '../client/overview';
import { temporalLeases } from './lease-service';
import { storeFromConfig } from './stores';
import { createLogger, installRuntime } from './logger';
import { RotorMetrics, type MetricsServer } from './metrics';
import { openBakeWindow, reportTokens, serveReports, signalRotation, type ReportServer } from './report-server';
import { KeyedSemaphore, RateLimiter, throttledStore } from './throttle';
import { createRotorWorkers, runTogether, storeWritesTaskQueue } from './create-worker';

/** Every step name the metrics know; others fold into "other". */
const METRIC_STEPS = [
  ...STEPS,
  'sessions',
  'compensate',
  'rollback',
  'rewrap-plan',
  'rewrap',
  'rewrap-count',
  'rewrap-retire',
];

/** A started worker with what it serves beside Temporal: its metrics endpoint. */
export interface RunningWorker {
  /** The Worker that runs the workflows and most steps on ROTOR_TASK_QUEUE. */
  worker: Worker;
  /** Every Worker of this process: the main one and the store-writes one. */
  workers: Worker[];
  /** Base URL of the /metrics endpoint, when served. */
  metricsUrl?: string;
  /** Base URL of the consumer report endpoint (POST /v1/reports), when served. */
  reportsUrl?: string;
  /** Runs until shutdown (SIGINT/SIGTERM or `worker.shutdown()`), then releases everything. */
  run(): Promise<void>;
}

/**
 * Builds a production worker from the environment and rotor.yaml: the Secrets Manager store behind the write
 * ceiling, per-target concurrency, the audit store (ROTOR_AUDIT_URL), webhook alerts and Prometheus metrics.
 */
export async function startWorker(
  overrides: { rotators?: RotatorRegistry; store?: SecretStore; logger?: pino.Logger; configFile?: string } = {},
): Promise<RunningWorker> {
  const env = readEnv();
  const logger = overrides.logger ?? createLogger(env.ROTOR_LOG_LEVEL);
  installRuntime(logger, env.ROTOR_SDK_METRICS_ADDRESS);
  const configFile = overrides.configFile ?? env.ROTOR_CONFIG;
  const config: RotorConfig = configFile ? await loadConfig(configFile) : defaultConfig();
  const rotators = overrides.rotators ?? builtInRotators;
  const baseStore = overrides.store ?? storeFromConfig(config.stores);
  const { connectionOptions, namespace = 'default' } = loadClientConnectConfig();
  const uiBase = env.ROTOR_TEMPORAL_UI_URL ?? DEFAULT_TEMPORAL_UI_URL;

  const releases: (() => Promise<void>)[] = [];
  const release = async () => {
    for (const r of releases.reverse())
      await r().catch((error: Error) => logger.warn({ error: error.message }, 'shutdown step failed'));
  };
  try {
    const connection = await NativeConnection.connect(connectionOptions);
    releases.push(() => connection.close());
    // Every worker of a fleet writes the audit trail: one without it would acknowledge events it cannot keep.
    if (!env.ROTOR_AUDIT_URL && !env.ROTOR_AUDIT_DISABLED) {
      throw new InvalidInputError(
        'ROTOR_AUDIT_URL is not set — point it at the audit trail database, or set ROTOR_AUDIT_DISABLED=true to run without one',
      );
    }
    const audit = env.ROTOR_AUDIT_URL ? await AuditStore.connect(env.ROTOR_AUDIT_URL) : undefined;
    if (audit) releases.push(() => audit.close());
    else logger.warn('audit trail disabled (ROTOR_AUDIT_DISABLED=true): audit events go to this log only');

    const metrics = new RotorMetrics({
      rotators: Object.keys(rotators),
      steps: METRIC_STEPS,
      ...(configFile ? { managedSecrets: config.secrets.map((s) => s.id) } : {}),
    });
    const client = new Client({ connection, namespace });
    metrics.setCollector(async () => {
      try {
        const query = `WorkflowType = 'rotateSecret' AND ExecutionStatus = 'Running' AND RotorPhase = 'grace' AND TaskQueue = '${env.ROTOR_TASK_QUEUE}'`;
        metrics.setInGrace((await client.workflow.count(query)).count);
        const leases = [...(await leaseCounts(client, env.ROTOR_TASK_QUEUE)).values()];
        metrics.setLeases(
          leases.reduce((n, l) => n + l.live, 0),
          leases.reduce((n, l) => n + l.logins, 0),
        );
      } catch (error) {
        // Unknown, not stale: a scrape while Temporal is away shows NaN rather than the last count.
        metrics.setInGrace(Number.NaN);
        metrics.setLeases(Number.NaN, Number.NaN);
        throw error;
      }
    });
    void seedLastSuccess(metrics, baseStore, config, logger);

    const store = throttledStore(baseStore, new RateLimiter(config.throughput.storeWritesPerSecond));
    const leaseReads = new LastKnownCurrent();
    const fleetPerSecond = config.throughput.fleetStoreWritesPerSecond;
    const workers = await createRotorWorkers({
      connection,
      namespace,
      taskQueue: env.ROTOR_TASK_QUEUE,
      store,
      rotators,
      metrics,
      targets: new KeyedSemaphore(config.throughput.perTargetConcurrency),
      ...compact({ audit }),
      alerts: webhookNotifier(config.alerts.webhooks, {
        uiLink: (workflowId, runId) => temporalUiLink(uiBase, namespace, workflowId, runId),
      }),
      maxConcurrentActivityTaskExecutions: env.ROTOR_MAX_CONCURRENT_ACTIVITIES,
      ...compact({ maxCachedWorkflows: env.ROTOR_MAX_CACHED_WORKFLOWS }),
      storeWrites: fleetPerSecond !== undefined ? { fleetPerSecond } : {},
      hooks: hookRunner(config.hooks),
      leaseReads,
    });
    const [worker] = workers;
    const port = env.ROTOR_METRICS_PORT ?? config.metrics.port;
    let server: MetricsServer | undefined;
    if (port > 0) {
      server = await metrics.serve(port, config.metrics.host);
      releases.push(() => server!.close());
    }
    const reportsPort = env.ROTOR_REPORTS_PORT ?? config.reports.port;
    let reports: ReportServer | undefined;
    if (reportsPort > 0) {
      const tokens = reportTokens(config.reports.tokens);
      if (tokens.length === 0)
        throw new InvalidInputError(
          'the report endpoint needs reports.tokens in rotor.yaml: it takes reports only with a token',
        );
      const { tls } = config.reports;
      reports = await serveReports({
        port: reportsPort,
        host: config.reports.host,
        tokens,
        lookup: openBakeWindow(client),
        forward: signalRotation(client),
        logger,
        forwardEveryMs: config.reports.forwardEveryMs,
        trustedProxies: config.reports.trustedProxies,
        ipv6InstancePrefix: config.reports.ipv6InstancePrefix,
        leases: temporalLeases(client, store, env.ROTOR_TASK_QUEUE, leaseReads),
        ...(tls
          ? { tls: { cert: await readTls(tls.certFile, 'certFile'), key: await readTls(tls.keyFile, 'keyFile') } }
          : {}),
      });
      releases.push(() => reports!.close());
    }
    logger.info(
      {
        taskQueue: env.ROTOR_TASK_QUEUE,
        namespace,
        address: connectionOptions.address,
        store: store.description,
        audit: audit?.description ?? 'disabled',
        config: configFile ?? 'none',
        metrics: server ? `${server.url}/metrics` : 'off',
        reports: reports ? `${reports.url}/v1/reports` : 'off',
        storeWritesPerSecond: config.throughput.storeWritesPerSecond,
        perTargetConcurrency: config.throughput.perTargetConcurrency,
        fleetStoreWritesPerSecond: fleetPerSecond ?? 'off',
        storeWritesTaskQueue: storeWritesTaskQueue(env.ROTOR_TASK_QUEUE),
      },
      'rotor worker started',
    );
    return {
      worker,
      workers,
      ...(server ? { metricsUrl: server.url } : {}),
      ...(reports ? { reportsUrl: reports.url } : {}),
      async run() {
        try {
          await runTogether(workers);
          logger.info('rotor worker stopped');
        } finally {
          await release();
        }
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/**
 * `rotor worker`: connects with Temporal's environment configuration, polls ROTOR_TASK_QUEUE, and shuts down
 * gracefully on SIGINT/SIGTERM (the SDK's default shutdown signals).
 */
export async function runWorker(overrides: Parameters<typeof startWorker>[0] = {}): Promise<void> {
  await (await startWorker(overrides)).run();
}

/** Seeds "last successful rotation" per managed secret from the store: the time AWSCURRENT's version was made. */
async function seedLastSuccess(
  metrics: RotorMetrics,
  store: SecretStore,
  config: RotorConfig,
  logger: pino.Logger,
): Promise<void> {
  for (const secret of config.secrets) {
    try {
      const description = await store.describe(secret.id);
      const current = description.versions.find((v) => v.stages.includes(Stage.current));
      if (current?.createdAt) metrics.setLastSuccess(secret.id, current.createdAt);
    } catch (error) {
      logger.warn(
        { secretId: secret.id, error: (error as Error).message },
        'could not read when the secret was last rotated',
      );
    }
  }
}

/** A PEM file of `reports.tls`; one that cannot be read stops the worker, naming the setting and the file. */
async function readTls(file: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    throw new InvalidInputError(
      `reports.tls.${setting}: ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
