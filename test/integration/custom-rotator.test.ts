import { Redis } from 'ioredis';
import { redisAdmin, redisLogsIn, redisSecret } from '../helpers/redis';
import { describe, expect, it } from 'vitest';
import { uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';
import { createSecret, labels, rememberPasswords, store, tagSecret, waitForStatus } from '../helpers/stack';

/**
 * A team's own rotator on the real stack: the Redis ACL example of docs/custom-rotators.md, registered with the
 * worker by kind (examples/redis-acl/worker.ts), rotated through rotor's workflow with its labels, grace,
 * retirement, rollback and compensation.
 */
const rig = useWorkerRig('it-custom', { main: 'examples/redis-acl/worker.ts' });
const faulty = useWorkerRig('it-custom-faulty', { main: 'test/helpers/redis-worker-main.ts' });
const passwords = new Set<string>();
const admin = redisAdmin();
const logsIn = redisLogsIn;

let masterId: string | undefined;
/** A Redis ACL user with a password of its own and its secret (the admin secret made once). */
async function redisUser(
  marker: string,
): Promise<{ secretId: string; username: string; password: string; versionId: string }> {
  if (!masterId) {
    const adminPassword = decodeURIComponent(admin.password);
    passwords.add(adminPassword);
    masterId = uniqueName('it/custom-redis-master');
    await createSecret(masterId, redisSecret('default', adminPassword));
  }
  const username = uniqueName(`app-${marker}`);
  const password = newPassword(passwords);
  const redis = new Redis(admin.toString());
  try {
    await redis.call('ACL', 'SETUSER', username, 'on', `>${password}`, '~*', '+@all');
  } finally {
    redis.disconnect();
  }
  const secretId = uniqueName(`it/custom-${marker}`);
  const versionId = await createSecret(secretId, redisSecret(username, password, { masterarn: masterId }));
  return { secretId, username, password, versionId };
}

const passwordOf = async (secretId: string, stage: 'AWSCURRENT' | 'AWSPREVIOUS') =>
  JSON.parse((await store.getByStage(secretId, stage))!.value).password as string;

describe("a team's own rotator (Redis ACL user passwords), registered with the worker by kind", () => {
  it('rotates end to end: both passwords work through grace, then only the new one; the labels moved', async () => {
    const { secretId, username, password, versionId } = await redisUser('e2e');
    expect((await rig.rotor.check(secretId)).ok).toBe(true);
    await rig.rotor.rotate(secretId, { graceMs: 4000 });
    const grace = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    expect(grace.rotator).toBe('redis-acl');
    const next = await passwordOf(secretId, 'AWSCURRENT');
    passwords.add(next);
    expect(await logsIn(username, next)).toBe(true);
    expect(await logsIn(username, password)).toBe(true);

    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
    expect(await logsIn(username, next)).toBe(true);
    expect(await logsIn(username, password)).toBe(false);
    expect(await labels(secretId)).toEqual({ previous: versionId, current: grace.versions.current, versions: 2 });
    if (outcome.outcome === 'completed')
      expect(outcome.result.retirement ?? outcome.result.status.steps.find((s) => s.step === 'retire')?.outcome).toBe(
        'previous-password-removed',
      );
  });

  it('rolls back during grace: the old password is current again and the new one no longer logs in', async () => {
    const { secretId, username, password, versionId } = await redisUser('rollback');
    await rig.rotor.rotate(secretId, { graceMs: 60_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const next = await passwordOf(secretId, 'AWSCURRENT');
    passwords.add(next);
    await rig.rotor.rollback(secretId, 'the new password breaks the cache clients', 'it');
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('rolled-back');
    expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(versionId);
    expect(await logsIn(username, password)).toBe(true);
    expect(await logsIn(username, next)).toBe(false);
  });

  it('compensates when its test step fails: the password set in Redis is removed, the labels are as before', async () => {
    const { secretId, username, password, versionId } = await redisUser('compensate');
    await tagSecret(secretId, { 'rotor:rotator': 'redis-acl-failing-test' });
    await faulty.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 1 });
    const outcome = await faulty.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed')
      expect(outcome.message).toMatch(/failed at test: .*made to fail by the test.*compensated/);
    await rememberPasswords(secretId, passwords);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    const versions = await store.describe(secretId);
    const pending = versions.versions.find((v) => v.versionId !== versionId);
    expect(pending).toBeDefined();
    const setPassword = JSON.parse((await store.getByVersion(secretId, pending!.versionId))!.value).password as string;
    expect(await logsIn(username, password)).toBe(true);
    expect(await logsIn(username, setPassword)).toBe(false);
  });

  it('redacts a value the target echoes in its error: the new password never reaches the failure, the history or the CLI', async () => {
    const { secretId, versionId } = await redisUser('echo');
    await tagSecret(secretId, { 'rotor:rotator': 'redis-acl-echoing' });
    await faulty.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 1 });
    const outcome = await faulty.rotor.wait(secretId);
    await rememberPasswords(secretId, passwords);
    expect(outcome.outcome).toBe('failed');
    // Redis's own words, with the password it quoted replaced.
    expect(outcome.outcome === 'failed' && outcome.message).toMatch(
      /failed at set: .*Error in ACL SETUSER modifier '=\[redacted\]'/,
    );
    expect(await labels(secretId)).toMatchObject({ current: versionId });
    await expectNoPasswords(faulty.rotor.client, faulty.taskQueue, passwords, secretId, [
      outcome.outcome === 'failed' ? outcome.message : '',
    ]);
  });

  it('refuses a secret naming a rotator the worker does not run, changing nothing', async () => {
    const { secretId, versionId } = await redisUser('unknown');
    await tagSecret(secretId, { 'rotor:rotator': 'memcached-sasl' });
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed')
      expect(outcome.message).toContain('tag rotor:rotator: "memcached-sasl" is not a rotator this worker runs');
    expect(await labels(secretId)).toMatchObject({ current: versionId, versions: 1 });
  });

  it('leaves no password in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/custom-');
    await expectNoPasswords(faulty.rotor.client, faulty.taskQueue, passwords, 'it/custom-');
  });
});
