import { Client as PgClient } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../packages/rotor/src/audit/audit-store';
import type { RotationClient } from '../../packages/rotor/src/client';
import { rotationWorkflowId } from '../../packages/rotor/src/shared/constants';
import type { AlertKind } from '../../packages/rotor/src/shared/reporting';
import type { RotationReporting } from '../../packages/rotor/src/shared/rotation';
import { storeWritesTaskQueue } from '../../packages/rotor/src/worker/create-worker';
import { runCli } from '../helpers/cli';
import { uniqueName } from '../helpers/env';
import { holdDirectory, releaseHold, waitUntilHeld } from '../helpers/faulty-rotators';
import { localActivityTypes, replayFailures } from '../helpers/history';
import { historiesText, recordHistories } from '../helpers/hygiene';
import { alertReceiver, auditDatabase, freePort, workerWithConfig, type ReceivedAlert } from '../helpers/ops';
import {
  adminSecret,
  createRole,
  createSecret,
  pgSecret,
  rememberPasswords,
  roleWithSecret as roleWithSecretIn,
  waitForStatus,
  pgClientAs,
} from '../helpers/stack';
import { WorkerProcess } from '../helpers/worker-process';

/**
 * The operator's view of rotations on the real stack: a `rotor worker` process with a rotor.yaml, an audit database
 * of its own, webhook alerts to a local receiver, and its Prometheus endpoint.
 */

const taskQueue = uniqueName('it-ops');
const holdDir = holdDirectory();
const webhookToken = `token-${Math.random().toString(36).slice(2)}`;
const passwords = new Set<string>();
const outputs: string[] = [];
let auditDb: Awaited<ReturnType<typeof auditDatabase>>;
let auditUrl: string;
let trail: Awaited<ReturnType<typeof auditDatabase>>['trail'];
let running: Awaited<ReturnType<typeof workerWithConfig>>;
let worker: WorkerProcess;
let rotor: RotationClient;
let alerts: Awaited<ReturnType<typeof alertReceiver>>;
let received: ReceivedAlert[];
let metricsPort: number;
let sdkMetricsPort: number;
let managedId: string;
let managed: { secretId: string; username: string; password: string };
let auditedSecretId = '';

const roleWithSecret = (marker: string) => roleWithSecretIn('it', marker, passwords);
const oncall = (extra: Partial<RotationReporting> = {}): RotationReporting => ({
  alerts: ['oncall'],
  stuckPhaseBudgetMs: 60_000,
  ...extra,
});

/** Runs `work` on the audit database directly, as someone tampering with it would. */
async function withAuditDb<T>(work: (db: PgClient) => Promise<T>): Promise<T> {
  const db = new PgClient({ connectionString: auditUrl });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

const alertFor = (secretId: string, kind: AlertKind) => alerts.alertFor(secretId, kind);

beforeAll(async () => {
  auditDb = await auditDatabase('rotor_audit_it');
  ({ url: auditUrl, trail } = auditDb);
  alerts = await alertReceiver();
  received = alerts.received;
  const receiverUrl = alerts.url;

  metricsPort = await freePort();
  sdkMetricsPort = await freePort();
  managed = await roleWithSecret('ops-managed');
  managedId = managed.secretId;
  running = await workerWithConfig(
    taskQueue,
    `alerts:
  webhooks:
    oncall:
      urlFromEnv: IT_WEBHOOK_URL
      header: { name: X-Rotor-Token, valueFromEnv: IT_WEBHOOK_TOKEN }
    broken:
      url: ${receiverUrl}/broken
metrics: { port: ${metricsPort}, host: 127.0.0.1 }
throughput: { fleetStoreWritesPerSecond: 40 }
secrets:
  - id: ${managedId}
    schedule: { every: 30d }
`,
    {
      ROTOR_AUDIT_URL: auditUrl,
      ROTOR_METRICS_PORT: '',
      ROTOR_SDK_METRICS_ADDRESS: `127.0.0.1:${sdkMetricsPort}`,
      IT_WEBHOOK_URL: `${receiverUrl}/oncall`,
      IT_WEBHOOK_TOKEN: webhookToken,
    },
    holdDir,
  );
  ({ worker, rotor } = running);
});

afterAll(async () => {
  await running?.stop();
  await alerts?.close();
  await auditDb?.drop();
});

describe('audit trail', () => {
  it('records a full rotation: who triggered it, every step with its duration, the outcome and version ids', async () => {
    const { secretId, versionId } = await roleWithSecret('ops-audit');
    await rotor.rotate(secretId, { graceMs: 0, trigger: { kind: 'cli', by: 'alice' }, reporting: oncall() });
    const outcome = await rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberPasswords(secretId, passwords);
    const events = await trail(secretId);
    expect(events.map((e) => `${e.kind}:${e.step ?? e.outcome ?? ''}`)).toEqual([
      'triggered:',
      'step:prepare',
      'step:create',
      'step:set',
      'step:test',
      'step:finish',
      'step:retire',
      'outcome:completed',
    ]);
    expect(events[0]).toMatchObject({ actor: 'cli:alice', secretId });
    auditedSecretId = secretId;
    const current = outcome.outcome === 'completed' ? outcome.result.currentVersionId : '';
    expect(events.find((e) => e.step === 'create')?.versionId).toBe(current);
    expect(events.at(-1)).toMatchObject({ versionId: current, detail: { previousVersionId: versionId } });
    for (const e of events.filter((x) => x.kind === 'step')) expect(e.durationMs).toBeGreaterThanOrEqual(0);
    // Completed rotations are not alerted.
    expect(received.filter((r) => r.body.rotor.secretId === secretId)).toEqual([]);
    // With throughput.fleetStoreWritesPerSecond, the store writes ran as activities on the store-writes queue, which
    // the cluster paces; prepare is an ordinary activity; the other steps ran local-first in this worker (markers).
    const history = (await rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).fetchHistory()).events!;
    const scheduled = history
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a && a.activityType?.name !== 'appendAudit' && a.activityType?.name !== 'rotationEnded')
      .map(
        (a) =>
          `${a!.activityType!.name}@${a!.taskQueue!.name === taskQueue ? 'main' : a!.taskQueue!.name === storeWritesTaskQueue(taskQueue) ? 'store-writes' : a!.taskQueue!.name}`,
      );
    expect(scheduled).toEqual(['prepareRotation@main', 'createPending@store-writes', 'finishRotation@store-writes']);
    const local = localActivityTypes(history).filter((type) => type !== 'appendAudit' && type !== 'rotationEnded');
    expect(local).toEqual(['setPending', 'testPending', 'retirePrevious']);
  });

  it('records a compensation with the failed step, and alerts on it with the route header', async () => {
    const { secretId } = await roleWithSecret('ops-fail-test');
    await rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2, reporting: oncall() });
    await rotor.wait(secretId);
    const alert = await alertFor(secretId, 'compensated');
    expect(alert.path).toBe('/oncall');
    expect(alert.headers['x-rotor-token']).toBe(webhookToken);
    expect(alert.body.text).toContain(secretId);
    expect(alert.body.rotor).toMatchObject({ step: 'test', phase: 'compensated' });
    expect(alert.body.rotor.uiUrl).toContain(encodeURIComponent(`rotor/rotate/${secretId}`));
    const events = await trail(secretId, (e) => e.some((x) => x.kind === 'alert-sent'));
    const kinds = events.map((e) => `${e.kind}:${e.step ?? e.outcome ?? ''}`);
    expect(kinds).toEqual(
      expect.arrayContaining(['step-failed:test', 'step:compensate', 'outcome:compensated', 'alert-sent:compensated']),
    );
    expect(events.find((e) => e.kind === 'step-failed')?.detail?.error).toMatch(/injected by the test rotator/);
  });

  it('records a rollback with the operator who asked, and alerts on it', async () => {
    const { secretId } = await roleWithSecret('ops-rollback');
    await rotor.rotate(secretId, { graceMs: 3_600_000, reporting: oncall() });
    await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
    const inGrace = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(Number(/^rotor_rotations_in_grace (\d+)/m.exec(inGrace)?.[1])).toBeGreaterThanOrEqual(1);
    await rotor.rollback(secretId, 'errors after deploy', 'bob');
    expect((await rotor.wait(secretId)).outcome).toBe('rolled-back');
    await rememberPasswords(secretId, passwords);
    await alertFor(secretId, 'rolled-back');
    const events = await trail(secretId);
    expect(events.find((e) => e.kind === 'rollback-requested')).toMatchObject({
      actor: 'signal:bob',
      detail: { reason: 'errors after deploy' },
    });
    expect(events.some((e) => e.kind === 'step' && e.step === 'rollback')).toBe(true);
    expect(events.find((e) => e.kind === 'outcome')?.outcome).toBe('rolled-back');
  });

  it('`rotor audit verify` finds the chain intact, then names the row an UPDATE edited; `rotor history` reads the trail', async () => {
    const env = { ROTOR_AUDIT_URL: auditUrl };
    const intact = await runCli(taskQueue, ['audit', 'verify'], env, outputs);
    expect(intact.stderr).toBe('');
    expect(intact.code).toBe(0);
    const head = /audit trail intact: \d+ events, head (\d+:[0-9a-f]{64})/.exec(intact.stdout)?.[1];
    expect(head).toBeDefined();
    const anchored = await runCli(taskQueue, ['audit', 'verify', '--anchor', head!], env, outputs);
    expect(anchored).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`anchor ${head!.split(':')[0]}: still there, unchanged`),
    });
    // Deleting the newest row leaves a shorter chain that is valid by itself: only the anchor shows it.
    await withAuditDb((db) => db.query('DELETE FROM rotor_audit_events WHERE seq = $1', [Number(head!.split(':')[0])]));
    expect((await runCli(taskQueue, ['audit', 'verify'], env, outputs)).code).toBe(0);
    const truncated = await runCli(taskQueue, ['audit', 'verify', '--anchor', head!, '--json'], env, outputs);
    expect(truncated.code).toBe(5);
    expect(JSON.parse(truncated.stdout).problems).toEqual([
      { seq: Number(head!.split(':')[0]), problem: 'the anchored row is gone: the newest rows were deleted' },
    ]);
    expect((await runCli(taskQueue, ['audit', 'verify', '--anchor', 'seq-1'], env, outputs)).code).toBe(2);

    const secretId = auditedSecretId;
    const history = await runCli(taskQueue, ['history', secretId], env, outputs);
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/^AT\s+EVENT\s+STEP\s+OUTCOME\s+TOOK\s+VERSION\s+BY/);
    expect(history.stdout).toContain('outcome');
    const json = JSON.parse(
      (await runCli(taskQueue, ['history', secretId, '--json'], env, outputs)).stdout,
    ) as AuditRecord[];
    expect(json.length).toBeGreaterThan(5);

    const target = json.find((e) => e.kind === 'outcome')!;
    await withAuditDb((db) =>
      db.query(`UPDATE rotor_audit_events SET outcome = 'tampered' WHERE seq = $1`, [target.seq]),
    );
    const away = await runCli(
      taskQueue,
      ['audit', 'verify'],
      { ROTOR_AUDIT_URL: 'postgres://auditor:hunter2-secret@127.0.0.1:1/rotor_audit' },
      outputs,
    );
    expect(away.code).toBe(4);
    expect(away.stderr).toMatch(
      /^rotor: .*audit database rotor_audit at 127\.0\.0\.1:1.* — check that it is up and reachable from here\n$/,
    );
    expect(away.stderr).not.toContain('hunter2-secret');
    const none = await runCli(taskQueue, ['history', `${secretId}-none`, '--json'], env, outputs);
    expect(none).toMatchObject({ code: 3, stdout: '[]\n' });

    const broken = await runCli(taskQueue, ['audit', 'verify', '--json'], env, outputs);
    expect(broken.code).toBe(5);
    const result = JSON.parse(broken.stdout);
    expect(result.ok).toBe(false);
    expect(result.problems.map((p: { seq: number }) => p.seq)).toContain(target.seq);
  });
});

describe('alerts', () => {
  it('alerts when a rotation fails outright, and audits the alert', async () => {
    const secretId = uniqueName('it/ops-invalid');
    await createSecret(secretId, { engine: 'postgres', password: 'not-a-login' });
    passwords.add('not-a-login');
    await rotor.rotate(secretId, { graceMs: 0, reporting: oncall() });
    await rotor.wait(secretId);
    const alert = await alertFor(secretId, 'rotation-failed');
    expect(alert.body.rotor).toMatchObject({ step: 'prepare', phase: 'failed' });
    expect(alert.body.rotor.message).toMatch(/host: is required/);
    await trail(secretId, (e) => e.some((x) => x.kind === 'alert-sent'));
  });

  it('alerts when a phase outlasts its budget', async () => {
    const { secretId } = await roleWithSecret('ops-hold-test');
    await rotor.rotate(secretId, { graceMs: 0, reporting: oncall({ stuckPhaseBudgetMs: 1500 }) });
    await waitUntilHeld(holdDir, secretId);
    const alert = await alertFor(secretId, 'stuck');
    expect(alert.body.rotor).toMatchObject({ phase: 'testing' });
    expect(alert.body.rotor.message).toMatch(/has been testing for more than 1\.5s/);
    releaseHold(holdDir, secretId);
    expect((await rotor.wait(secretId)).outcome).toBe('completed');
    await rememberPasswords(secretId, passwords);
  });

  it('alerts when retirement waits on live sessions of the previous login', async () => {
    const masterId = await adminSecret('ops-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
    const base = uniqueName('rotor_ops_alt').replace(/-/g, '_');
    const password = `Init-${Math.random().toString(36).slice(2)}`;
    passwords.add(password);
    await createRole(base, password);
    const secretId = uniqueName('it/ops-alt');
    await createSecret(secretId, pgSecret(base, password, { masterarn: masterId }));
    const session = pgClientAs(base, password);
    await session.connect();
    try {
      await rotor.rotate(secretId, {
        graceMs: 0,
        overrides: { retirement: { retire: 'disable-login', liveSessions: 'wait', maxWaitMs: 120_000 } },
        reporting: oncall(),
      });
      const alert = await alertFor(secretId, 'awaiting-sessions');
      expect(alert.body.rotor.message).toMatch(/waits for 1 live sessions/);
    } finally {
      await session.end();
    }
    const outcome = await rotor.wait(secretId);
    expect(outcome.outcome === 'completed' && outcome.result.retirement).toBe('disabled-login');
    await rememberPasswords(secretId, passwords);
  });

  it('retries a failing receiver, then audits the failed delivery without its URL', async () => {
    const { secretId } = await roleWithSecret('ops-broken-fail-test');
    await rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 1, reporting: { alerts: ['broken'] } });
    await rotor.wait(secretId);
    const events = await trail(secretId, (e) => e.some((x) => x.kind === 'alert-failed'));
    const failed = events.find((e) => e.kind === 'alert-failed')!;
    expect(failed).toMatchObject({ outcome: 'compensated', detail: { route: 'broken', attempts: 5 } });
    expect(failed.detail?.error).toMatch(/HTTP 500/);
    expect(JSON.stringify(failed)).not.toContain('127.0.0.1');
    expect(received.filter((r) => r.path === '/broken' && r.body.rotor.secretId === secretId)).toHaveLength(5);
  });
});

describe('worker settings', () => {
  it('a worker without ROTOR_AUDIT_URL refuses to start, and names the way out', async () => {
    await expect(WorkerProcess.start(uniqueName('it-no-audit'), undefined, { ROTOR_AUDIT_URL: '' })).rejects.toThrow(
      /ROTOR_AUDIT_URL is not set — point it at the audit trail database, or set ROTOR_AUDIT_DISABLED=true/,
    );
  });
});

describe('metrics', () => {
  it('serves rotations by rotator and outcome, step durations and rotations in grace, with bounded labels', async () => {
    const text = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    const count = (outcome: string) =>
      Number(
        new RegExp(`^rotor_rotations_total\\{rotator="postgres-single-user",outcome="${outcome}"\\} (\\d+)`, 'm').exec(
          text,
        )?.[1],
      );
    expect(count('completed')).toBeGreaterThanOrEqual(2);
    expect(count('compensated')).toBeGreaterThanOrEqual(2);
    expect(count('rolled-back')).toBe(1);
    expect(text).toMatch(/^rotor_rotations_total\{rotator="postgres-alternating-users",outcome="completed"\} 1/m);
    expect(text).toMatch(
      /^rotor_step_duration_seconds_count\{step="set",rotator="postgres-single-user",result="ok"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^rotor_step_duration_seconds_count\{step="test",rotator="postgres-single-user",result="error"\} [1-9]/m,
    );
    expect(text).toMatch(/^rotor_rotations_in_grace 0$/m);
    // Only secrets of rotor.yaml get a per-secret series: label cardinality stays bounded by the file.
    expect(text).not.toMatch(/secret_id="it\/ops-audit/);
    const sdk = await scrape(`http://127.0.0.1:${sdkMetricsPort}/metrics`);
    expect(sdk).toMatch(/^temporal_/m);
  });

  it('reports the time since the last successful rotation of each managed secret', async () => {
    const since = async () => {
      const text = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
      const escaped = managedId.replace(/[/.-]/g, (c) => `\\${c}`);
      return Number(
        new RegExp(`^rotor_seconds_since_last_success\\{secret_id="${escaped}"\\} ([\\d.e+-]+)`, 'm').exec(text)?.[1],
      );
    };
    // Seeded at start from the store: the secret's AWSCURRENT was created before the worker started.
    const before = await since();
    expect(before).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await since()).toBeGreaterThan(before);
    await rotor.rotate(managedId, { graceMs: 0 });
    expect((await rotor.wait(managedId)).outcome).toBe('completed');
    await rememberPasswords(managedId, passwords);
    expect(await since()).toBeLessThan(before);
  });
});

describe('replay', () => {
  // A slow step's local attempt outlasts the stuck budget here: the alert is raised while it runs.
  it('every rotation of this file replays from its history, the held step with its stuck alert included', async () => {
    expect(await replayFailures(rotor.client, taskQueue)).toEqual([]);
  });
});

describe('secret hygiene', () => {
  it('no password in histories, audit rows, alerts, worker logs or CLI output', async () => {
    await recordHistories(rotor.client, taskQueue, [
      'it/ops-audit',
      'it/ops-fail-test',
      'it/ops-rollback',
      'it/ops-hold-test',
      'it/ops-alt',
    ]);
    const { text } = await historiesText(rotor.client, taskQueue);
    const db = new PgClient({ connectionString: auditUrl });
    await db.connect();
    const rows = JSON.stringify((await db.query('SELECT * FROM rotor_audit_events')).rows);
    await db.end();
    const everything = [text, rows, ...received.map((r) => r.raw), worker.logs, ...outputs].join('\n');
    for (const p of passwords) expect(everything).not.toContain(p);
    expect(everything).not.toContain(webhookToken);
  });
});

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}
