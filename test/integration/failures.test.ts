import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { stackEnv } from '../helpers/env';
import { holdDirectory, releaseHold, waitUntilHeld } from '../helpers/faulty-rotators';
import { historiesText, recordHistories } from '../helpers/hygiene';
import { labels, logsIn, passwordAt, rememberPasswords, roleWithSecret as roleWithSecretIn, waitForStatus } from '../helpers/stack';
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

  it('compensates once the store answers when finish ran out of attempts', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('hold-test-budget');
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2 });
    await held(secretId);
    freezeStore();
    release(secretId);
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'compensating', 120_000);
    thawStore();
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed') expect(outcome.message).toMatch(/failed at finish: .*did not answer.*compensated/);
    await rememberAll(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await logsIn(username, password)).toBe(true);
  });

  it('a worker killed with SIGKILL mid-rotation: a new worker finishes it', async () => {
    const { secretId, username, password } = await roleWithSecret('hold-test-kill');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await rig.killWhileHeld(secretId);
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberAll(secretId);
    const test = (await rig.rotor.status(secretId))?.steps.find((s) => s.step === 'test');
    expect(test?.attempts).toBeGreaterThanOrEqual(2);
    expect((await labels(secretId)).pending).toBeUndefined();
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
  });

  it('a worker stops gracefully on SIGTERM', async () => {
    await rig.worker.stop('SIGTERM');
    expect(rig.worker.exitInfo).toEqual({ code: 0, signal: null });
    expect(rig.worker.logs).toMatch(/rotor worker stopped/);
  });

  it('leaves no password in histories or worker logs', async () => {
    expect(passwords.size).toBeGreaterThanOrEqual(8);
    const { text } = await historiesText(rig.rotor.client, taskQueue);
    await recordHistories(rig.rotor.client, taskQueue, ['it/fail-test', 'it/hold-test-budget', 'it/hold-test-kill']);
    const logs = WorkerProcess.allLogs.join('\n');
    expect(text).toContain('it/fail-test');
    for (const password of passwords) {
      expect(text.includes(password)).toBe(false);
      expect(logs.includes(password)).toBe(false);
    }
  });
});
