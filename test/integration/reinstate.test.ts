import { randomUUID } from 'node:crypto';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { MockActivityEnvironment } from '@temporalio/testing';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../packages/rotor/src/activities';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import type { PreparedRotation } from '../../packages/rotor/src/shared/rotation';
import { uniqueName } from '../helpers/env';
import { labels, logsIn, pgSecret, roleWithSecret, store, withAdmin } from '../helpers/stack';

/**
 * The label choreography of `reinstate`, driven step by step against the real store and PostgreSQL: the states a
 * crash can leave behind are set up by hand, then the activity runs (twice, as a retry would).
 */
const activities = createActivities({ store, rotators });
const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args) as Promise<R>;
const seen = new Set<string>();

async function putVersion(secretId: string, value: object, stages: string[]): Promise<string> {
  const token = randomUUID();
  await new SecretsManagerClient({}).send(
    new PutSecretValueCommand({
      SecretId: secretId,
      ClientRequestToken: token,
      SecretString: JSON.stringify(value),
      VersionStages: stages,
    }),
  );
  return token;
}

describe('reinstate on the real stack', () => {
  it('compensation after finish landed puts AWSCURRENT and AWSPREVIOUS back, even on an unlabelled version', async () => {
    // P (first version) → V0 current with P previous → T made current by a finish whose result was lost.
    const {
      secretId,
      username,
      password: p0,
      versionId: previousVersionId,
    } = await roleWithSecret('it', 'reinstate', seen);
    const v0Password = `V0-${Date.now()}-x`;
    const currentVersionId = await putVersion(secretId, pgSecret(username, v0Password), ['AWSCURRENT']);
    const tPassword = `T-${Date.now()}-y`;
    const token = await putVersion(secretId, pgSecret(username, tPassword), ['AWSCURRENT']);
    await withAdmin((a) => a.query(`ALTER ROLE ${escapeIdentifier(username)} PASSWORD ${escapeLiteral(tPassword)}`));
    expect(await labels(secretId)).toEqual({ current: token, previous: currentVersionId, versions: 3 });

    const prepared: PreparedRotation = { rotator: 'postgres-single-user', currentVersionId, previousVersionId };
    const input = { secretId, token, prepared, versionId: currentVersionId, mode: 'compensate' as const };
    for (let attempt = 0; attempt < 2; attempt++) {
      const report = await run(activities.reinstate, input);
      expect(report.outcome).toBe(attempt === 0 ? 'changed' : 'already-set');
      expect(await labels(secretId)).toEqual({ current: currentVersionId, previous: previousVersionId, versions: 3 });
    }
    expect(await logsIn(username, v0Password)).toBe(true);
    expect(await logsIn(username, tPassword)).toBe(false);
    expect(await logsIn(username, p0)).toBe(false);
  });

  it('refuses a rollback over a version someone else made current during grace', async () => {
    const { secretId, username, versionId: originalId } = await roleWithSecret('it', 'reinstate-third', seen);
    const token = await putVersion(secretId, pgSecret(username, `T-${Date.now()}`), ['AWSCURRENT']);
    const thirdId = await putVersion(secretId, pgSecret(username, `X-${Date.now()}`), ['AWSCURRENT']);
    const prepared: PreparedRotation = { rotator: 'postgres-single-user', currentVersionId: originalId };
    await expect(
      run(activities.reinstate, { secretId, token, prepared, versionId: originalId, mode: 'rollback' }),
    ).rejects.toThrow(/moved to version .* during grace: rotor will not roll back over it/);
    expect((await labels(secretId)).current).toBe(thirdId);
  });

  it('compensation when no version logs in cleans the labels and leaves the target alone', async () => {
    const { secretId, username, versionId: currentVersionId } = await roleWithSecret('it', 'reinstate-none', seen);
    const token = await putVersion(secretId, pgSecret(username, `T-${Date.now()}`), ['AWSPENDING']);
    const outOfBand = `Oob-${uniqueName('x')}`;
    await withAdmin((a) => a.query(`ALTER ROLE ${escapeIdentifier(username)} PASSWORD ${escapeLiteral(outOfBand)}`));
    const report = await run(activities.reinstate, {
      secretId,
      token,
      prepared: { rotator: 'postgres-single-user', currentVersionId },
      versionId: currentVersionId,
      mode: 'compensate',
    });
    expect(report.outcome).toBe('target-untouched');
    expect(await labels(secretId)).toEqual({ current: currentVersionId, versions: 2 });
    expect(await logsIn(username, outOfBand)).toBe(true);
  });
});
