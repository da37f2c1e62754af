import { escapeIdentifier, escapeLiteral } from 'pg';
import { describe, expect, it } from 'vitest';
import { uniqueName } from '../helpers/env';
import { historiesText, newPassword as freshPassword, recordHistories } from '../helpers/hygiene';
import {
  createRole,
  createSecret,
  labels,
  logsIn,
  passwordAt,
  pgSecret,
  rememberPasswords,
  roleExists,
  roleWithSecret as roleWithSecretIn,
  store,
  waitForStatus,
  withAdmin,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';
import { WorkerProcess } from '../helpers/worker-process';

const rig = useWorkerRig('it-pg');
const { taskQueue } = rig;
/** Every password this file created or saw, to look for in histories and logs at the end. */
const passwords = new Set<string>();

const newPassword = () => freshPassword(passwords);

const roleWithSecret = (marker: string, username?: string) => roleWithSecretIn('it', marker, passwords, username);
const remember = (secretId: string) => rememberPasswords(secretId, passwords);

describe('PostgreSQL single-user rotation on the real stack', () => {
  it('rotates: the new password logs in, the old one is refused, the labels moved, nothing pending', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('happy');
    const started = await rig.rotor.rotate(secretId, { graceMs: 500 });
    expect(started.started).toBe(true);
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await remember(secretId);

    const after = await labels(secretId);
    expect(after).toEqual({
      current: outcome.outcome === 'completed' ? outcome.result.token : '',
      previous: versionId,
      versions: 2,
    });
    const rotated = await passwordAt(secretId, 'AWSCURRENT');
    expect(rotated).not.toBe(password);
    expect(rotated).toHaveLength(32);
    expect(await logsIn(username, rotated)).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
    expect(await passwordAt(secretId, 'AWSPREVIOUS')).toBe(password);

    const status = await rig.rotor.status(secretId);
    expect(status?.steps.map((s) => s.step)).toEqual(['prepare', 'create', 'set', 'test', 'finish', 'retire']);
    expect(status?.steps.every((s) => s.endedAt && !s.error)).toBe(true);
  });

  it('rotates again from the result of the first rotation', async () => {
    const { secretId, username } = await roleWithSecret('twice');
    for (let i = 0; i < 2; i++) {
      await rig.rotor.rotate(secretId, { graceMs: 0 });
      expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    }
    await remember(secretId);
    expect((await labels(secretId)).versions).toBe(3);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSPREVIOUS'))).toBe(false);
  });

  it('rolls back during grace: the previous password logs in again and is AWSCURRENT', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('rollback');
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000 });
    const inGrace = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const rotated = await passwordAt(secretId, 'AWSCURRENT');
    passwords.add(rotated);
    expect(await logsIn(username, rotated)).toBe(true);

    await rig.rotor.rollback(secretId, 'errors in checkout after rotation', 'it-test');
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('rolled-back');
    expect(await labels(secretId)).toEqual({ current: versionId, previous: inGrace.token, versions: 2 });
    expect(await logsIn(username, password)).toBe(true);
    expect(await logsIn(username, rotated)).toBe(false);
    expect((await rig.rotor.status(secretId))?.rollbackReason).toBe('errors in checkout after rotation');
  });

  it('extends and ends grace on request, then retires', async () => {
    const { secretId } = await roleWithSecret('grace');
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000 });
    const before = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    await rig.rotor.extendGrace(secretId, 3_600_000);
    const extended = await waitForStatus(rig.rotor, secretId, (s) => s.graceEndsAt !== before.graceEndsAt);
    expect(Date.parse(extended.graceEndsAt!) - Date.parse(before.graceEndsAt!)).toBe(3_600_000);
    await rig.rotor.endGrace(secretId);
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    await expect(rig.rotor.extendGrace(secretId, 60_000)).rejects.toThrow(/no rotation is running/);
  });

  it('runs exactly one rotation for two concurrent requests', async () => {
    const { secretId } = await roleWithSecret('concurrent');
    const [a, b] = await Promise.all([
      rig.rotor.rotate(secretId, { graceMs: 60_000 }),
      rig.rotor.rotate(secretId, { graceMs: 60_000 }),
    ]);
    expect(a.runId).toBe(b.runId);
    expect([a.started, b.started].sort()).toEqual([false, true]);
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const third = await rig.rotor.rotate(secretId, { graceMs: 60_000 });
    expect(third).toMatchObject({ runId: a.runId, started: false });
    await rig.rotor.endGrace(secretId);
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    expect((await labels(secretId)).versions).toBe(2);
    let runs = 0;
    for await (const _ of rig.rotor.client.workflow.list({ query: `RotorSecretId = "${secretId}"` })) runs++;
    expect(runs).toBe(1);
  });
});

describe('bad input gets a typed error and changes nothing', () => {
  async function failedRotation(secretId: string): Promise<string> {
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    if (outcome.outcome !== 'failed') throw new Error(`expected a failed rotation, got ${outcome.outcome}`);
    return outcome.message;
  }

  it('an unknown secret', async () => {
    const secretId = uniqueName('it/missing');
    expect(await failedRotation(secretId)).toMatch(
      new RegExp(`secret ${secretId} not found in AWS Secrets Manager.*RotorSecretNotFound.*nothing was changed`),
    );
    await expect(store.describe(secretId)).rejects.toThrow(/not found/);
  });

  it.each([
    ['malformed JSON', (p: string) => `{"engine":"postgres","password":"${p}"`, /not valid JSON/],
    [
      'missing fields',
      (p: string) => JSON.stringify({ engine: 'postgres', password: p }),
      /host: is required; username: is required/,
    ],
    [
      'a wrong engine',
      (p: string) => JSON.stringify({ engine: 'oracle', host: 'h', username: 'u', password: p }),
      /engine "oracle" is not supported/,
    ],
    [
      'an over-long username',
      (p: string) => JSON.stringify(pgSecret('u'.repeat(64), p)),
      /username: must be at most 63 bytes/,
    ],
  ])('%s', async (_name, value, expected) => {
    const password = newPassword();
    const secretId = uniqueName('it/bad');
    const versionId = await createSecret(secretId, value(password));
    const message = await failedRotation(secretId);
    expect(message).toMatch(expected);
    expect(message).not.toContain(password);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
  });

  it.each([
    ['double quotes', 'rotor_it_a"b'],
    ['an injection attempt', "rotor_it_x'; DROP ROLE rotor_it_sentinel; --"],
    ['spaces and a semicolon', 'rotor it ; spaced'],
    ['non-ASCII', 'rotor_it_zoë_ü_名'],
    ['backslashes and percent', 'rotor_it_\\%_@`'],
  ])('a username with %s rotates correctly, without injection', async (_name, base) => {
    const sentinel = 'rotor_it_sentinel';
    if (!(await roleExists(sentinel))) await createRole(sentinel, newPassword());
    const { secretId, username, password } = await roleWithSecret(
      'hostile',
      `${base}_${Math.random().toString(36).slice(2, 6)}`,
    );
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
    expect(await roleExists(sentinel)).toBe(true);
  });

  it('a secret whose credential the target no longer accepts is refused in prepare, with nothing written', async () => {
    const { secretId, username, versionId } = await roleWithSecret('rejected');
    // Someone changed the password behind rotor's back: neither AWSCURRENT nor anything else logs in.
    const outOfBand = newPassword();
    await withAdmin((a) => a.query(`ALTER ROLE ${escapeIdentifier(username)} PASSWORD ${escapeLiteral(outOfBand)}`));
    const message = await failedRotation(secretId);
    expect(message).toMatch(
      /failed at prepare: .*no version of the secret \(AWSCURRENT, AWSPREVIOUS, AWSPENDING\) logs in.*RotorCredentialsRejected.*nothing was changed/,
    );
    expect(await logsIn(username, outOfBand)).toBe(true);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
  });
});

describe('secret hygiene', () => {
  it('no password appears in any workflow history or worker log line', async () => {
    expect(passwords.size).toBeGreaterThan(10);
    const { text, workflows } = await historiesText(rig.rotor.client, taskQueue);
    await recordHistories(rig.rotor.client, taskQueue, ['it/rollback', 'it/grace', 'it/missing']);
    expect(workflows).toBeGreaterThan(10);
    // Positive control: the walk does decode payloads (secret ids travel in them).
    expect(text).toContain('it/happy');
    const logs = WorkerProcess.allLogs.join('\n');
    expect(logs).toContain('step done');
    for (const password of passwords) {
      expect(text.includes(password), 'a password is in a workflow history').toBe(false);
      expect(logs.includes(password), 'a password is in the worker logs').toBe(false);
    }
  });
});
