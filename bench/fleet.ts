/**
 * The fleet and memory parts of `npm run bench` (issue 11):
 *
 * - store ceiling: the store alone, driven with a rotation's own mix of calls (read, describe, put, two stage moves)
 *   at the worker's activity concurrency for a few seconds: the calls per second it answers at its busiest;
 * - fleet: N PostgreSQL single-user secrets rotated at once (grace 0) by one in-process worker at the same
 *   concurrency: rotations/s, latency percentiles and max from each workflow's start and close, failures, and the
 *   store calls per second it made (counted at the store) as a share of the ceiling;
 *   Both report the cores each process used meanwhile (bench/cpu.ts): what the machine spent where;
 * - memory: a real `rotor worker` process (the compiled CLI) holding N rotations in grace: its RSS idle and with all
 *   of them waiting, split into code, the V8 heaps of each thread and native memory, and the workflow cache size it
 *   ran with.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { mapLimit } from '../packages/rotor/src/client/concurrency';
import { generatePassword } from '../packages/rotor/src/rotators/password-policy';
import { rotationWorkflowId, SearchAttribute } from '../packages/rotor/src/shared/constants';
import { Stage } from 'rotor-consumers/core';
import { createRotorWorker } from '../packages/rotor/src/worker';
import { createLogger, installRuntime } from '../packages/rotor/src/worker/logger';
import { uniqueName } from '../test/helpers/env';
import { createSecret, pgSecret, rotationClient, store, withAdmin } from '../test/helpers/stack';
import { measureCpu } from './cpu';
import { countingStore } from './sequential';

const ROOT = path.resolve(__dirname, '..');
const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** `n` PostgreSQL roles, each with its secret in AWS's shape; returns the secret ids. */
async function pgFleet(n: number, prefix: string): Promise<string[]> {
  const members = Array.from({ length: n }, (_, i) => ({
    username: `${uniqueName(prefix).replace(/-/g, '_')}_${i}`,
    password: generatePassword(),
  }));
  await withAdmin(async (admin) => {
    for (let i = 0; i < members.length; i += 100) {
      const batch = members.slice(i, i + 100);
      await admin.query(
        batch
          .map((m) => `CREATE ROLE ${escapeIdentifier(m.username)} LOGIN PASSWORD ${escapeLiteral(m.password)}`)
          .join('; '),
      );
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
async function storeCeiling(
  concurrency: number,
  ms: number,
): Promise<{ callsPerSecond: number; concurrency: number; seconds: number }> {
  const scratch = await mapLimit(
    Array.from({ length: concurrency }, (_, i) => i),
    16,
    async (i) => {
      const secretId = uniqueName(`bench/ceiling-${i}`);
      await createSecret(secretId, { scratch: true });
      return secretId;
    },
  );
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
  const { result: ceiling, ...ceilingCpu } = await measureCpu(() => storeCeiling(concurrency, 15_000));

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
    const { result: outcomes, ...fleetCpu } = await measureCpu(async () => {
      await mapLimit(secrets, 32, (secretId) => rotor.rotate(secretId, { graceMs: 0 }));
      return mapLimit(secrets, 64, (secretId) => rotor.wait(secretId));
    });
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
      storeCeiling: { ...ceiling, cpu: ceilingCpu },
      fleet: {
        cpu: fleetCpu,
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

/**
 * Incident mode from the CLI: N PostgreSQL secrets in a rotor.yaml, `rotor rotate --all --grace 0s --no-bake` (the
 * CLI as operators run it, a child process) against one in-process worker: the time from the command to its exit
 * (the last completion), beside the store's ceiling measured the same way as the fleet part's.
 */
export async function benchCliFleet(n: number, concurrency: number) {
  installRuntime(createLogger('warn'));
  const secrets = await pgFleet(n, 'rotor_clifleet');
  const { result: ceiling } = await measureCpu(() => storeCeiling(concurrency, 15_000));
  const dir = mkdtempSync(path.join(tmpdir(), 'rotor-bench-cli-fleet-'));
  const file = path.join(dir, 'rotor.yaml');
  writeFileSync(file, `secrets:\n${secrets.map((id) => `  - id: ${id}\n    schedule: { every: 30d }\n`).join('')}`);
  const taskQueue = uniqueName('bench-cli-fleet');
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const worker = await createRotorWorker({
    connection,
    namespace: 'default',
    taskQueue,
    store,
    maxConcurrentActivityTaskExecutions: concurrency,
  });
  const running = worker.run();
  try {
    const t0 = performance.now();
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--require',
          'tsx/cjs',
          path.join(ROOT, 'packages/rotor/src/cli/main.ts'),
          'rotate',
          '--all',
          '-f',
          file,
        ].concat(['--grace', '0s', '--no-bake', '--concurrency', String(concurrency), '--json']),
        { cwd: ROOT, env: { ...process.env, ROTOR_TASK_QUEUE: taskQueue }, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (c) => resolve({ code: c ?? -1, stdout: out }));
    });
    const seconds = (performance.now() - t0) / 1000;
    const { rows } = JSON.parse(stdout) as { rows: { outcome: string }[] };
    return {
      secrets: n,
      concurrency,
      exitCode: code,
      seconds: Number(seconds.toFixed(1)),
      rotationsPerSecond: Number((n / seconds).toFixed(2)),
      completed: rows.filter((r) => r.outcome === 'completed' || r.outcome === 'switched').length,
      storeCeilingCallsPerSecond: ceiling.callsPerSecond,
    };
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

/** Resident memory of `pid` by kind, from /proc/<pid>/smaps_rollup: anonymous (heaps, native) and file-backed (code). */
function residentMiB(pid: number): { rss: number; anonymous: number; fileBacked: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const [rss, anonymous] = [kb('Rss'), kb('Anonymous')];
  return {
    rss: Math.round(rss / 1024),
    anonymous: Math.round(anonymous / 1024),
    fileBacked: Math.round((rss - anonymous) / 1024),
  };
}

/** How long after the rotations reached grace the settled reading is taken. */
const SETTLE_MS = 60_000;

/** The signal that makes the worker write a diagnostic report (the Temporal runtime stops on SIGUSR2 by default). */
const REPORT_SIGNAL = 'SIGWINCH';

/**
 * Where a worker's resident memory is: its RSS split into file-backed pages and anonymous memory, and the anonymous
 * part into the V8 heaps of the main thread and of the workflow thread(s) (from a Node.js diagnostic report, which
 * covers every thread) and the rest: native memory (Temporal's core, buffers, allocator arenas, thread stacks).
 */
async function memorySplit(pid: number, reportDir: string) {
  const resident = residentMiB(pid);
  const before = new Set(readdirSync(reportDir));
  process.kill(pid, REPORT_SIGNAL);
  let file: string | undefined;
  for (let i = 0; i < 100 && !file; i++) {
    await new Promise((r) => setTimeout(r, 100));
    file = readdirSync(reportDir).find((f) => f.startsWith('report.') && !before.has(f));
  }
  if (!file) throw new Error('the worker wrote no diagnostic report');
  await new Promise((r) => setTimeout(r, 500)); // written in one go, but give it a moment to be complete
  interface Heap {
    totalMemory: number;
    usedMemory: number;
  }
  const report = JSON.parse(readFileSync(path.join(reportDir, file), 'utf8')) as {
    javascriptHeap: Heap;
    workers?: Array<{ javascriptHeap: Heap }>;
  };
  const heap = (h: Heap) => ({ total: mib(h.totalMemory), used: mib(h.usedMemory) });
  const main = heap(report.javascriptHeap);
  const workflowThreads = (report.workers ?? []).map((w) => heap(w.javascriptHeap));
  const heaps = main.total + sum(workflowThreads.map((w) => w.total));
  return {
    ...resident,
    mainHeap: main,
    workflowThreadHeaps: workflowThreads,
    nativeAnonymous: resident.anonymous - heaps,
  };
}

/**
 * A compiled `rotor worker` (npm run build first) holding a rotation of each of `secrets` in grace: RSS idle and
 * with all of them waiting, each split by memorySplit. The rotations are terminated afterwards (the secrets stay
 * rotated).
 */
export async function benchMemory(secrets: string[], env: NodeJS.ProcessEnv = {}) {
  const taskQueue = uniqueName('bench-memory');
  const reportDir = mkdtempSync(path.join(tmpdir(), 'rotor-bench-report-'));
  const reportOptions = `--report-on-signal --report-signal=${REPORT_SIGNAL} --report-directory=${reportDir} --report-compact`;
  const child = spawn(process.execPath, [path.join(ROOT, 'packages/rotor/bin/rotor.js'), 'worker'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ROTOR_TASK_QUEUE: taskQueue,
      ROTOR_AUDIT_DISABLED: 'true',
      ROTOR_LOG_LEVEL: 'info',
      ...env,
      NODE_OPTIONS: [env.NODE_OPTIONS, reportOptions].filter(Boolean).join(' '),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const rotor = await rotationClient(taskQueue);
  try {
    // Ready once it says so; then measure idle.
    const deadline = Date.now() + 60_000;
    while (!output.includes('rotor worker started')) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${output}`);
      if (Date.now() > deadline) throw new Error(`worker did not start in 60 s: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1000)); // its pollers connect
    const idle = await memorySplit(child.pid!, reportDir);
    await mapLimit(secrets, 32, (secretId) => rotor.rotate(secretId, { graceMs: 60 * 60_000 }));
    const query = `${SearchAttribute.phase.name} = 'grace' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue}'`;
    let inGrace = 0;
    while ((inGrace = (await rotor.client.workflow.count(query)).count) < secrets.length) {
      if (child.exitCode !== null) throw new Error(`worker exited: ${output}`);
      if (Date.now() > deadline + secrets.length * 1000)
        throw new Error(`only ${inGrace} of ${secrets.length} reached grace`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    // Read 5 s after the last one reached grace, and again a minute later: V8's memory reducer and the allocator give
    // memory back only after some quiet time, and a grace period lasts hours.
    await new Promise((r) => setTimeout(r, 5000));
    const waiting = await memorySplit(child.pid!, reportDir);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = await memorySplit(child.pid!, reportDir);
    await mapLimit(secrets, 32, (secretId) =>
      rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).terminate('bench: memory measured'),
    );
    return {
      rotationsInGrace: inGrace,
      workerRssMiB: { idle: idle.rss, inGrace: waiting.rss, inGraceSettled: settled.rss },
      split: { idle, inGrace: waiting, inGraceSettled: settled },
      maxCachedWorkflows: env.ROTOR_MAX_CACHED_WORKFLOWS ?? 'rotor default',
      // What a cache smaller than the burst costs: workflows evicted while their local attempts ran (the attempt's
      // result then lands on no workflow and the step runs again after replay), and workflow tasks held open long.
      workerLog: {
        untrackedLocalActivity: (output.match(/Tried to complete untracked local activity/g) ?? []).length,
        sdkBugErrors: (output.match(/SDK bug/g) ?? []).length,
        longWorkflowTasks: (output.match(/Workflow task duration exceeded/g) ?? []).length,
      },
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
    await rotor.client.connection.close();
    rmSync(reportDir, { recursive: true, force: true });
  }
}
