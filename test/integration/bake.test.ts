import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RotationClient } from '../../packages/rotor/src/client';
import { AwsSecretsManagerStore, ConsumerReporter, SecretCache } from 'rotor-consumers';
import type { BakePolicy } from '../../packages/rotor/src/shared/bake';
import { rotationWorkflowId, scheduleIdFor, SignalName, UpdateName } from '../../packages/rotor/src/shared/constants';
import { HISTORY_CEILING } from '../../packages/rotor/src/workflows/rotate-secret';
import type { RotationResult } from '../../packages/rotor/src/shared/rotation';
import { rotatingPg } from '../helpers/backends';
import { runCli } from '../helpers/cli';
import { uniqueName, until } from '../helpers/env';
import { fetchFrom } from '../helpers/hosts';
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
 * report endpoint (a token scoped to `it/*`), and the rotation's bake window rolls back, passes or extends. The
 * endpoint tells instances apart by their address: each instance here reports from its own 127.0.0.x, as hosts do.
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

/** A reporter on its own address, as one host's. */
const reporterAt = (address: string, instanceId = address) =>
  new ConsumerReporter({ url: reportsUrl, token, instanceId, flushIntervalMs: 200, fetch: fetchFrom(address) });

/** One application instance at `address`: its own cache, rotating pool and reporter, serving a login per request. */
async function instance(secretId: string, address: string, refreshIntervalMs = 10 * 60_000) {
  const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs });
  const reporter = reporterAt(address);
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
  forwardEvery: 500ms
  tokens:
    - { name: it-apps, tokenFromEnv: IT_REPORT_TOKEN, secrets: ['it/*'] }
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

describe('one token holder against the fleet (docs/consumers.md, "What a token can do")', () => {
  /** A forger holding the applications' token, on one host: raw POSTs, made-up instance ids, any counts. */
  const forge = async (secretId: string, versionId: string, outcome: 'success' | 'auth-failure') => {
    const send = fetchFrom('127.0.2.1');
    const post = (body: unknown) =>
      send(`${reportsUrl}/v1/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const instanceId of ['made-up-1', 'made-up-2'])
      expect((await post({ instanceId, reports: [{ secretId, versionId, outcome, count: 1_000_000 }] })).status).toBe(
        202,
      );
    // Floods that differ only in error class and version: they used to push the real reports out of the signal.
    for (let p = 0; p < 7; p++) {
      const reports = Array.from({ length: 1000 }, (_, i) => ({
        secretId,
        versionId: i % 2 ? versionId : `forged-${p}-${i}`,
        outcome,
        errorClass: `E${p}-${i}`,
        count: 1_000_000,
      }));
      expect((await post({ instanceId: `flood-${p}`, reports })).status).toBe(202);
    }
  };
  /** Ten real instances, each on its own address, reporting 50 logins with `versionId`. */
  const fleet = async (secretId: string, versionId: string, outcome: 'success' | 'auth-failure') => {
    const reporters = Array.from({ length: 10 }, (_, i) => reporterAt(`127.0.1.${i + 1}`));
    for (const r of reporters)
      for (let n = 0; n < 50; n++)
        r.record({ secretId, versionId, outcome, ...(outcome === 'success' ? {} : { errorClass: '28P01' }) });
    await Promise.all(reporters.map((r) => r.close()));
    expect(reporters.map((r) => r.dropped)).toEqual(Array(10).fill(0));
  };
  const signalsIn = async (secretId: string) => {
    const history = await rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).fetchHistory();
    return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
  };

  it('cannot roll back a healthy rotation: ten real instances pass it, whatever one forger claims', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-forged', passwords);
    try {
      const startedAt = Date.now();
      await rotor.rotate(secretId, { graceMs: 8000, bake: bake(8000), reporting: oncall });
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      await fleet(secretId, grace.versions.current!, 'success');
      await forge(secretId, grace.versions.current!, 'auth-failure');
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('completed');
      expect(outcome.status.bake).toMatchObject({ verdict: 'passed' });
      // The forger is one instance (its host), however many ids it made up; its counts weigh one vote.
      expect(outcome.status.bake!.next).toMatchObject({ instances: 11, failingInstances: 1 });
      // Each forward is a signal, at most one per forwardEvery (500 ms) while the window was open.
      expect(await signalsIn(secretId)).toBeLessThanOrEqual(Math.ceil((Date.now() - startedAt) / 500) + 2);
    } finally {
      await rememberPasswords(secretId, passwords);
    }
  });

  it('cannot mask ten instances that fail: the rotation rolls back', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-masked', passwords);
    try {
      await rotor.rotate(secretId, { graceMs: 8000, bake: bake(8000), reporting: oncall });
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      await forge(secretId, grace.versions.current!, 'success');
      await fleet(secretId, grace.versions.current!, 'auth-failure');
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('rolled-back');
      expect(outcome.status.rollbackBy).toBe('rotor:bake');
      expect(outcome.status.bake!.next).toMatchObject({ instances: 11, failingInstances: 10 });
    } finally {
      await rememberPasswords(secretId, passwords);
    }
  });

  it('sends a rotation with no bake window nothing: reports at 10 logins a second through grace add no event to its history', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-none', passwords);
    const reporter = reporterAt('127.0.3.1');
    try {
      await rotor.rotate(secretId, { graceMs: 10 * 60_000, reporting: oncall });
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      const handle = rotor.client.workflow.getHandle(rotationWorkflowId(secretId));
      const before = (await handle.describe()).historyLength;
      for (let tick = 0; tick < 30; tick++) {
        reporter.record({ secretId, versionId: grace.versions.current!, outcome: 'success' });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await reporter.flush();
      await new Promise((resolve) => setTimeout(resolve, 1200)); // two forwards' time
      expect(reporter.dropped).toBe(0);
      expect((await handle.describe()).historyLength).toBe(before);
      expect(await signalsIn(secretId)).toBe(0);
      await rotor.endGrace(secretId, 'it');
      expect((await ended(secretId)).outcome).toBe('completed');
    } finally {
      await reporter.close();
      await rememberPasswords(secretId, passwords);
    }
  });

  it('an incident rotation (--no-bake) is never rolled back automatically, though its consumers report failures', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-incident', passwords);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'rotor-it-incident-')), 'rotor.yaml');
    writeFileSync(
      file,
      `secrets:\n  - id: ${secretId}\n    schedule: { every: 30d }\n    grace: 6s\n    bake: { window: 6s, minEvents: 10 }\n`,
    );
    expect((await runCli(taskQueue, ['apply', '-f', file], {}, outputs)).code).toBe(0);
    try {
      const started = await runCli(taskQueue, ['rotate', secretId, '--no-bake'], {}, outputs);
      expect(started.code).toBe(0);
      expect(started.stdout).toContain('note: --no-bake: this rotation does not bake');
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      expect(grace.bake).toBeUndefined();
      await fleet(secretId, grace.versions.current!, 'auth-failure');
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('completed');
      expect(outcome.status.rollbackBy).toBeUndefined();
    } finally {
      await rotor.client.schedule.getHandle(scheduleIdFor(secretId)).delete();
      await rememberPasswords(secretId, passwords);
    }
  });
});

describe('a long grace under a flood of signals and Updates', () => {
  it('continues as new at its history ceiling, keeps its state, and still rolls back', async () => {
    const { secretId, versionId: original } = await roleWithSecret('it', 'bake-flood', passwords);
    const id = rotationWorkflowId(secretId);
    try {
      await rotor.rotate(secretId, { graceMs: 30 * 60_000, bake: bake(10 * 60_000), reporting: oncall });
      const grace = await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
      const next = grace.versions.current!;
      // Real evidence before the flood: two hosts log in with the new version.
      for (const address of ['127.0.4.1', '127.0.4.2']) {
        const reporter = reporterAt(address);
        for (let n = 0; n < 10; n++) reporter.record({ secretId, versionId: next, outcome: 'success' });
        await reporter.close();
      }
      await waitForStatus(rotor, secretId, (s) => (s.bake?.next.instances ?? 0) === 2);

      // Anyone who can reach the workflow: report signals on versions it does not watch, signals it ignores, and
      // Updates it accepts: each is recorded in its history.
      const handle = rotor.client.workflow.getHandle(id);
      const forged = Array.from({ length: 5 }, (_, i) => ({
        instanceId: `forged-${i}`,
        versionId: `forged-version-${i}`,
        outcome: 'auth-failure',
        count: 1,
      }));
      let accepted = 0;
      const runs = async () => {
        const found: { runId: string; status: string }[] = [];
        for await (const e of rotor.client.workflow.list({ query: `WorkflowId = "${id}"` }))
          found.push({ runId: e.runId, status: e.status.name });
        return found;
      };
      // Steadily: bursts of 30 signals, an Update every tenth burst, until the rotation has run three times.
      for (let round = 0; round < 1000 && (round % 10 !== 0 || (await runs()).length < 3); round++) {
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            i % 2 === 0
              ? handle.signal(SignalName.consumerReport, { reports: forged })
              : handle.signal(SignalName.extendGrace, { byMs: 'forever' }),
          ),
        );
        if (round % 10 === 0) {
          await until('the Update accepted', () =>
            handle.executeUpdate(UpdateName.extendGrace, { args: [{ byMs: 1, by: 'it-flood' }] }).then(
              () => true,
              // While a run hands over to the next, the Update may find no workflow task to run in: asked again.
              (error: Error) =>
                /Workflow Task in failed state|continued as new/i.test(error.message)
                  ? undefined
                  : Promise.reject(error),
            ),
          );
          accepted++;
        }
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      const chain = await runs();
      expect(chain.length).toBeGreaterThanOrEqual(3);
      for (const run of chain.filter((r) => r.status === 'CONTINUED_AS_NEW')) {
        const length = (await rotor.client.workflow.getHandle(id, run.runId).describe()).historyLength;
        expect(length).toBeLessThanOrEqual(HISTORY_CEILING + 200);
      }

      // The latest run goes on where the first stopped: grace, its end moved by every accepted Update, the evidence.
      const status = (await rotor.status(secretId))!;
      expect(status.phase).toBe('grace');
      expect(status.token).toBe(grace.token);
      expect(Date.parse(status.graceEndsAt!) - Date.parse(grace.graceEndsAt!)).toBe(accepted);
      expect(status.bake).toMatchObject({ next: { instances: 2, failingInstances: 0, successes: 20 } });
      expect(status.bake!.verdict).toBeUndefined();
      const shown = await runCli(taskQueue, ['status', secretId], {}, outputs);
      expect(shown.stdout).toContain('grace');

      await rotor.rollback(secretId, 'it: after the flood', 'it');
      const outcome = await ended(secretId);
      expect(outcome.outcome).toBe('rolled-back');
      expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(original);
    } finally {
      await rememberPasswords(secretId, passwords);
    }
    const events = await auditDb.trail(secretId, (e) => e.some((x) => x.kind === 'outcome'));
    auditRows.push(JSON.stringify(events));
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    expect(events.filter((e) => e.kind === 'triggered')).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'outcome').map((e) => e.outcome)).toEqual(['rolled-back']);
  });
});

describe('a rotation with a bake window', () => {
  it('rolls back exactly once when three instances fail to log in with the new version while the previous one is healthy; with maxAutoRollbacksPerDay: 1 the next such rollback within a day is withheld and alerted, and an operator rolls back by hand', async () => {
    // Alternating users: the rollback logs in as the master, whatever the applications' path did to the new login.
    const username = uniqueName('rotor_bake_storm').replace(/-/g, '_');
    await createRole(username, newPassword(passwords));
    const secretId = uniqueName('it/bake-storm');
    const original = await createSecret(secretId, pgSecret(username, [...passwords].at(-1)!, { masterarn: master }));
    // The previous login keeps working: the instances move to the new one when their caches refresh.
    const apps = await Promise.all([1, 2, 3].map((i) => instance(secretId, `127.0.0.${10 + i}`, 300)));
    try {
      const capped = { ...bake(60_000), maxAutoRollbacksPerDay: 1 };
      /** Rotates, then makes the new login fail in the applications' path, behind rotor's back (a stale pooler). */
      const rotateIntoABrokenLogin = async () => {
        await rotor.rotate(secretId, { graceMs: 120_000, bake: capped, reporting: oncall });
        await waitForStatus(rotor, secretId, (s) => s.phase === 'grace');
        const next = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as { username: string };
        expect(next.username).not.toBe(username);
        const broken = newPassword(passwords);
        await withAdmin((admin) =>
          admin.query(`ALTER ROLE ${escapeIdentifier(next.username)} PASSWORD ${escapeLiteral(broken)}`),
        );
      };
      await rotateIntoABrokenLogin();
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

      // The same breakage again within the day: one automatic rollback already, so this one is withheld. The new
      // version stays, grace goes on (the previous credential still works), and on-call is told to decide.
      await rotateIntoABrokenLogin();
      const withheld = await waitForStatus(rotor, secretId, (s) => s.bake?.verdict === 'rollback-withheld');
      expect(withheld.phase).toBe('grace');
      expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(withheld.token);
      const notice = await alerts.alertFor(secretId, 'auto-rollback-withheld');
      expect(notice.body.rotor.message).toContain('1 automatic rollbacks in the last 24 h');
      expect(notice.body.rotor.message).toContain(`rotor rollback ${secretId}`);
      // As the alert says: an operator rolls back by hand.
      await rotor.rollback(secretId, 'the bake saw failures and the cap withheld the rollback', 'oncall@example.com');
      const byHand = await ended(secretId);
      expect(byHand.outcome).toBe('rolled-back');
      expect(byHand.status.rollbackBy).toBe('oncall@example.com');
      expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(original);
    } finally {
      await Promise.all(apps.map((a) => a.stop()));
      await rememberPasswords(secretId, passwords);
    }
    const events = await auditDb.trail(
      secretId,
      (e) => e.filter((x) => x.kind === 'outcome').length === 2 && e.filter((x) => x.kind === 'alert-sent').length >= 3,
    );
    auditRows.push(JSON.stringify(events));
    const automatic = events.filter((e) => e.kind === 'auto-rollback');
    expect(automatic).toHaveLength(1);
    const held = events.filter((e) => e.kind === 'auto-rollback-withheld');
    expect(held).toHaveLength(1);
    expect(held[0]!.detail).toMatchObject({ autoRollbacksLastDay: 1, maxAutoRollbacksPerDay: 1 });
    expect(automatic[0]!.actor).toBe('rotor:bake');
    expect(Number(automatic[0]!.detail?.newFailures)).toBeGreaterThanOrEqual(10 * 0.2);
    expect(Number(automatic[0]!.detail?.newFailingInstances)).toBeGreaterThanOrEqual(2);
    expect(events.filter((e) => e.kind === 'outcome').map((e) => e.outcome)).toEqual(['rolled-back', 'rolled-back']);
    const alert = await alerts.alertFor(secretId, 'rolled-back');
    expect(alert.body.rotor.message).toContain('automatic');
    expect(
      alerts.received
        .filter((r) => r.body.rotor.secretId === secretId && r.body.rotor.kind === 'rolled-back')
        .map((r) => r.body.rotor.message.includes('automatic')),
    ).toEqual([true, false]);
  });

  it('does not roll back for one noisy instance: the others log in, the bake passes, the rotation completes with 0 failed requests', async () => {
    const { secretId } = await roleWithSecret('it', 'bake-noisy', passwords);
    const apps = await Promise.all([1, 2].map((i) => instance(secretId, `127.0.0.${20 + i}`)));
    const noisy = reporterAt('127.0.0.23');
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
    expect(auditRows).toHaveLength(4);
    await expectNoPasswords(rotor.client, taskQueue, passwords, 'it/bake-', [
      ...auditRows,
      ...outputs,
      ...alerts.received.map((r) => r.raw),
    ]);
    await recordHistories(rotor.client, taskQueue, [
      'it/bake-storm',
      'it/bake-noisy',
      'it/bake-quiet',
      'it/bake-flood',
    ]);
  });
});
