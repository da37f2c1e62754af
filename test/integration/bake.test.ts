import { escapeIdentifier, escapeLiteral } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RotationClient } from '../../packages/rotor/src/client';
import { AwsSecretsManagerStore, ConsumerReporter, SecretCache } from 'rotor-consumers';
import type { BakePolicy } from '../../packages/rotor/src/shared/bake';
import type { RotationResult } from '../../packages/rotor/src/shared/rotation';
import { rotatingPg } from '../helpers/backends';
import { runCli } from '../helpers/cli';
import { uniqueName, until } from '../helpers/env';
import { expectNoPasswords, newPassword, recordHistories } from '../helpers/hygiene';
import { serveUnderLoad } from '../helpers/load-app';
import { alertReceiver, auditDatabase, freePort, workerWithConfig } from '../helpers/ops';
import {
  adminSecret,
  createRole,
  createSecret,
  logsIn,
  pgSecret,
  rememberPasswords,
  roleWithSecret,
  store,
  tagSecret,
  waitForStatus,
  withAdmin,
} from '../helpers/stack';

/**
 * Automatic rollback on consumers' evidence: applications on rotor-consumers report their logins to the worker's
 * report endpoint (a token scoped to `it/bake-*`), and the rotation's bake window rolls back, passes or extends.
 */

const taskQueue = uniqueName('it-bake');
const passwords = new Set<string>();
/** Audit rows the tests read, for the hygiene check. */
const auditRows: string[] = [];
const outputs: string[] = [];
const token = `report-token-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
let auditDb: Awaited<ReturnType<typeof auditDatabase>>;
let alerts: Awaited<ReturnType<typeof alertReceiver>>;
let running: Awaited<ReturnType<typeof workerWithConfig>>;
let rotor: RotationClient;
let reportsUrl: string;
let master: string;

/** The rotation's result, once it ended without failing. */
async function ended(secretId: string): Promise<RotationResult> {
  const outcome = await rotor.wait(secretId);
  if (outcome.outcome === 'failed') throw new Error(outcome.message);
  return outcome.result;
}

const bake = (windowMs: number, maxWindowMs = 2 * windowMs): BakePolicy => ({
  windowMs,
  minEvents: 10,
  minInstances: 2,
  maxFailureShare: 0.2,
  maxWindowMs,
});
const oncall = { alerts: ['oncall'], stuckPhaseBudgetMs: 10 * 60_000 };

/** One application instance: its own cache, rotating pool and reporter, serving a login per request. */
async function instance(secretId: string, instanceId: string, refreshIntervalMs = 10 * 60_000) {
  const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs });
  const reporter = new ConsumerReporter({ url: reportsUrl, token, instanceId, flushIntervalMs: 200 });
  const app = await serveUnderLoad(rotatingPg(cache, secretId, { reporter, backoffMs: 50 }), 2);
  return {
    app,
    reporter,
    async stop() {
      await app.stop();
      await reporter.close();
    },
  };
}

beforeAll(async () => {
  auditDb = await auditDatabase('rotor_audit_bake');
  alerts = await alertReceiver();
  const port = await freePort();
  reportsUrl = `http://127.0.0.1:${port}`;
  master = await adminSecret('bake-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
  running = await workerWithConfig(
    taskQueue,
    `alerts:
  webhooks:
    oncall: { url: ${alerts.url}/oncall }
reports:
  port: ${port}
  host: 127.0.0.1
  tokens:
    - { name: it-apps, tokenFromEnv: IT_REPORT_TOKEN, secrets: ['it/bake-*'] }
secrets:
  - id: it/bake-placeholder
    schedule: { every: 30d }
`,
    { ROTOR_AUDIT_URL: auditDb.url, IT_REPORT_TOKEN: token },
  );
  ({ rotor } = running);
});

afterAll(async () => {
  await running?.stop();
  await alerts?.close();
  await auditDb?.drop();
});

describe('the report endpoint', () => {
  const post = (body: unknown, bearer = token) =>
    fetch(`${reportsUrl}/v1/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const line = (secretId: string) => ({
    secretId,
    versionId: 'v1',
    outcome: 'auth-failure',
    errorClass: '28P01',
    count: 1,
  });

  it('takes reports with a token for the secrets it is scoped to, and refuses the rest with the reason', async () => {
    expect((await post({ instanceId: 'i1', reports: [line('it/bake-nothing-running')] })).status).toBe(202);
    const unknown = await post({ instanceId: 'i1', reports: [line('it/bake-x')] }, 'not-the-token');
    expect(unknown.status).toBe(401);
    const outside = await post({ instanceId: 'i1', reports: [line('it/bake-x'), line('prod/db/other')] });
    expect(outside.status).toBe(403);
    expect(((await outside.json()) as { error: string }).error).toContain('prod/db/other');
    const malformed = await post('{"instanceId":');
    expect(malformed.status).toBe(400);
    const badOutcome = await post({
      instanceId: 'i1',
      reports: [{ ...line('it/bake-x'), outcome: 'password: hunter2' }],
    });
    expect(badOutcome.status).toBe(400);
    expect(((await badOutcome.json()) as { error: string }).error).toContain('reports.0.outcome');
    expect((await fetch(`${reportsUrl}/v1/reports`)).status).toBe(405);
  });
});

describe('a rotation with a bake window', () => {
  it('rolls back exactly once when three instances fail to log in with the new version while the previous one is healthy', async () => {
    // Alternating users: the rollback logs in as the master, whatever the applications' path did to the new login.
    const username = uniqueName('rotor_bake_storm').replace(/-/g, '_');
    await createRole(username, newPassword(passwords));
    const secretId = uniqueName('it/bake-storm');
    const original = await createSecret(secretId, pgSecret(username, [...passwords].at(-1)!, { masterarn: master }));
    // The previous login keeps working: the instances move to the new one when their caches refresh.
    const apps = await Promise.all([1, 2, 3].map((i) => instance(secretId, `storm-${i}`, 300)));
    try {
      await rotor.rotate(secretId, { graceMs: 120_000, bake: bake(60_000), reporting: oncall });
      await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      // The new login made to fail in the applications' path, behind rotor's back (a stale pooler, a replica).
      const next = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as { username: string };
      expect(next.username).not.toBe(username);
      const broken = newPassword(passwords);
      await withAdmin((admin) =>
        admin.query(`ALTER ROLE ${escapeIdentifier(next.username)} PASSWORD ${escapeLiteral(broken)}`),
      );
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('rolled-back');
      expect(outcome.status.rollbackBy).toBe('rotor:bake');
      expect(outcome.status.rollbackReason).toMatch(/^automatic: consumers' logins failed with the new version/);
      expect(outcome.status.bake).toMatchObject({ verdict: 'rolled-back' });
      expect(outcome.status.bake!.next.failingInstances).toBeGreaterThanOrEqual(2);
      // The previous credential is back, and every instance serves with it again.
      expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(original);
      const served = apps.map((a) => a.app.served.get(original) ?? 0);
      await until('every instance serving with the reinstated version', () =>
        apps.every((a, i) => (a.app.served.get(original) ?? 0) > served[i]!) ? true : undefined,
      );
    } finally {
      await Promise.all(apps.map((a) => a.stop()));
      await rememberPasswords(secretId, passwords);
    }
    const events = await auditDb.trail(secretId, (e) => e.some((x) => x.kind === 'alert-sent'));
    auditRows.push(JSON.stringify(events));
    const automatic = events.filter((e) => e.kind === 'auto-rollback');
    expect(automatic).toHaveLength(1);
    expect(automatic[0]!.actor).toBe('rotor:bake');
    expect(Number(automatic[0]!.detail?.newFailures)).toBeGreaterThanOrEqual(10 * 0.2);
    expect(Number(automatic[0]!.detail?.newFailingInstances)).toBeGreaterThanOrEqual(2);
    expect(events.filter((e) => e.kind === 'outcome').map((e) => e.outcome)).toEqual(['rolled-back']);
    const alert = await alerts.alertFor(secretId, 'rolled-back');
    expect(alert.body.rotor.message).toContain('automatic');
    expect(
      alerts.received.filter((r) => r.body.rotor.secretId === secretId && r.body.rotor.kind === 'rolled-back'),
    ).toHaveLength(1);
  });

  it('does not roll back for one noisy instance: the others log in, the bake passes, the rotation completes with 0 failed requests', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-noisy', passwords);
    const apps = await Promise.all([1, 2].map((i) => instance(secretId, `healthy-${i}`)));
    const noisy = new ConsumerReporter({ url: reportsUrl, token, instanceId: 'noisy-1', flushIntervalMs: 100 });
    try {
      await rotor.rotate(secretId, { graceMs: 6000, bake: bake(6000), reporting: oncall });
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      // One instance with a problem of its own: 50 refused logins with the new version.
      for (let i = 0; i < 50; i++)
        noisy.record({ secretId, versionId: grace.versions.current!, outcome: 'auth-failure', errorClass: '28P01' });
      await noisy.flush();
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('completed');
      expect(outcome.status.bake).toMatchObject({ verdict: 'passed' });
      expect(outcome.status.bake!.next).toMatchObject({ failures: 50, failingInstances: 1, instances: 3 });
    } finally {
      await Promise.all(apps.map((a) => a.stop()));
      await noisy.close();
      await rememberPasswords(secretId, passwords);
    }
    for (const a of apps) expect(a.app.failures).toEqual([]);
    const events = await auditDb.trail(secretId);
    auditRows.push(JSON.stringify(events));
    const kinds = events.map((e) => e.kind);
    expect(kinds).toContain('bake-passed');
    expect(kinds).not.toContain('auto-rollback');
  });

  it('extends the bake when no consumer reports (rotor status shows it), retires nothing while it is open, and alerts when it ends inconclusive', async () => {
    const username = uniqueName('rotor_bake_quiet').replace(/-/g, '_');
    const password = newPassword(passwords);
    await createRole(username, password);
    const secretId = uniqueName('it/bake-quiet');
    await createSecret(secretId, pgSecret(username, password, { masterarn: master }));
    await tagSecret(secretId, { 'rotor:retire': 'disable-login', 'rotor:live-sessions': 'proceed' });

    await rotor.rotate(secretId, { graceMs: 2000, bake: bake(2000, 12_000), reporting: oncall });
    const extended = await waitForStatus(rotor, secretId, (s) => (s.bake?.extensions ?? 0) >= 2);
    // Past grace (2 s) and two windows: still in grace, the previous login still works.
    expect(extended.phase).toBe('grace');
    expect(Date.parse(extended.bake!.endsAt) - Date.parse(extended.graceEndsAt!)).toBeGreaterThanOrEqual(4000);
    expect(await logsIn(username, password)).toBe(true);
    const shown = await runCli(taskQueue, ['status', secretId], {}, outputs);
    expect(shown.stdout).toMatch(
      /bake {7}open until \S+ \(extended \d×\); new version: 0 logins, 0 refused, from 0 instances/,
    );

    const outcome = await ended(secretId);
    await rememberPasswords(secretId, passwords);
    expect(outcome.outcome).toBe('completed');
    expect(outcome.status.bake).toMatchObject({ verdict: 'inconclusive', extensions: 5 });
    expect(await logsIn(username, password)).toBe(false);
    const events = await auditDb.trail(secretId, (e) => e.some((x) => x.kind === 'alert-sent'));
    auditRows.push(JSON.stringify(events));
    const kinds = events.map((e) => e.kind);
    expect(kinds.filter((k) => k === 'bake-extended')).toHaveLength(5);
    expect(kinds).toContain('bake-inconclusive');
    expect((await alerts.alertFor(secretId, 'bake-inconclusive')).body.rotor.message).toContain(
      'too few consumer reports',
    );
  });

  it('leaves no password in histories, worker logs or audit rows', async () => {
    expect(auditRows).toHaveLength(3);
    await expectNoPasswords(rotor.client, taskQueue, passwords, 'it/bake-', [
      ...auditRows,
      ...outputs,
      ...alerts.received.map((r) => r.raw),
    ]);
    await recordHistories(rotor.client, taskQueue, ['it/bake-storm', 'it/bake-noisy', 'it/bake-quiet']);
  });
});
