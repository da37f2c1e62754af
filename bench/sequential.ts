/**
 * The bench's instrument for issue 11: what one rotation costs beside its own work.
 *
 * - direct: the same rotator steps and store calls as a PostgreSQL single-user rotation (read, describe, preflight,
 *   put, set, test, stage moves, retire), called in sequence in-process, without Temporal: the physical work;
 * - rotor: sequential rotations through a warm in-process worker (grace 0), p50/p95, and the ratio rotor/direct;
 * - critical path: from each rotation's history, the time in activities (scheduled → started: queueing and
 *   dispatch; started → completed: the work), in workflow tasks, and the number of each;
 * - store calls per rotation, by operation, counted at the store.
 */
import { NativeConnection } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { AuditStore } from '../packages/rotor/src/audit/audit-store';
import { postgresSingleUser, parsePostgresSecret } from '../packages/rotor/src/rotators/postgres/single-user';
import { DEFAULT_PASSWORD_POLICY, generatePassword } from '../packages/rotor/src/rotators/password-policy';
import { Stage } from 'rotor-consumers/core';
import type { SecretStore } from 'rotor-consumers/stores';
import { createRotorWorker } from '../packages/rotor/src/worker';
import { createLogger, installRuntime } from '../packages/rotor/src/worker/logger';
import { uniqueName } from '../test/helpers/env';
import { localActivityOf } from '../test/helpers/history';
import { observedStore, STORE_OPERATIONS, type StoreOperation } from '../test/helpers/observed-store';
import { createRole, createSecret, pgSecret, rotationClient, store } from '../test/helpers/stack';

/** The store with a count of every call by operation. */
export function countingStore(inner: SecretStore): {
  store: SecretStore;
  counts: Record<StoreOperation, number>;
  reset(): void;
} {
  const counts = Object.fromEntries(STORE_OPERATIONS.map((o) => [o, 0])) as Record<StoreOperation, number>;
  return {
    store: observedStore(inner, (op) => counts[op]++),
    counts,
    reset: () => STORE_OPERATIONS.forEach((o) => (counts[o] = 0)),
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const median = (values: number[]) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

async function pgSecretFor(prefix: string): Promise<string> {
  const username = uniqueName(prefix).replace(/-/g, '_');
  const password = generatePassword();
  await createRole(username, password);
  const secretId = uniqueName(`bench/${prefix}`);
  await createSecret(secretId, pgSecret(username, password));
  return secretId;
}

/** One PostgreSQL single-user rotation's work, in-process, in the order rotor does it. */
async function directRotation(secretId: string, s: SecretStore): Promise<void> {
  const rotator = postgresSingleUser;
  const context = { readCurrent: async (id: string) => (await s.getByStage(id, Stage.current))!.value };
  // prepare
  const currentRaw = (await s.getByStage(secretId, Stage.current))!;
  await s.describe(secretId);
  const current = parsePostgresSecret(secretId, currentRaw.value);
  await rotator.check(secretId, { current, fallbacks: [] }, context);
  // create
  const token = crypto.randomUUID();
  await s.putPending(secretId, token, await rotator.nextValue(secretId, current, DEFAULT_PASSWORD_POLICY));
  // set, test
  const pending = parsePostgresSecret(secretId, (await s.getByVersion(secretId, token))!.value);
  await rotator.set(secretId, { pending, current, fallbacks: [] }, context);
  await rotator.test(secretId, pending, context);
  // finish
  await s.moveStage(secretId, Stage.current, token);
  await s.removeStage(secretId, Stage.pending, token);
  // retire
  await rotator.retire(secretId, { previous: current, current: pending }, context);
}

interface CriticalPath {
  workflowTasks: number;
  workflowTaskMs: number;
  /** Ordinary activities: scheduled in history, dispatched by the server. */
  activities: number;
  activityQueueMs: number;
  activityRunMs: number;
  /** Local activities (steps run local-first): recorded as markers, run inside a workflow task. */
  localActivities: number;
  /**
   * Each local activity's share of the critical path: from the previous one's completion (or the workflow task's
   * start) to its own, by the worker's clock (the marker's completion time).
   */
  localMs: Record<string, number>;
  /** Activities by type, ordinary and local: the steps and the reporting ones (appendAudit, notify, rotationEnded). */
  byType: Record<string, number>;
  /** From the first event to the last. */
  totalMs: number;
}

const ms = (t: temporal.api.history.v1.IHistoryEvent) =>
  Number(t.eventTime!.seconds) * 1000 + Math.floor((t.eventTime!.nanos ?? 0) / 1e6);

/** Where a rotation's time went, from its history. */
function criticalPath(events: temporal.api.history.v1.IHistoryEvent[]): CriticalPath {
  const byId = new Map(events.map((e) => [Number(e.eventId), e]));
  const path: CriticalPath = {
    workflowTasks: 0,
    workflowTaskMs: 0,
    activities: 0,
    activityQueueMs: 0,
    activityRunMs: 0,
    localActivities: 0,
    localMs: {},
    byType: {},
    totalMs: ms(events.at(-1)!) - ms(events[0]!),
  };
  let lastMs = NaN;
  for (const e of events) {
    if (e.workflowTaskStartedEventAttributes) lastMs = ms(e);
    const local = localActivityOf(e);
    if (local) {
      path.localActivities++;
      path.localMs[local.type] = (path.localMs[local.type] ?? 0) + Math.max(0, local.completedMs - lastMs);
      lastMs = Math.max(lastMs, local.completedMs);
    }
    const type = e.activityTaskScheduledEventAttributes?.activityType?.name ?? local?.type;
    if (type) path.byType[type] = (path.byType[type] ?? 0) + 1;
    if (e.workflowTaskCompletedEventAttributes) {
      const scheduled = byId.get(Number(e.workflowTaskCompletedEventAttributes.scheduledEventId))!;
      path.workflowTasks++;
      path.workflowTaskMs += ms(e) - ms(scheduled);
    }
    if (e.activityTaskCompletedEventAttributes) {
      const a = e.activityTaskCompletedEventAttributes;
      const scheduled = byId.get(Number(a.scheduledEventId))!;
      const started = byId.get(Number(a.startedEventId))!;
      path.activities++;
      path.activityQueueMs += ms(started) - ms(scheduled);
      path.activityRunMs += ms(e) - ms(started);
    }
  }
  return path;
}

export async function benchSequential(n: number, auditUrl: string | undefined) {
  installRuntime(createLogger('warn'));
  const counting = countingStore(store);
  const taskQueue = uniqueName('bench-seq');
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const audit = auditUrl ? await AuditStore.connect(auditUrl) : undefined;
  const worker = await createRotorWorker({
    connection,
    namespace: 'default',
    taskQueue,
    store: counting.store,
    ...(audit ? { audit } : {}),
  });
  const running = worker.run();
  const rotor = await rotationClient(taskQueue);
  try {
    // Direct: warm up once, then n in sequence.
    const directSecrets = await Promise.all(Array.from({ length: n + 1 }, () => pgSecretFor('bench_direct')));
    await directRotation(directSecrets[0]!, store);
    const direct: number[] = [];
    counting.reset();
    for (const secretId of directSecrets.slice(1)) {
      const t0 = performance.now();
      await directRotation(secretId, counting.store);
      direct.push(performance.now() - t0);
    }
    const directCalls = Object.fromEntries(STORE_OPERATIONS.map((o) => [o, counting.counts[o] / n]));

    // rotor: a warm worker, one rotation after the other.
    const rotorSecrets = await Promise.all(Array.from({ length: n + 1 }, () => pgSecretFor('bench_seq')));
    await rotor.rotate(rotorSecrets[0]!, { graceMs: 0 });
    await rotor.wait(rotorSecrets[0]!);
    counting.reset();
    const latencies: number[] = [];
    const paths: CriticalPath[] = [];
    const stepMs: Record<string, number[]> = {};
    for (const secretId of rotorSecrets.slice(1)) {
      const t0 = performance.now();
      const started = await rotor.rotate(secretId, { graceMs: 0 });
      const outcome = await rotor.wait(secretId);
      latencies.push(performance.now() - t0);
      if (outcome.outcome !== 'completed') throw new Error(`${secretId}: ${outcome.outcome}`);
      for (const step of outcome.result.status.steps)
        if (step.endedAt) (stepMs[step.step] ??= []).push(Date.parse(step.endedAt) - Date.parse(step.startedAt));
      const history = await rotor.client.workflow.getHandle(started.workflowId).fetchHistory();
      paths.push(criticalPath(history.events ?? []));
    }
    const rotorCalls = Object.fromEntries(STORE_OPERATIONS.map((o) => [o, counting.counts[o] / n]));
    const sorted = [...latencies].sort((a, b) => a - b);
    const directMedian = median(direct);
    const sum = (f: (p: CriticalPath) => number) => Math.round(median(paths.map(f)));
    return {
      rotations: n,
      audit: Boolean(audit),
      directMs: {
        p50: Math.round(directMedian),
        p95: Math.round(
          percentile(
            [...direct].sort((a, b) => a - b),
            95,
          ),
        ),
      },
      rotorMs: { p50: Math.round(percentile(sorted, 50)), p95: Math.round(percentile(sorted, 95)) },
      ratio: Number((percentile(sorted, 50) / directMedian).toFixed(2)),
      criticalPathMedian: {
        workflowTasks: sum((p) => p.workflowTasks),
        workflowTaskMs: sum((p) => p.workflowTaskMs),
        activities: sum((p) => p.activities),
        activityQueueMs: sum((p) => p.activityQueueMs),
        activityRunMs: sum((p) => p.activityRunMs),
        localActivities: sum((p) => p.localActivities),
        localMsByType: Object.fromEntries(
          Object.keys(paths[0]?.localMs ?? {}).map((type) => [type, sum((p) => p.localMs[type] ?? 0)]),
        ),
        historyMs: sum((p) => p.totalMs),
        activitiesByType: paths[0]?.byType ?? {},
      },
      stepMedianMs: Object.fromEntries(Object.entries(stepMs).map(([k, v]) => [k, median(v)])),
      storeCallsPerRotation: { direct: directCalls, rotor: rotorCalls },
    };
  } finally {
    worker.shutdown();
    await running;
    await audit?.close();
    await connection.close();
    await rotor.client.connection.close();
  }
}
