/**
 * The fleet and memory parts of `npm run bench` (issue 11):
 *
 * - store ceiling: the store alone, driven with a rotation's own mix of calls (read, describe, put, two stage moves)
 *   at the worker's activity concurrency for a few seconds: the calls per second it answers at its busiest;
 * - fleet: N PostgreSQL single-user secrets rotated at once (grace 0) by one in-process worker at the same
 *   concurrency: rotations/s, latency percentiles and max from each workflow's start and close, failures, and the
 *   store calls per second it made (counted at the store) as a share of the ceiling;
 * - memory: a real `rotor worker` process (the compiled CLI) holding N rotations in grace: its RSS idle, with all
 *   of them waiting, and the workflow cache size it ran with.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { mapLimit } from '../src/client/concurrency';
import { generatePassword } from '../src/rotators/password-policy';
import { rotationWorkflowId, SearchAttribute } from '../src/shared/constants';
import { Stage } from '../src/shared/stages';
import { createRotorWorker } from '../src/worker';
import { createLogger, installRuntime } from '../src/worker/logger';
import { uniqueName } from '../test/helpers/env';
import { createSecret, pgSecret, rotationClient, store, withAdmin } from '../test/helpers/stack';
import { countingStore } from './sequential';

const ROOT = path.resolve(__dirname, '..');
const percentile = (sorted: number[], p: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** `n` PostgreSQL roles, each with its secret in AWS's shape; returns the secret ids. */
async function pgFleet(n: number, prefix: string): Promise<string[]> {
  const members = Array.from({ length: n }, (_, i) => ({ username: `${uniqueName(prefix).replace(/-/g, '_')}_${i}`, password: generatePassword() }));
  await withAdmin(async (admin) => {
    for (let i = 0; i < members.length; i += 100) {
      const batch = members.slice(i, i + 100);
      await admin.query(batch.map((m) => `CREATE ROLE ${escapeIdentifier(m.username)} LOGIN PASSWORD ${escapeLiteral(m.password)}`).join('; '));
    }
  });
  // moto's CreateSecret is not safe under much concurrency (it iterates its secrets while another request adds one).
  return mapLimit(members, 4, async (m) => {
    const secretId = `bench/fleet/${m.username}`;
    await createSecret(secretId, pgSecret(m.username, m.password));
    return secretId;
  });
}

/** `n` fresh PostgreSQL secrets for the memory part when the fleet part did not run. */
export function fleetSecrets(n: number): Promise<string[]> {
  return pgFleet(n, 'rotor_memory');
}

/** The store alone at `concurrency`, for `ms`: each loop makes a rotation's store writes and reads on its own secret. */
async function storeCeiling(concurrency: number, ms: number): Promise<{ callsPerSecond: number; concurrency: number; seconds: number }> {
  const scratch = await mapLimit(Array.from({ length: concurrency }, (_, i) => i), 16, async (i) => {
    const secretId = uniqueName(`bench/ceiling-${i}`);
    await createSecret(secretId, { scratch: true });
    return secretId;
  });
  let calls = 0;
  const t0 = performance.now();
  await Promise.all(
    scratch.map(async (secretId) => {
      while (performance.now() - t0 < ms) {
        const current = await store.getByStage(secretId, Stage.current);
        await store.describe(secretId);
        const token = crypto.randomUUID();
        await store.putPending(secretId, token, JSON.stringify({ scratch: token }));
        await store.getByVersion(secretId, token);
        await store.moveStage(secretId, Stage.current, token);
        await store.removeStage(secretId, Stage.pending, token);
        calls += 6;
        if (!current) throw new Error(`${secretId} has no current version`);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { callsPerSecond: Math.round(calls / seconds), concurrency, seconds: Number(seconds.toFixed(1)) };
}

export async function benchFleet(n: number, concurrency: number) {
  installRuntime(createLogger('warn'));
  const secrets = await pgFleet(n, 'rotor_fleet');
  const ceiling = await storeCeiling(concurrency, 15_000);

  const counting = countingStore(store);
  const taskQueue = uniqueName('bench-fleet');
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const cache = process.env.ROTOR_MAX_CACHED_WORKFLOWS;
  const worker = await createRotorWorker({
    connection,
    namespace: 'default',
    taskQueue,
    store: counting.store,
    maxConcurrentActivityTaskExecutions: concurrency,
    ...(cache ? { maxCachedWorkflows: Number(cache) } : {}),
  });
  const running = worker.run();
  const rotor = await rotationClient(taskQueue);
  try {
    counting.reset();
    const t0 = performance.now();
    await mapLimit(secrets, 32, (secretId) => rotor.rotate(secretId, { graceMs: 0 }));
    const outcomes = await mapLimit(secrets, 64, (secretId) => rotor.wait(secretId));
    const seconds = (performance.now() - t0) / 1000;
    const failures = outcomes.filter((o) => o.outcome !== 'completed').length;
    const latencies = await mapLimit(secrets, 32, async (secretId) => {
      const d = await rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).describe();
      return d.closeTime!.getTime() - d.startTime.getTime();
    });
    latencies.sort((a, b) => a - b);
    const calls = sum(Object.values(counting.counts));
    const callsPerSecond = Math.round(calls / seconds);
    return {
      secrets: n,
      concurrency,
      maxCachedWorkflows: cache ?? 'SDK default',
      storeCeiling: ceiling,
      fleet: {
        seconds: Number(seconds.toFixed(1)),
        rotationsPerSecond: Number((n / seconds).toFixed(2)),
        latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), max: latencies.at(-1)! },
        failures,
        storeCallsPerSecond: callsPerSecond,
        storeCallsPerRotation: Number((calls / n).toFixed(1)),
        shareOfCeiling: Number((callsPerSecond / ceiling.callsPerSecond).toFixed(2)),
      },
      secretIds: secrets,
    };
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await rotor.client.connection.close();
  }
}

/** VmRSS of process `pid`, in MiB. */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Math.round(Number(line.replace(/\D+/g, '')) / 1024);
}

/**
 * A compiled `rotor worker` (npm run build first) holding a rotation of each of `secrets` in grace: RSS idle and
 * with all of them waiting. The rotations are terminated afterwards (the secrets stay rotated).
 */
/** The main thread's heap and external memory, from the worker's own metrics (the workflow thread is not in them). */
async function heapMiB(metricsPort: number): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (name: string) => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20);
  return {
    heapUsed: value('rotor_process_nodejs_heap_size_used_bytes'),
    heapTotal: value('rotor_process_nodejs_heap_size_total_bytes'),
    external: value('rotor_process_nodejs_external_memory_bytes'),
  };
}

export async function benchMemory(secrets: string[], env: NodeJS.ProcessEnv = {}) {
  const taskQueue = uniqueName('bench-memory');
  const metricsPort = 19_000 + Math.floor(Math.random() * 1000);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/rotor.js'), 'worker'], {
    cwd: ROOT,
    env: { ...process.env, ROTOR_TASK_QUEUE: taskQueue, ROTOR_AUDIT_DISABLED: 'true', ROTOR_METRICS_PORT: String(metricsPort), ROTOR_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const rotor = await rotationClient(taskQueue);
  try {
    // Ready once it answers: one rotation through it, then measure idle.
    const deadline = Date.now() + 60_000;
    await new Promise((r) => setTimeout(r, 3000));
    if (child.exitCode !== null) throw new Error(`worker exited: ${output}`);
    const idle = rssMiB(child.pid!);
    const idleHeap = await heapMiB(metricsPort);
    await mapLimit(secrets, 32, (secretId) => rotor.rotate(secretId, { graceMs: 60 * 60_000 }));
    const query = `${SearchAttribute.phase.name} = 'grace' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`;
    let inGrace = 0;
    while ((inGrace = (await rotor.client.workflow.count(query)).count) < secrets.length) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${output}`);
      if (Date.now() > deadline + secrets.length * 1000) throw new Error(`only ${inGrace} of ${secrets.length} reached grace`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    // Let the worker settle (GC) before reading.
    await new Promise((r) => setTimeout(r, 5000));
    const inGraceRss = rssMiB(child.pid!);
    const inGraceHeap = await heapMiB(metricsPort);
    await mapLimit(secrets, 32, (secretId) => rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).terminate('bench: memory measured'));
    return {
      rotationsInGrace: inGrace,
      workerRssMiB: { idle, inGrace: inGraceRss },
      mainHeapMiB: { idle: idleHeap, inGrace: inGraceHeap },
      maxCachedWorkflows: env.ROTOR_MAX_CACHED_WORKFLOWS ?? 'rotor default',
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
    await rotor.client.connection.close();
  }
}
