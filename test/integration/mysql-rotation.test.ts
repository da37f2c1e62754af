import { describe, expect, it } from 'vitest';
import { uniqueName } from '../helpers/env';
import { holdDirectory } from '../helpers/faulty-rotators';
import { historiesText } from '../helpers/hygiene';
import {
  mysqlAuthString,
  mysqlLogsIn,
  mysqlSecret,
  mysqlUserExists,
  mysqlUserWithSecret,
  createMysqlUser,
} from '../helpers/mysql';
import { createSecret, labels, passwordAt, rememberPasswords, waitForStatus } from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';
import { WorkerProcess } from '../helpers/worker-process';

const holdDir = holdDirectory();
const rig = useWorkerRig('it-mysql', { holdDir });
const { taskQueue } = rig;
const passwords = new Set<string>();
const remember = (secretId: string) => rememberPasswords(secretId, passwords);

describe('MySQL/MariaDB single-user rotation on the real stack', () => {
  it('rotates: the new password logs in, the old one is refused, the labels moved, nothing pending', async () => {
    const { secretId, username, password, versionId } = await mysqlUserWithSecret('happy', passwords);
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await remember(secretId);
    const after = await labels(secretId);
    expect(after).toMatchObject({ previous: versionId, versions: 2 });
    expect(after.pending).toBeUndefined();
    const current = await passwordAt(secretId, 'AWSCURRENT');
    expect(await mysqlLogsIn(username, current)).toBe(true);
    expect(await mysqlLogsIn(username, password)).toBe(false);
    expect((await rig.rotor.status(secretId))?.rotator).toBe('mysql-single-user');
  });

  it('changes the account CURRENT_USER() names, not one with the same user name and another host', async () => {
    const username = uniqueName('rotor_host').replace(/-/g, '_');
    const other = `Other-${Math.random().toString(36).slice(2)}`;
    passwords.add(other);
    await createMysqlUser(username, other, '%');
    const { secretId, password } = await mysqlUserWithSecret('host', passwords, username, '127.0.0.1');
    const untouched = await mysqlAuthString(username, '%');
    const before = await mysqlAuthString(username, '127.0.0.1');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    expect(await mysqlAuthString(username, '%')).toBe(untouched);
    expect(await mysqlAuthString(username, '127.0.0.1')).not.toBe(before);
    expect(await mysqlLogsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await mysqlLogsIn(username, password)).toBe(false);
  });

  it('rolls back during grace: the previous password logs in again and is AWSCURRENT', async () => {
    const { secretId, username, password, versionId } = await mysqlUserWithSecret('rollback', passwords);
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const rotated = await passwordAt(secretId, 'AWSCURRENT');
    passwords.add(rotated);
    await rig.rotor.rollback(secretId, 'replica lag', 'it-test');
    expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
    expect((await labels(secretId)).current).toBe(versionId);
    expect(await mysqlLogsIn(username, password)).toBe(true);
    expect(await mysqlLogsIn(username, rotated)).toBe(false);
  });

  it('restores the previous password when the test step fails', async () => {
    const { secretId, username, password, versionId } = await mysqlUserWithSecret('fail-test', passwords);
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    await remember(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await mysqlLogsIn(username, password)).toBe(true);
  });

  it('a worker killed with SIGKILL mid-rotation: a new worker finishes it', async () => {
    const { secretId, username, password } = await mysqlUserWithSecret('hold-test', passwords);
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await rig.killWhileHeld(secretId);
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    expect(await mysqlLogsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await mysqlLogsIn(username, password)).toBe(false);
  });

  it.each([
    ['quotes', 'rotor_o\'b"q'],
    ['backticks and a semicolon', 'rotor_`x`; DROP USER rotor_sentinel'],
    ['@ and %', 'rotor_a@b%c'],
    ['spaces', 'rotor with space'],
    ['non-ASCII', 'rotor_zoë_名'],
  ])('a user name with %s rotates correctly, without injection', async (_name, base) => {
    if (!(await mysqlUserExists('rotor_sentinel'))) await createMysqlUser('rotor_sentinel', `S-${Date.now()}`);
    const { secretId, username, password } = await mysqlUserWithSecret(
      'hostile',
      passwords,
      `${base}_${Math.random().toString(36).slice(2, 6)}`,
    );
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    expect(await mysqlLogsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await mysqlLogsIn(username, password)).toBe(false);
    expect(await mysqlUserExists('rotor_sentinel')).toBe(true);
  });

  it('an over-long user name is refused before anything changes', async () => {
    const secretId = uniqueName('it/mysql-long');
    const password = `Long-${Date.now()}`;
    passwords.add(password);
    const versionId = await createSecret(secretId, mysqlSecret('u'.repeat(81), password));
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome === 'failed' && outcome.message).toMatch(
      /username: must be at most 80 characters.*nothing was changed/,
    );
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
  });

  it('leaves no password in histories or worker logs', async () => {
    expect(passwords.size).toBeGreaterThanOrEqual(15);
    const { text } = await historiesText(rig.rotor.client, taskQueue);
    const logs = WorkerProcess.allLogs.join('\n');
    expect(text).toContain('it/mysql-happy');
    for (const password of passwords) {
      expect(text.includes(password)).toBe(false);
      expect(logs.includes(password)).toBe(false);
    }
  });
});
