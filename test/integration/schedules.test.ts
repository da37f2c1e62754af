import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore } from '../../packages/rotor/src/audit/audit-store';
import { planSummary, ScheduleManager } from '../../packages/rotor/src/client';
import { parseConfig, type RotorConfig } from '../../packages/rotor/src/config/rotor-config';
import { rotationWorkflowId, scheduleIdFor } from '../../packages/rotor/src/shared/constants';
import { runCli } from '../helpers/cli';
import { recordHistories } from '../helpers/hygiene';
import { stackEnv, uniqueName, until } from '../helpers/env';
import {
  labels,
  logsIn,
  passwordAt,
  rememberPasswords,
  roleWithSecret as roleWithSecretIn,
  waitForStatus,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-schedules');
const { taskQueue } = rig;
let schedules: ScheduleManager;
let audit: AuditStore;
const passwords = new Set<string>();
const created = new Set<string>();
const dir = mkdtempSync(path.join(tmpdir(), 'rotor-schedules-'));

const roleWithSecret = (marker: string) => roleWithSecretIn('it', marker, passwords);

/** A config from YAML text; every secret it declares is deleted after the file. */
function config(yaml: string): RotorConfig {
  const parsed = parseConfig(yaml);
  for (const s of parsed.secrets) created.add(s.id);
  return parsed;
}

/** Rotor schedules fire at most every minute; tests fire faster than a rotor.yaml may, to stay short. */
function every(parsed: RotorConfig, ms: number): RotorConfig {
  for (const s of parsed.secrets) if (s.schedule.kind === 'every') s.schedule.everyMs = ms;
  return parsed;
}

async function apply(parsed: RotorConfig, prune = false) {
  const plan = await schedules.plan(parsed, { prune });
  await schedules.apply(parsed, plan);
  return plan;
}

async function runsOf(workflowIdPrefix: string): Promise<{ workflowId: string; status: string }[]> {
  const out: { workflowId: string; status: string }[] = [];
  for await (const info of rig.rotor.client.workflow.list({
    query: `WorkflowType IN ('rotateSecret', 'scheduledRotation')`,
  })) {
    if (info.workflowId.startsWith(workflowIdPrefix))
      out.push({ workflowId: info.workflowId, status: info.status.name });
  }
  return out;
}

beforeAll(async () => {
  schedules = new ScheduleManager(rig.rotor.client, taskQueue);
  audit = await AuditStore.connect(stackEnv('ROTOR_AUDIT_URL'), { readOnly: true });
});

afterAll(async () => {
  await recordHistories(rig.rotor.client, taskQueue, ['it/sched-run', 'it/sched-manual', 'it/sched-window']);
  for (const id of created)
    await rig.rotor.client.schedule
      .getHandle(scheduleIdFor(id))
      .delete()
      .catch(() => undefined);
  await audit?.close();
});

describe('rotor apply', () => {
  const a = uniqueName('it/sched-a');
  const b = uniqueName('it/sched-b');
  const c = uniqueName('it/sched-c');
  const v1 = `
defaults: { grace: 1h, catchupWindow: 10m }
secrets:
  - id: ${a}
    schedule: { every: 30d }
  - id: ${b}
    schedule: { cron: "0 3 * * 1", timezone: Europe/Berlin, jitter: 30m }
  - id: ${c}
    schedule: { every: 7d, offset: 2h }
    paused: true
    note: waiting for the migration
`;
  const v2 = `
defaults: { grace: 1h, catchupWindow: 10m }
secrets:
  - id: ${a}
    schedule: { every: 30d }
    grace: 2h
  - id: ${c}
    schedule: { every: 7d, offset: 2h }
    paused: false
`;

  it('creates one schedule per secret with overlap skip and a catch-up window; a second apply changes nothing', async () => {
    const plan = await apply(config(v1));
    expect(planSummary(plan)).toEqual({ created: [a, b, c], updated: [], deleted: [], unchanged: [] });

    const da = (await schedules.describe(a))!;
    expect(da.spec.intervals).toMatchObject([{ every: 30 * 86_400_000 }]);
    expect(da.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 600_000 });
    expect(da.action).toMatchObject({ type: 'startWorkflow', workflowType: 'scheduledRotation', taskQueue });
    expect(da.state.paused).toBe(false);
    const db = (await schedules.describe(b))!;
    expect(db.spec.timezone).toBe('Europe/Berlin');
    expect(db.spec.jitter).toBe(30 * 60_000);
    expect(db.spec.calendars?.[0]).toMatchObject({
      hour: [{ start: 3, end: 3, step: 1 }],
      dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY', step: 1 }],
    });
    const dc = (await schedules.describe(c))!;
    expect(dc.state).toMatchObject({ paused: true, note: 'waiting for the migration' });

    const again = await schedules.plan(config(v1));
    expect(planSummary(again)).toEqual({ created: [], updated: [], deleted: [], unchanged: [a, b, c] });
  });

  it('updates what changed, resumes, keeps what left the file, and deletes it only with --prune', async () => {
    const plan = await apply(config(v2));
    expect(planSummary(plan)).toEqual({ created: [], updated: [a, c], deleted: [], unchanged: [] });
    expect(plan.entries.find((e) => e.secretId === a)?.changes).toEqual(['grace 1h → 2h']);
    expect(plan.entries.find((e) => e.secretId === c)?.changes).toEqual(['resume']);
    expect(plan.kept).toEqual([b]);
    expect((await schedules.describe(c))!.state.paused).toBe(false);
    expect((await schedules.rotationSettings(a))?.graceMs).toBe(2 * 3_600_000);
    expect(await schedules.describe(b)).toBeDefined();

    const pruned = await apply(config(v2), true);
    expect(planSummary(pruned)).toEqual({ created: [], updated: [], deleted: [b], unchanged: [a, c] });
    expect(await schedules.describe(b)).toBeUndefined();
  });

  it('leaves a pause made by an operator alone when the file does not say paused', async () => {
    await schedules.pause(a, 'paused by oncall: incident 42');
    const plan = await schedules.plan(config(v2));
    expect(planSummary(plan).unchanged).toContain(a);
    expect((await schedules.describe(a))!.state).toMatchObject({ paused: true, note: 'paused by oncall: incident 42' });
    const views = await schedules.list();
    expect(views.find((v) => v.secretId === a)).toMatchObject({ paused: true, note: 'paused by oncall: incident 42' });
    expect(views.find((v) => v.secretId === c)?.nextRunAt).toBeDefined();
    await schedules.resume(a, 'resumed by oncall');
    expect((await schedules.describe(a))!.state.paused).toBe(false);
  });

  it('puts back what was changed outside rotor apply, and a changed pause note', async () => {
    const id = uniqueName('it/sched-drift');
    const file = (note: string) =>
      `secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n    paused: true\n    note: ${note}\n`;
    await apply(config(file('first')));
    await rig.rotor.client.schedule
      .getHandle(scheduleIdFor(id))
      .update((previous) => ({ ...previous, policies: { ...previous.policies, overlap: 'ALLOW_ALL' } }));
    const plan = await apply(config(file('second')));
    expect(plan.entries).toEqual([
      { secretId: id, action: 'update', changes: ['policies edited outside rotor apply', 'pause note'] },
    ]);
    expect((await schedules.describe(id))!).toMatchObject({
      policies: { overlap: 'SKIP' },
      state: { paused: true, note: 'second' },
    });
    expect(planSummary(await schedules.plan(config(file('second'))))).toMatchObject({ updated: [], unchanged: [id] });
  });

  it('a plan that would create a schedule someone created meanwhile applies as an update, or as nothing', async () => {
    const id = uniqueName('it/sched-race');
    const stale = await schedules.plan(config(`secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n`));
    expect(stale.entries).toEqual([expect.objectContaining({ secretId: id, action: 'create' })]);
    // Another apply (or a listing that lags) creates it first, with other settings: the stale plan updates it.
    await apply(config(`secrets:\n  - id: ${id}\n    schedule: { every: 7d }\n`));
    await schedules.apply(config(`secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n`), stale);
    expect(
      planSummary(await schedules.plan(config(`secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n`))),
    ).toMatchObject({ unchanged: [id] });
    // Already as the file says: applying the stale plan again changes nothing and does not fail.
    await schedules.apply(config(`secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n`), stale);
    expect((await schedules.describe(id))!.spec.intervals).toEqual([
      expect.objectContaining({ every: 30 * 24 * 3600_000 }),
    ]);
  });

  it('prints the plan as JSON, changes nothing on --dry-run, and names every problem of a bad file', async () => {
    const d = uniqueName('it/sched-d');
    created.add(d);
    const file = path.join(dir, 'rotor.yaml');
    writeFileSync(file, `secrets:\n  - id: ${d}\n    schedule: { every: 30d }\n`);
    const dry = await runCli(taskQueue, ['apply', '-f', file, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({ created: [d], updated: [], deleted: [], unchanged: [] });
    expect(await schedules.describe(d)).toBeUndefined();

    const applied = await runCli(taskQueue, ['apply', '-f', file]);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain(`+ ${d}`);
    expect(await schedules.describe(d)).toBeDefined();
    const second = await runCli(taskQueue, ['apply', '-f', file, '--json']);
    expect(JSON.parse(second.stdout)).toMatchObject({ created: [], updated: [], deleted: [], unchanged: [d] });

    writeFileSync(
      file,
      `secrets:\n  - id: x\n    schedule: { every: 30x }\n  - id: y\n    schedule: { every: 1d, cron: "0 3 * * *" }\n    gracee: 1h\n`,
    );
    const bad = await runCli(taskQueue, ['apply', '-f', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('secrets[0].schedule.every: "30x" is not a duration');
    expect(bad.stderr).toContain('secrets[1].schedule');
    expect(bad.stderr).toContain('secrets[1].gracee: unknown key (did you mean grace?)');
    const invalid = await runCli(taskQueue, ['validate', '--json'], { ROTOR_CONFIG: file });
    expect(invalid.code).toBe(2);
    const { valid, problems } = JSON.parse(invalid.stdout) as { valid: boolean; problems: { path: string }[] };
    expect(valid).toBe(false);
    expect(problems.map((p) => p.path)).toEqual(
      expect.arrayContaining(['secrets[0].schedule.every', 'secrets[1].schedule', 'secrets[1].gracee']),
    );
  });
});

describe('operating schedules from the CLI', () => {
  it('rotor schedules, rotor status, rotor pause and rotor resume', async () => {
    const id = uniqueName('it/sched-cli');
    await apply(config(`secrets:\n  - id: ${id}\n    schedule: { every: 30d }\n`));
    const paused = await runCli(taskQueue, ['pause', id, '--note', 'db migration'], { ROTOR_OPERATOR: 'carol' });
    expect(paused).toMatchObject({ code: 0, stdout: `schedule of ${id} paused\n` });

    const table = await runCli(taskQueue, ['schedules']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SECRET\s+SCHEDULE\s+NEXT RUN\s+LAST RESULT\s+PAUSED/);
    expect(table.stdout.split('\n').find((l) => l.startsWith(id))).toMatch(
      /every 30d\s+-\s+-\s+yes: paused by carol: db migration$/,
    );
    const views = JSON.parse((await runCli(taskQueue, ['schedules', '--json'])).stdout) as {
      secretId: string;
      paused: boolean;
    }[];
    expect(views.find((v) => v.secretId === id)).toMatchObject({ paused: true, note: 'paused by carol: db migration' });

    const overview = await runCli(taskQueue, ['status']);
    expect(overview.stdout).toMatch(/^SECRET\s+STATE\s+LAST ROTATED\s+NEXT DUE\s+LAST FAILURE/);
    expect(overview.stdout.split('\n').find((l) => l.startsWith(id))).toMatch(
      /never rotated, paused\s+-\s+paused\s+-$/,
    );

    const resumed = await runCli(taskQueue, ['resume', id, '--json'], { ROTOR_OPERATOR: 'carol' });
    expect(JSON.parse(resumed.stdout)).toEqual({ secretId: id, paused: false, note: 'resumed by carol' });
    const rows = JSON.parse((await runCli(taskQueue, ['status', '--json'])).stdout) as {
      secretId: string;
      paused: boolean;
      nextDueAt?: string;
    }[];
    expect(rows.find((r) => r.secretId === id)).toMatchObject({ paused: false, state: 'never rotated' });
    expect(rows.find((r) => r.secretId === id)?.nextDueAt).toBeDefined();

    const unknown = await runCli(taskQueue, ['pause', `${id}-nope`]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(
      /has no rotor schedule — declare it in rotor.yaml and run `rotor apply -f rotor.yaml`/,
    );
  });
});

describe('scheduled rotations', () => {
  it('a schedule with a short interval starts rotations that finish', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('sched-run');
    await apply(every(config(`secrets:\n  - id: ${secretId}\n    schedule: { every: 1m }\n    grace: 0s\n`), 5000));
    const status = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'completed', 60_000);
    await schedules.pause(secretId, 'test done');
    await rememberPasswords(secretId, passwords);
    expect(status.trigger).toEqual({ kind: 'schedule', by: scheduleIdFor(secretId) });
    const now = await labels(secretId);
    expect(now.current).not.toBe(versionId);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
    const view = await until('the last run to be reported', async () => {
      const v = (await schedules.list()).find((x) => x.secretId === secretId);
      return v?.lastRun && v.lastRun.result !== 'running' ? v : undefined;
    });
    expect(view.lastRun?.result).toBe('completed');
  });

  it('never doubles a rotation: the schedule skips while one is running', async () => {
    const { secretId } = await roleWithSecret('sched-overlap');
    await apply(every(config(`secrets:\n  - id: ${secretId}\n    schedule: { every: 1m }\n    grace: 1h\n`), 3000));
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace', 60_000);
    const skipped = await until('a skipped action', async () => {
      const d = await schedules.describe(secretId);
      return d && d.info.numActionsSkippedOverlap >= 2 ? d.info.numActionsSkippedOverlap : undefined;
    });
    expect(skipped).toBeGreaterThanOrEqual(2);
    await schedules.pause(secretId, 'test done');
    const runs = await runsOf(rotationWorkflowId(secretId));
    expect(runs.filter((r) => r.workflowId === rotationWorkflowId(secretId))).toHaveLength(1);
    await rig.rotor.endGrace(secretId);
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'completed');
  });

  it('a scheduled run joins nothing and starts nothing while a rotation started by hand is running', async () => {
    const { secretId } = await roleWithSecret('sched-manual');
    await rig.rotor.rotate(secretId, { graceMs: 3_600_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    await apply(every(config(`secrets:\n  - id: ${secretId}\n    schedule: { every: 1m }\n`), 3000));
    const view = await until('the scheduled run to end', async () => {
      const v = (await schedules.list()).find((x) => x.secretId === secretId);
      return v?.lastRun && v.lastRun.result !== 'running' ? v : undefined;
    });
    await schedules.pause(secretId, 'test done');
    expect(view.lastRun?.result).toBe('skipped');
    const trail = await until('the skipped run in the audit trail', async () => {
      const events = await audit.history(secretId);
      return events.some((e) => e.kind === 'skipped') ? events : undefined;
    });
    expect(trail.find((e) => e.kind === 'skipped')).toMatchObject({
      actor: `schedule:${scheduleIdFor(secretId)}`,
      detail: { reason: 'a rotation of this secret is already running' },
    });
    const runs = await runsOf(rotationWorkflowId(secretId));
    expect(runs.filter((r) => r.workflowId === rotationWorkflowId(secretId))).toHaveLength(1);
    await rig.rotor.endGrace(secretId);
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'completed');
  });

  it('waits on a durable timer for the allowed window before rotating', async () => {
    const { secretId, versionId } = await roleWithSecret('sched-window');
    const opens = new Date(Date.now() + 3 * 3_600_000);
    const hhmm = (d: Date) => d.toISOString().slice(11, 16);
    const closes = new Date(opens.getTime() + 3_600_000);
    await apply(
      config(
        `secrets:\n  - id: ${secretId}\n    schedule: { every: 30d, window: { start: "${hhmm(opens)}", end: "${hhmm(closes)}", timezone: UTC } }\n`,
      ),
    );
    await rig.rotor.client.schedule.getHandle(scheduleIdFor(secretId)).trigger();
    const memo = await until('the run to wait for its window', async () => {
      for await (const info of rig.rotor.client.workflow.list({
        query: `WorkflowType = 'scheduledRotation' AND ExecutionStatus = 'Running'`,
      })) {
        if (!info.workflowId.startsWith(`rotor/scheduled/${secretId}`)) continue;
        const d = await rig.rotor.client.workflow.getHandle(info.workflowId, info.runId).describe();
        if (d.memo?.waitingForWindowUntil)
          return { workflowId: info.workflowId, until: String(d.memo.waitingForWindowUntil) };
      }
      return undefined;
    });
    const waitsUntil = Date.parse(memo.until);
    expect(Math.abs(waitsUntil - Math.floor(opens.getTime() / 60_000) * 60_000)).toBeLessThan(60_000);
    expect(await rig.rotor.status(secretId)).toBeUndefined();
    expect((await labels(secretId)).current).toBe(versionId);
    const waiting = await until('the wait in the audit trail', async () =>
      (await audit.history(secretId)).find((e) => e.kind === 'waiting-for-window'),
    );
    expect(waiting.detail).toMatchObject({ until: memo.until, window: `${hhmm(opens)}-${hhmm(closes)} UTC` });
    await rig.rotor.client.workflow.getHandle(memo.workflowId).terminate('test done');
  });
});
