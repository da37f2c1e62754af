import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, SecretCache } from 'rotor-consumers';
import { SecretNotFoundError } from 'rotor-consumers/core';
import { uniqueName } from '../helpers/env';
import { createSecret, store } from '../helpers/stack';

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
