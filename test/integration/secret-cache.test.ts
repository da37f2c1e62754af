import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, createRotatingMysqlPool, createRotatingPgPool, SecretCache } from 'rotor-consumers';
import { SecretNotFoundError } from 'rotor-consumers/core';
import { uniqueName } from '../helpers/env';
import { createSecret, roleWithSecret, store } from '../helpers/stack';

/** SecretCache against the real Secrets Manager API (moto), with rotor's label protocol moved step by step. */
describe('SecretCache on Secrets Manager', () => {
  it('follows a rotation: AWSPENDING between set and finish, the new AWSCURRENT after it, one version at a time', async () => {
    const secretId = uniqueName('it/cache');
    const first = await createSecret(secretId, { username: 'app', password: 'first-value' });
    const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 60_000 });
    expect(await cache.get(secretId)).toMatchObject({ versionId: first, stage: 'AWSCURRENT' });
    expect(await cache.pending(secretId)).toBeUndefined();

    const token = randomUUID();
    await store.putPending(secretId, token, JSON.stringify({ username: 'app_clone', password: 'second-value' }));
    expect(await cache.pending(secretId)).toMatchObject({ versionId: token, stage: 'AWSPENDING' });
    expect(JSON.parse((await cache.pending(secretId))!.value)).toEqual({
      username: 'app_clone',
      password: 'second-value',
    });
    // Still fresh: the cache has not looked.
    expect((await cache.get(secretId)).versionId).toBe(first);

    await store.moveStage(secretId, 'AWSCURRENT', token);
    await store.removeStage(secretId, 'AWSPENDING', token);
    const after = await cache.refreshNow(secretId);
    expect(after).toMatchObject({ versionId: token, stage: 'AWSCURRENT' });
    expect(JSON.parse(after.value)).toEqual({ username: 'app_clone', password: 'second-value' });
    expect(await cache.pending(secretId)).toBeUndefined();
    expect((await cache.getJson<{ username: string }>(secretId)).value.username).toBe('app_clone');
  });

  it('an unknown secret is an error at once', async () => {
    const cache = new SecretCache({ store: new AwsSecretsManagerStore() });
    await expect(cache.get(uniqueName('it/cache-missing'))).rejects.toBeInstanceOf(SecretNotFoundError);
  });
});

describe('rotating pools made with wrong options, or none but the secret', () => {
  it('refuse wrong options when they are made, naming each', () => {
    expect(() => createRotatingPgPool(undefined as never)).toThrow('rotating pool: options must be an object');
    expect(() => createRotatingPgPool({} as never)).toThrow('rotating pool: secretId: must be the id of the secret');
    expect(() =>
      createRotatingMysqlPool({ secretId: 'x', cache: {} as never, maxFailedLogins: 0, reporter: {} as never }),
    ).toThrow(
      'rotating pool: cache: must be a SecretCache (or left out for one on AWS Secrets Manager); maxFailedLogins: must be a whole number of at least 1; reporter: must have record(event) (a ConsumerReporter)',
    );
  });

  it('read the secret from AWS Secrets Manager with the documented defaults when given no cache', async () => {
    const { secretId, username } = await roleWithSecret('it', 'cache-default', new Set());
    const pool = createRotatingPgPool({ secretId });
    try {
      const { rows } = await pool.query<{ user: string }>('SELECT current_user AS user');
      expect(rows[0]!.user).toBe(username);
    } finally {
      await pool.end();
    }
  });
});
