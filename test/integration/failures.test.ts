import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stackEnv } from '../helpers/env';
import { heldEntries, holdDirectory, releaseHold, waitUntilHeld } from '../helpers/faulty-rotators';
import { replayFailures, scheduledActivityTypes } from '../helpers/history';
import { historiesText, recordHistories } from '../helpers/hygiene';
import {
  labels,
  logsIn,
  passwordAt,
  rememberPasswords,
  roleWithSecret as roleWithSecretIn,
  waitForStatus,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';
import { WorkerProcess } from '../helpers/worker-process';

const holdDir = holdDirectory();
const rig = useWorkerRig('it-failures', { holdDir });
const { taskQueue } = rig;
const passwords = new Set<string>();

/** moto keeps its data in memory only: it is frozen and thawed, never restarted. */
function freezeStore(): void {
  process.kill(Number(stackEnv('ROTOR_MOTO_PID')), 'SIGSTOP');
}
function thawStore(): void {
  process.kill(Number(stackEnv('ROTOR_MOTO_PID')), 'SIGCONT');
}

const roleWithSecret = (marker: string) => roleWithSecretIn('it', marker, passwords);

const held = (secretId: string) => waitUntilHeld(holdDir, secretId);
const release = (secretId: string) => releaseHold(holdDir, secretId);

const rememberAll = (secretId: string) => rememberPasswords(secretId, passwords);

/** The ordinary activities a rotation scheduled, in order (local activities are markers, not listed). */
const scheduledActivities = async (workflowId: string) =>
  scheduledActivityTypes((await rig.rotor.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []);

afterEach(() => thawStore());

afterAll(async () => {
  thawStore();
});

describe('failures after set', () => {
  it('restores the previous password when the test step fails', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('fail-test');
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome !== 'failed') return;
    expect(outcome.message).toMatch(/failed at test: .*injected by the test rotator.*compensated/);
    await rememberAll(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await logsIn(username, password)).toBe(true);
    const status = await rig.rotor.status(secretId);
    expect(status?.phase).toBe('compensated');
    const compensate = status?.steps.find((s) => s.step === 'compensate');
    expect(compensate?.outcome).toBe('changed');
  });

  it('finishes once the store answers again after freezing during finish', async () => {
    const { secretId, username, password } = await roleWithSecret('hold-test-thaw');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await held(secretId);
    freezeStore();
    release(secretId);
    // The test step passes; finish meets a store that does not answer and is retried.
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'finishing');
    await new Promise((r) => setTimeout(r, 12_000));
    expect((await rig.rotor.status(secretId))?.phase).toBe('finishing');
    thawStore();
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberAll(secretId);
    const finish = (await rig.rotor.status(secretId))?.steps.find((s) => s.step === 'finish');
    expect(finish?.attempts).toBeGreaterThanOrEqual(2);
    const after = await labels(secretId);
    expect(after.pending).toBeUndefined();
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
  });

  it('compensates once the store answers when finish ran out of attempts and of its outage budget', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('hold-test-budget');
    // No outage budget: finish gives up after its attempts (docs/operations.md, "A target that fails over").
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2, outageBudgetMs: 0 });
    await held(secretId);
    freezeStore();
    release(secretId);
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'compensating', 120_000);
    thawStore();
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed')
      expect(outcome.message).toMatch(/failed at finish: .*did not answer.*compensated/);
    await rememberAll(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await logsIn(username, password)).toBe(true);
  });

  it('a worker killed with SIGKILL mid-rotation: a new worker finishes it', async () => {
    const { secretId, username, password } = await roleWithSecret('hold-test-kill');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const killed = rig.worker.pid;
    await rig.killWhileHeld(secretId);
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberAll(secretId);
    // The killed worker entered the test step, and the new one ran it again (as a local attempt anew when the kill
    // came during one, so the attempt count may start over).
    const entries = heldEntries(holdDir, secretId);
    expect(entries[0]?.pid).toBe(killed);
    expect(entries.at(-1)?.pid).toBe(rig.worker.pid);
    expect((await labels(secretId)).pending).toBeUndefined();
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
  });
});

// Each of these waits out a step's 20 s local attempt: they run at once (distinct secrets, one worker).
describe.concurrent('steps past their local attempt', () => {
  it("runs a healthy rotation's steps inside the workflow task; a step that outlasts its local attempt goes on as an ordinary activity", async () => {
    // Control: a healthy rotation schedules prepare only; every other step ran as a local activity.
    const healthy = await roleWithSecret('local-healthy');
    const first = await rig.rotor.rotate(healthy.secretId, { graceMs: 0 });
    expect((await rig.rotor.wait(healthy.secretId)).outcome).toBe('completed');
    await rememberAll(healthy.secretId);
    expect(await scheduledActivities(first.workflowId)).toEqual(['prepareRotation']);

    const { secretId, username, password } = await roleWithSecret('hold-test-slow');
    const { workflowId } = await rig.rotor.rotate(secretId, { graceMs: 0 });
    try {
      await held(secretId);
      // Once the local attempt has timed out, the step is an ordinary activity that describe (and the UI) shows
      // pending, and the workflow task is done: the status query answers from the worker.
      const handle = rig.rotor.client.workflow.getHandle(workflowId);
      let pending: string | undefined;
      for (let i = 0; i < 300 && !pending; i++) {
        pending =
          (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'testPending')
            ?.activityType?.name ?? undefined;
        if (!pending) await new Promise((r) => setTimeout(r, 100));
      }
      expect(pending).toBe('testPending');
      expect((await rig.rotor.status(secretId))?.phase).toBe('testing');
    } finally {
      // Both attempts wait for this file; a worker cannot stop while one waits.
      release(secretId);
    }
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberAll(secretId);
    expect(heldEntries(holdDir, secretId).map((e) => e.local)).toEqual([true, false]); // the local attempt, then the ordinary activity
    expect(await scheduledActivities(workflowId)).toEqual(['prepareRotation', 'testPending']);
    const test = (await rig.rotor.status(secretId))?.steps.find((s) => s.step === 'test');
    expect(test?.attempts).toBe(2);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
  });

  for (const ask of ['cancel', 'rollback'] as const) {
    it(`a ${ask} asked for during a step's local attempt: the rotation compensates`, async () => {
      const { secretId, username, password } = await roleWithSecret(`hold-test-${ask}-local`);
      const before = await labels(secretId);
      const { workflowId } = await rig.rotor.rotate(secretId, { graceMs: 0 });
      const handle = rig.rotor.client.workflow.getHandle(workflowId);
      let newPassword: string;
      try {
        await held(secretId);
        newPassword = await passwordAt(secretId, 'AWSPENDING');
        expect(await logsIn(username, newPassword)).toBe(true); // set ran: the database holds the new password
        expect(await scheduledActivities(workflowId)).toEqual(['prepareRotation']); // test is its local attempt
        if (ask === 'cancel') {
          // The cancellation reaches the workflow at a heartbeat of its open workflow task, and ends the step's wait
          // there: compensation starts while the attempt is still held.
          await handle.cancel();
          for (let i = 0; i < 300 && !(await scheduledActivities(workflowId)).includes('reinstate'); i++)
            await new Promise((r) => setTimeout(r, 100));
        } else {
          // A rollback is taken once the local attempt has ended (here when it times out, the step still held): it is
          // acted on when the step ends, before finish.
          await rig.rotor.rollback(secretId, 'asked during the test step', 'it');
        }
      } finally {
        release(secretId);
      }
      const outcome = await rig.rotor.wait(secretId);
      await rememberAll(secretId);
      if (ask === 'cancel') {
        expect(outcome.outcome).toBe('failed');
        expect((await handle.describe()).status.name).toBe('FAILED');
        expect((await rig.rotor.status(secretId))?.phase).toBe('compensated');
        // The local attempt (cancelled while held), then reinstate's check of the previous password.
        expect(heldEntries(holdDir, secretId).map((e) => e.local)).toEqual([true, false]);
        expect(await scheduledActivities(workflowId)).toEqual(['prepareRotation', 'reinstate']);
      } else {
        expect(outcome.outcome).toBe('rolled-back');
        // The local attempt, the step going on as an ordinary activity after its timeout, then reinstate's check.
        expect(heldEntries(holdDir, secretId).map((e) => e.local)).toEqual([true, false, false]);
        expect(await scheduledActivities(workflowId)).toEqual(['prepareRotation', 'testPending', 'reinstate']);
      }
      expect(await labels(secretId)).toMatchObject({ current: before.current });
      expect((await labels(secretId)).pending).toBeUndefined();
      expect(await logsIn(username, password)).toBe(true);
      expect(await logsIn(username, newPassword)).toBe(false);
    });
  }
});

describe('the worker at the end', () => {
  it('a worker stops gracefully on SIGTERM', async () => {
    await rig.worker.stop('SIGTERM');
    expect(rig.worker.exitInfo).toEqual({ code: 0, signal: null });
    expect(rig.worker.logs).toMatch(/rotor worker stopped/);
  });

  it('every rotation of this file replays from its history (held, killed, cancelled and rolled-back steps)', async () => {
    expect(await replayFailures(rig.rotor.client, taskQueue)).toEqual([]);
  });

  it('leaves no password in histories or worker logs', async () => {
    expect(passwords.size).toBeGreaterThanOrEqual(8);
    const { text } = await historiesText(rig.rotor.client, taskQueue);
    await recordHistories(rig.rotor.client, taskQueue, [
      'it/fail-test',
      'it/hold-test-budget',
      'it/hold-test-kill',
      'it/local-healthy',
      'it/hold-test-slow',
      'it/hold-test-cancel-local',
      'it/hold-test-rollback-local',
    ]);
    const logs = WorkerProcess.allLogs.join('\n');
    expect(text).toContain('it/fail-test');
    for (const password of passwords) {
      expect(text.includes(password)).toBe(false);
      expect(logs.includes(password)).toBe(false);
    }
  });
});
