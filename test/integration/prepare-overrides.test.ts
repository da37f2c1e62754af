import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../packages/rotor/src/activities';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import { ErrorType } from 'rotor-consumers/core';
import { uniqueName } from '../helpers/env';
import { adminSecret, createSecret, pgSecret, roleWithSecret, store, tagSecret } from '../helpers/stack';

/** `prepare` with rotor.yaml's overrides, against the real store: what it decides, and what it refuses. */
const activities = createActivities({ store, rotators });
const prepare = (input: Parameters<typeof activities.prepareRotation>[0]) =>
  new MockActivityEnvironment().run(activities.prepareRotation, input) as ReturnType<typeof activities.prepareRotation>;
const seen = new Set<string>();

describe('prepare with rotor.yaml overrides', () => {
  it('lays a partial retirement policy over the secret tags, key by key', async () => {
    // A real login and admin secret: prepare's preflight logs in with both.
    const login = await roleWithSecret('it', 'prep-alt-login', seen);
    const masterarn = await adminSecret('prep-master', 'ROTOR_PG_ADMIN_URL', pgSecret, seen);
    const secretId = uniqueName('it/prep-alt');
    await createSecret(secretId, pgSecret(login.username, login.password, { masterarn }));
    await tagSecret(secretId, { 'rotor:live-sessions': 'terminate', 'rotor:live-sessions-max-wait': '5m' });
    const prepared = await prepare({ secretId, overrides: { retirement: { retire: 'disable-login' } } });
    expect(prepared.rotator).toBe('postgres-alternating-users');
    expect(prepared.retirement).toEqual({ retire: 'disable-login', liveSessions: 'terminate', maxWaitMs: 300_000 });
  });

  it('picks the strategy the file names over what the secret would select', async () => {
    const { secretId } = await roleWithSecret('it', 'prep-strategy', seen);
    await expect(prepare({ secretId, overrides: { strategy: 'alternating-users' } })).rejects.toMatchObject({
      type: ErrorType.InvalidSecret,
      message: expect.stringMatching(/masterarn: is required for alternating users/),
    });
  });

  it('refuses a retirement policy for a single-user secret, naming both', async () => {
    const { secretId } = await roleWithSecret('it', 'prep-single', seen);
    await expect(
      prepare({ secretId, overrides: { retirement: { retire: 'scramble-password' } } }),
    ).rejects.toMatchObject({
      type: ErrorType.InvalidInput,
      nonRetryable: true,
      message: `secret ${secretId}: retirement applies to alternating users only, and this secret rotates with postgres-single-user`,
    });
  });
});
