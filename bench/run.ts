/**
 * `npm run bench`: rotor's speed and memory, measured on the local stack (never asserted in tests).
 *
 * - password generation: passwords per second under the default policy;
 * - rotations: N PostgreSQL secrets rotated at once through one in-process worker; wall time, rotation latency
 *   percentiles, per-step medians from the status query, and the worker's memory.
 *
 * - consumers: an application on rotor-consumers under load while ROTOR_BENCH_LOAD_ROTATIONS (default 100) rotations
 *   of each of the four strategies run back to back: requests served and failed, per version, beside the control.
 *
 * - apply: `rotor apply` of a rotor.yaml with M secrets on the dev server (create, then a second apply that changes
 *   nothing), and the schedules' cleanup.
 *
 * - sequential (bench/sequential.ts): rotor's sequential rotation beside the same work done in-process, the
 *   ratio, where the time goes (from the histories), and store calls per rotation.
 *
 * - fleet and memory (bench/fleet.ts): the store's own ceiling; ROTOR_BENCH_FLEET (default 1000) secrets rotated by
 *   one worker against it; a compiled `rotor worker` process's RSS with as many rotations waiting in grace
 *   (`npm run build` first; ROTOR_BENCH_MEMORY_CACHE sets its ROTOR_MAX_CACHED_WORKFLOWS,
 *   ROTOR_BENCH_MEMORY_NODE_OPTIONS its NODE_OPTIONS, ROTOR_BENCH_MEMORY_PRELOAD its LD_PRELOAD, an allocator such
 *   as jemalloc). Both report the cores each process used and, for memory, where the RSS is.
 *
 * - cli fleet (bench/fleet.ts): incident mode, `rotor rotate --all` from the CLI over ROTOR_BENCH_FLEET secrets: the
 *   time to the last completion, beside the store's ceiling.
 *
 * - dynamic (bench/dynamic.ts): short-lived credentials beside OpenBao's database engine on the same PostgreSQL
 *   with the same lifetimes (ROTOR_BENCH_DYNAMIC_TTL seconds, default 10): time to issue, what revocation leaves,
 *   logins left by an application restarting, failed queries under load through 5 maximum lifetimes.
 *
 * - imports (bench/imports.ts): the wall time of a fresh node requiring rotor-consumers, beside bare node and `pg`
 *   (ROTOR_BENCH_IMPORT_RUNS, default 20).
 *
 * - certificates (bench/certificates.ts): ACME renewals against Pebble beside certbot (PyPI, installed on first use):
 *   time to renew, what a running server serves after it, a renewal while the ACME server is down
 *   (ROTOR_BENCH_CERT_RENEWALS, default 5).
 * - rewrap (bench/rewrap.ts): a keyring's re-wrap of ROTOR_BENCH_REWRAP_ROWS rows (default 100,000) by rotor, beside a
 *   direct loop of the same work in one process and OpenBao transit's batch rewrap; rotor's worker peak memory.
 *
 * Prints a table and writes JSON to .bench/<timestamp>.json. ROTOR_BENCH_ROTATIONS sets N (default 20),
 * ROTOR_BENCH_SCHEDULES sets M (default 200), ROTOR_BENCH_SEQUENTIAL the sequential rotations (default 20);
 * ROTOR_BENCH_ONLY=sequential,apply runs only those parts (passwords, imports, sequential, concurrent, consumers, apply,
 * fleet, cli-fleet, memory, dynamic, certificates, rewrap).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { ScheduleManager, secretsOverview } from '../packages/rotor/src/client';
import { mapLimit } from '../packages/rotor/src/client/concurrency';
import { AwsSecretsManagerStore, SecretCache } from 'rotor-consumers';
import { parseConfig } from '../packages/rotor/src/config/rotor-config';
import { generatePassword } from '../packages/rotor/src/rotators/password-policy';
import { scheduleIdFor } from '../packages/rotor/src/shared/constants';
import { createRotorWorker } from '../packages/rotor/src/worker';
import { createLogger, installRuntime } from '../packages/rotor/src/worker/logger';
import { rotatingBackend, staticBackend, strategySecrets } from '../test/helpers/backends';
import { uniqueName } from '../test/helpers/env';
import { serveUnderLoad } from '../test/helpers/load-app';
import { formatCpu, measureCpu } from './cpu';
import { benchCliFleet, benchFleet, benchMemory, fleetSecrets } from './fleet';
import { benchCertificates } from './certificates';
import { benchRewrap } from './rewrap';
import { benchDynamic } from './dynamic';
import { benchImports } from './imports';
import { benchSequential } from './sequential';
import { createRole, createSecret, pgSecret, rotationClient, store } from '../test/helpers/stack';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function benchPasswords(): { perSecond: number; count: number } {
  const count = 20_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) generatePassword();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { perSecond: Math.round(count / seconds), count };
}

async function benchRotations(n: number) {
  installRuntime(createLogger('warn'));
  const taskQueue = uniqueName('bench');
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const worker = await createRotorWorker({ connection, namespace: 'default', taskQueue, store });
  const running = worker.run();
  const rotor = await rotationClient(taskQueue);
  const secrets: string[] = [];
  for (let i = 0; i < n; i++) {
    const username = uniqueName('rotor_bench').replace(/-/g, '_');
    const password = generatePassword();
    await createRole(username, password);
    const secretId = uniqueName('bench/pg');
    await createSecret(secretId, pgSecret(username, password));
    secrets.push(secretId);
  }
  const rssBefore = process.memoryUsage().rss;
  const t0 = Date.now();
  const latencies = await Promise.all(
    secrets.map(async (secretId) => {
      const start = Date.now();
      await rotor.rotate(secretId, { graceMs: 0 });
      const outcome = await rotor.wait(secretId);
      if (outcome.outcome !== 'completed') throw new Error(`${secretId}: ${outcome.outcome}`);
      return { ms: Date.now() - start, steps: outcome.result.status.steps };
    }),
  );
  const wallMs = Date.now() - t0;
  const rssAfter = process.memoryUsage().rss;
  const stepMedians: Record<string, number> = {};
  for (const step of ['prepare', 'create', 'set', 'test', 'finish', 'retire']) {
    const values = latencies
      .flatMap((l) => l.steps.filter((s) => s.step === step && s.endedAt))
      .map((s) => Date.parse(s.endedAt!) - Date.parse(s.startedAt))
      .sort((a, b) => a - b);
    stepMedians[step] = percentile(values, 50);
  }
  worker.shutdown();
  await running;
  await connection.close();
  await rotor.client.connection.close();
  const sorted = latencies.map((l) => l.ms).sort((a, b) => a - b);
  return {
    rotations: n,
    wallMs,
    rotationsPerSecond: Number((n / (wallMs / 1000)).toFixed(2)),
    latencyMs: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted.at(-1) },
    stepMedianMs: stepMedians,
    workerRssMiB: { before: Math.round(rssBefore / 2 ** 20), after: Math.round(rssAfter / 2 ** 20) },
  };
}

/**
 * An application on rotor-consumers (pooled queries and a login per request, over HTTP) under load while `n`
 * rotations of each strategy run back to back, beside the same application reading its password at start.
 */
async function benchConsumers(n: number) {
  installRuntime(createLogger('warn'));
  const taskQueue = uniqueName('bench-consumers');
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const worker = await createRotorWorker({ connection, namespace: 'default', taskQueue, store });
  const running = worker.run();
  const rotor = await rotationClient(taskQueue);
  const secretFor = strategySecrets('bench/consumers', new Set());
  const results = [];
  try {
    for (const engine of ['postgres', 'mysql'] as const) {
      for (const mode of ['single', 'alternating'] as const) {
        const secretId = await secretFor(engine, mode);
        const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 10 * 60_000 });
        const app = await serveUnderLoad(rotatingBackend(engine, cache, secretId));
        const naive = await serveUnderLoad(await staticBackend(engine, secretId), 1);
        const t0 = Date.now();
        try {
          for (let i = 0; i < n; i++) {
            await rotor.rotate(secretId, { graceMs: 0 });
            const outcome = await rotor.wait(secretId);
            if (outcome.outcome !== 'completed') throw new Error(`${secretId}: ${outcome.outcome}`);
          }
        } finally {
          await app.stop();
          await naive.stop();
        }
        const perVersion = [...app.served.values()].sort((a, b) => a - b);
        results.push({
          strategy: `${engine}-${mode === 'single' ? 'single-user' : 'alternating-users'}`,
          rotations: n,
          wallMs: Date.now() - t0,
          requests: app.total(),
          failed: app.failures.length,
          versionsServed: app.served.size,
          requestsPerVersion: { min: perVersion[0], median: percentile(perVersion, 50), max: perVersion.at(-1) },
          control: { requests: naive.total(), failed: naive.failures.length },
        });
      }
    }
  } finally {
    worker.shutdown();
    await running;
    await connection.close();
    await rotor.client.connection.close();
  }
  return results;
}

async function benchApply(m: number) {
  const taskQueue = uniqueName('bench-apply');
  const rotor = await rotationClient(taskQueue);
  const schedules = new ScheduleManager(rotor.client, taskQueue);
  const ids = Array.from({ length: m }, (_, i) => uniqueName(`bench/apply-${i}`));
  const config = parseConfig(
    `secrets:\n${ids.map((id) => `  - id: ${id}\n    schedule: { every: 30d, jitter: 1h }\n`).join('')}`,
  );
  const timed = async (work: () => Promise<unknown>) => {
    const t0 = Date.now();
    await work();
    return Date.now() - t0;
  };
  const {
    ms: createMs,
    cores,
    machineShare,
  } = await measureCpu(async () => schedules.apply(config, await schedules.plan(config)));
  let unchanged = 0;
  const secondMs = await timed(async () => {
    const plan = await schedules.plan(config);
    unchanged = plan.entries.filter((e) => e.action === 'unchanged').length;
  });
  let managed = 0;
  const statusMs = await timed(async () => (managed = (await secretsOverview(rotor.client, schedules)).length));
  await mapLimit(ids, 16, (id) => rotor.client.schedule.getHandle(scheduleIdFor(id)).delete());
  await rotor.client.connection.close();
  return {
    schedules: m,
    secondApplyUnchanged: unchanged,
    createMs,
    createCpu: { cores, machineShare },
    secondApplyMs: secondMs,
    statusMs,
    statusSecrets: managed,
  };
}

async function main(): Promise<void> {
  const only = process.env.ROTOR_BENCH_ONLY?.split(',').map((p) => p.trim());
  const wants = (part: string) => !only || only.includes(part);
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version };
  if (wants('passwords')) {
    const passwords = (results.passwords = benchPasswords());
    console.log(`password generation: ${passwords.perSecond.toLocaleString()} passwords/s`);
  }
  if (wants('imports')) {
    const imports = (results.imports = benchImports(Number(process.env.ROTOR_BENCH_IMPORT_RUNS ?? 20)));
    const bare = imports['bare node']!.medianMs;
    for (const [name, t] of Object.entries(imports)) {
      console.log(
        `import: ${name}: median ${t.medianMs} ms (min ${t.minMs}, max ${t.maxMs})${name === 'bare node' ? '' : `, ${t.medianMs - bare} ms over bare node`}`,
      );
    }
  }
  if (wants('sequential')) {
    const s = (results.sequential = await benchSequential(
      Number(process.env.ROTOR_BENCH_SEQUENTIAL ?? 20),
      process.env.ROTOR_AUDIT_URL,
    ));
    const path_ = s.criticalPathMedian;
    console.log(
      `sequential: ${s.rotations} PostgreSQL single-user rotations one after the other, grace 0${s.audit ? ', audit on' : ''}`,
    );
    console.log(
      `  direct (the same steps and store calls in-process): p50 ${s.directMs.p50} ms, p95 ${s.directMs.p95} ms`,
    );
    console.log(`  rotor: p50 ${s.rotorMs.p50} ms, p95 ${s.rotorMs.p95} ms; rotor/direct ${s.ratio}x`);
    console.log(
      `  per rotation (median): ${path_.workflowTasks} workflow tasks (${path_.workflowTaskMs} ms), ${path_.localActivities} local activities, ${path_.activities} ordinary activities (queued ${path_.activityQueueMs} ms, running ${path_.activityRunMs} ms), history spans ${path_.historyMs} ms`,
    );
    console.log(
      `  activities: ${Object.entries(path_.activitiesByType)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `  step medians (ms): ${Object.entries(s.stepMedianMs)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `  local activities on the critical path (median ms, worker's clock): ${Object.entries(path_.localMsByType)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    const calls = (c: Record<string, number>) =>
      Object.entries(c)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    console.log(
      `  store calls per rotation: rotor ${calls(s.storeCallsPerRotation.rotor)}; direct ${calls(s.storeCallsPerRotation.direct)}`,
    );
  }
  if (wants('concurrent')) {
    const n = Number(process.env.ROTOR_BENCH_ROTATIONS ?? 20);
    const rotations = (results.rotations = await benchRotations(n));
    console.log(`rotations: ${n} at once in ${rotations.wallMs} ms (${rotations.rotationsPerSecond}/s)`);
    console.log(
      `  latency p50 ${rotations.latencyMs.p50} ms, p95 ${rotations.latencyMs.p95} ms, max ${rotations.latencyMs.max} ms`,
    );
    console.log(
      `  step medians (ms): ${Object.entries(rotations.stepMedianMs)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log(
      `  worker process RSS: ${rotations.workerRssMiB.before} MiB before, ${rotations.workerRssMiB.after} MiB after`,
    );
  }
  if (wants('consumers')) {
    const consumers = (results.consumers = await benchConsumers(Number(process.env.ROTOR_BENCH_LOAD_ROTATIONS ?? 100)));
    for (const c of consumers) {
      console.log(
        `consumers, ${c.strategy}: ${c.rotations} rotations back to back in ${c.wallMs} ms; ${c.requests - c.failed} requests served, ${c.failed} failed, ` +
          `under ${c.versionsServed} versions (per version min ${c.requestsPerVersion.min}, median ${c.requestsPerVersion.median}, max ${c.requestsPerVersion.max}); ` +
          `password read at start: ${c.control.failed} of ${c.control.requests} failed`,
      );
    }
  }
  const fleetSize = Number(process.env.ROTOR_BENCH_FLEET ?? 1000);
  let fleetIds: string[] | undefined;
  if (wants('fleet')) {
    const { secretIds, ...fleet } = await benchFleet(
      fleetSize,
      Number(process.env.ROTOR_MAX_CONCURRENT_ACTIVITIES ?? 20),
    );
    fleetIds = secretIds;
    results.fleet = fleet;
    const f = fleet.fleet;
    console.log(
      `store ceiling: ${fleet.storeCeiling.callsPerSecond} calls/s at ${fleet.concurrency} at once (a rotation's mix, ${fleet.storeCeiling.seconds} s)`,
    );
    console.log(
      `fleet: ${fleet.secrets} secrets by one worker in ${f.seconds} s: ${f.rotationsPerSecond} rotations/s, p50 ${f.latencyMs.p50} ms, p95 ${f.latencyMs.p95} ms, ` +
        `max ${f.latencyMs.max} ms, ${f.failures} failed; ${f.storeCallsPerSecond} store calls/s (${f.storeCallsPerRotation} per rotation) = ${f.shareOfCeiling} of the ceiling`,
    );
    console.log(`  cpu during the ceiling: ${formatCpu(fleet.storeCeiling.cpu)}`);
    console.log(`  cpu during the fleet:   ${formatCpu(f.cpu)}`);
  }
  if (wants('cli-fleet')) {
    const f = (results.cliFleet = await benchCliFleet(
      fleetSize,
      Number(process.env.ROTOR_MAX_CONCURRENT_ACTIVITIES ?? 20),
    ));
    console.log(
      `cli fleet: rotor rotate --all over ${f.secrets} secrets (${f.concurrency} at once) exited ${f.exitCode} after ${f.seconds} s ` +
        `(the last completion): ${f.rotationsPerSecond} rotations/s, ${f.completed} completed; store ceiling ${f.storeCeilingCallsPerSecond} calls/s`,
    );
  }
  if (wants('memory')) {
    const cache = process.env.ROTOR_BENCH_MEMORY_CACHE;
    const nodeOptions = process.env.ROTOR_BENCH_MEMORY_NODE_OPTIONS;
    const preload = process.env.ROTOR_BENCH_MEMORY_PRELOAD;
    const memory = (results.memory = await benchMemory(fleetIds ?? (await fleetSecrets(fleetSize)), {
      ...(cache ? { ROTOR_MAX_CACHED_WORKFLOWS: cache } : {}),
      ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
      ...(preload ? { LD_PRELOAD: preload } : {}),
    }));
    console.log(
      `memory: a rotor worker process with ${memory.rotationsInGrace} rotations in grace: RSS ${memory.workerRssMiB.inGrace} MiB, ` +
        `a minute later ${memory.workerRssMiB.inGraceSettled} MiB (idle ${memory.workerRssMiB.idle} MiB), ` +
        `workflow cache ${memory.maxCachedWorkflows}${nodeOptions ? `, NODE_OPTIONS=${nodeOptions}` : ''}${preload ? `, LD_PRELOAD=${preload}` : ''}`,
    );
    const split = (m: typeof memory.split.idle) =>
      `file-backed ${m.fileBacked}, main heap ${m.mainHeap.total} (${m.mainHeap.used} used), workflow thread heap ` +
      `${m.workflowThreadHeaps.map((h) => `${h.total} (${h.used} used)`).join(' + ')}, native ${m.nativeAnonymous} MiB`;
    console.log(`  idle: ${split(memory.split.idle)}`);
    console.log(`  in grace: ${split(memory.split.inGrace)}`);
    console.log(`  a minute later: ${split(memory.split.inGraceSettled)}`);
    const log = memory.workerLog;
    console.log(
      `  worker log: ${log.untrackedLocalActivity} local attempts finished after their workflow left the cache, ${log.sdkBugErrors} "SDK bug" errors, ${log.longWorkflowTasks} workflow tasks over 5 s`,
    );
  }
  if (wants('dynamic')) {
    const d = (results.dynamic = await benchDynamic(Number(process.env.ROTOR_BENCH_DYNAMIC_TTL ?? 10)));
    console.log(
      `dynamic: short-lived PostgreSQL credentials, TTL ${d.ttlSeconds} s, maximum ${d.maxTtlSeconds} s; rotor | OpenBao's database engine`,
    );
    console.log(
      `  issue: median ${d.issueMs.rotor.median} ms, p95 ${d.issueMs.rotor.p95} ms (standby 2); median ${d.issueMs.rotorNoStandby.median} ms, p95 ${d.issueMs.rotorNoStandby.p95} ms (no standby) | median ${d.issueMs.openbao.median} ms, p95 ${d.issueMs.openbao.p95} ms`,
    );
    const rev = (r: { sessionAlive: boolean; roleLeft: boolean }) =>
      `session ${r.sessionAlive ? 'still open' : 'ended'}, login ${r.roleLeft ? 'left' : 'dropped'}`;
    console.log(`  revocation with a session open: ${rev(d.revocation.rotor)} | ${rev(d.revocation.openbao)}`);
    console.log(
      `  10 restarts without release: ${d.restarts.rotor.peak} logins live for ${d.restarts.rotor.liveForSeconds} s | ${d.restarts.openbao.peak} live for ${d.restarts.openbao.liveForSeconds} s`,
    );
    const load = (l: { served: number; failed: number; logins: number }) =>
      `${l.failed} failed of ${l.served} (${l.logins} logins)`;
    console.log(`  load through 5 maximum lifetimes: ${load(d.load.rotor)} | ${load(d.load.openbao)}`);
  }
  if (wants('certificates')) {
    const c = (results.certificates = await benchCertificates(Number(process.env.ROTOR_BENCH_CERT_RENEWALS ?? 5)));
    console.log(`certificates: ACME renewals against Pebble, ${c.renewals} each; rotor | certbot 5.8.0`);
    console.log(`  renew (median): ${c.rotor.renewMs.median} ms | ${c.certbot.renewMs.median} ms`);
    console.log(
      `  a running server after a renewal: serves the new certificate ${c.rotor.serving.swapMsAfterFinish.median} ms after finish (median) | ${c.certbot.serving.servesNewAfterRenewal ? 'serves the new one' : 'still serves the old one (no reload without a deploy hook)'}`,
    );
    console.log(
      `  ACME server down: ${c.rotor.acmeDown.outcome} in ${c.rotor.acmeDown.ms} ms (${c.rotor.acmeDown.says}) | exit ${c.certbot.acmeDown.exitCode} in ${c.certbot.acmeDown.ms} ms, certificate ${c.certbot.acmeDown.certificateChanged ? 'changed' : 'unchanged'} (${c.certbot.acmeDown.says.join(' ')})`,
    );
  }
  if (wants('rewrap')) {
    const r = (results.rewrap = await benchRewrap(Number(process.env.ROTOR_BENCH_REWRAP_ROWS ?? 100_000)));
    const rate = (x: { rowsPerSecond: number; ms: number } | { skipped: string }) =>
      'skipped' in x ? `skipped (${x.skipped})` : `${x.rowsPerSecond} rows/s (${x.ms} ms)`;
    console.log(`rewrap: ${r.rows} rows, pages of ${r.batch}; rotor | a direct loop | OpenBao transit's batch rewrap`);
    console.log(`  ${rate(r.rotor)} | ${rate(r.direct)} | ${rate(r.transit)}`);
    console.log(
      `  rotor / direct: ${r.ratio}; rotor's worker peak memory: ${r.rotor.peakWorkerRssMiB} MiB (${r.rotor.idleWorkerRssMiB} MiB before the re-wrap)`,
    );
  }
  if (wants('apply')) {
    const apply = (results.apply = await benchApply(Number(process.env.ROTOR_BENCH_SCHEDULES ?? 200)));
    console.log(
      `apply: ${apply.schedules} schedules created in ${apply.createMs} ms; a second apply plans ${apply.secondApplyUnchanged} of them unchanged in ${apply.secondApplyMs} ms`,
    );
    console.log(`  cpu during the first apply: ${formatCpu(apply.createCpu)}`);
    console.log(`status: the overview of ${apply.statusSecrets} managed secrets in ${apply.statusMs} ms`);
  }
  const out = path.resolve(__dirname, '../.bench');
  mkdirSync(out, { recursive: true });
  const file = path.join(out, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2));
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
