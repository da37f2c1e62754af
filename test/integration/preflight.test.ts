import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { stackEnv, uniqueName } from '../helpers/env';
import { createMysqlUser, mysqlSecret } from '../helpers/mysql';
import {
  adminSecret,
  createRole,
  createSecret,
  labels,
  logsIn,
  passwordAt,
  pgSecret,
  rememberPasswords,
  roleWithSecret,
  tagSecret,
  withAdmin,
} from '../helpers/stack';
import { expectNoPasswords, newPassword as freshPassword } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-preflight');
const passwords = new Set<string>();
let pgMaster: string;

const newPassword = () => freshPassword(passwords);

/** Rotates `secretId` to its end and returns the failure message (or the outcome when it did not fail). */
async function refusal(secretId: string, outageBudgetMs?: number): Promise<string> {
  await rig.rotor.rotate(secretId, { graceMs: 0, ...(outageBudgetMs === undefined ? {} : { outageBudgetMs }) });
  const outcome = await rig.rotor.wait(secretId);
  await rememberPasswords(secretId, passwords).catch(() => undefined);
  return outcome.outcome === 'failed' ? outcome.message : outcome.outcome;
}

/** A secret nobody rotated, with one version: after a refusal it must be exactly that. */
async function untouched(secretId: string, versionId: string): Promise<void> {
  expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
}

async function pgSecretFor(marker: string, value: object): Promise<{ secretId: string; versionId: string }> {
  const secretId = uniqueName(`it/preflight-${marker}`);
  return { secretId, versionId: await createSecret(secretId, value) };
}

beforeAll(async () => {
  pgMaster = await adminSecret('preflight-pg-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
});

describe('prepare refuses what a rotation cannot do, before any version is written', () => {
  it('a wrong AWSCURRENT password with no AWSPREVIOUS (PostgreSQL and MariaDB)', async () => {
    const { secretId, versionId } = await roleWithSecret('it', 'preflight-wrong', passwords);
    const wrong = await pgSecretFor('wrong', { ...pgSecret('nobody', newPassword()) });
    expect(await refusal(wrong.secretId)).toMatch(
      /failed at prepare: .*no version of the secret .* logs in as "nobody".*RotorCredentialsRejected.*nothing was changed/,
    );
    await untouched(wrong.secretId, wrong.versionId);
    // The healthy one next to it still rotates.
    expect(await refusal(secretId)).toBe('completed');
    expect((await labels(secretId)).previous).toBe(versionId);

    const user = uniqueName('rotor_pf').replace(/-/g, '_');
    await createMysqlUser(user, newPassword());
    const mysqlId = uniqueName('it/preflight-mysql-wrong');
    const mysqlVersion = await createSecret(mysqlId, mysqlSecret(user, newPassword()));
    expect(await refusal(mysqlId)).toMatch(
      /failed at prepare: .*no version of the secret .* logs in.*nothing was changed/,
    );
    await untouched(mysqlId, mysqlVersion);
  });

  it('a malformed or unresolvable host, a missing database and a port where another engine listens are refused at once (the default outage budget does not apply); a closed port is an outage', async () => {
    // A real login, so that only the named field is wrong.
    const app = uniqueName('rotor_pf_fields').replace(/-/g, '_');
    const appPassword = newPassword();
    await createRole(app, appPassword);
    const cases: [string, object, RegExp][] = [
      ['space', pgSecret(app, appPassword, { host: 'db .internal' }), /host: must be a host name or IP address/],
      [
        'nxdomain',
        pgSecret(app, appPassword, { host: 'no-such-host.invalid' }),
        /host: "no-such-host.invalid" does not resolve/,
      ],
      ['nodb', pgSecret(app, appPassword, { dbname: uniqueName('no_such_db') }), /dbname: database .* does not exist/],
      [
        'mariadb-port',
        pgSecret(app, appPassword, { port: Number(new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL')).port) }),
        /does not speak PostgreSQL's protocol/,
      ],
      // Nothing listening is what a failover looks like: an outage, waited out for the budget (none here).
      ['closed-port', pgSecret(app, appPassword, { port: 1 }), /did not accept a connection .*ECONNREFUSED/],
    ];
    for (const [marker, value, reason] of cases) {
      const { secretId, versionId } = await pgSecretFor(marker, value);
      const message = await refusal(secretId, marker === 'closed-port' ? 0 : undefined);
      expect(message).toMatch(/failed at prepare: /);
      expect(message).toMatch(reason);
      expect(message).toMatch(/nothing was changed/);
      await untouched(secretId, versionId);
    }
  });

  it('alternating users: a masterarn naming a missing secret, another server, or an admin that may not manage roles', async () => {
    const base = uniqueName('rotor_pf_alt').replace(/-/g, '_');
    const password = newPassword();
    await createRole(base, password);
    const missing = await pgSecretFor(
      'alt-missing',
      pgSecret(base, password, { masterarn: uniqueName('it/no-such-admin') }),
    );
    expect(await refusal(missing.secretId)).toMatch(/failed at prepare: .*not found.*nothing was changed/);
    await untouched(missing.secretId, missing.versionId);

    const elsewhereId = uniqueName('it/preflight-admin-other-server');
    await createSecret(elsewhereId, pgSecret('postgres', newPassword(), { host: 'db.elsewhere.example' }));
    const other = await pgSecretFor('alt-other', pgSecret(base, password, { masterarn: elsewhereId }));
    expect(await refusal(other.secretId)).toMatch(
      /failed at prepare: .*names another server than the user secret.*nothing was changed/,
    );
    await untouched(other.secretId, other.versionId);

    const weak = uniqueName('rotor_pf_weak').replace(/-/g, '_');
    const weakPassword = newPassword();
    await createRole(weak, weakPassword);
    const weakId = uniqueName('it/preflight-weak-admin');
    await createSecret(weakId, pgSecret(weak, weakPassword));
    const unprivileged = await pgSecretFor('alt-weak', pgSecret(base, password, { masterarn: weakId }));
    expect(await refusal(unprivileged.secretId)).toMatch(
      /failed at prepare: .*may not create or alter roles \(it needs CREATEROLE\).*nothing was changed/,
    );
    await untouched(unprivileged.secretId, unprivileged.versionId);

    // With the stack's admin it rotates.
    const good = await pgSecretFor('alt-good', pgSecret(base, password, { masterarn: pgMaster }));
    expect(await refusal(good.secretId)).toBe('completed');
    await withAdmin((a) => a.query(`ALTER ROLE ${escapeIdentifier(weak)} PASSWORD ${escapeLiteral(newPassword())}`));
  });

  it('a retirement tag with a bad value, even on a single-user secret', async () => {
    const { secretId, versionId } = await roleWithSecret('it', 'preflight-tag', passwords);
    await tagSecret(secretId, { 'rotor:retire': 'sometimes' });
    expect(await refusal(secretId)).toMatch(
      /failed at prepare: .*tag rotor:retire: "sometimes" is not none, disable-login or scramble-password.*nothing was changed/,
    );
    await untouched(secretId, versionId);
  });

  it('a grace period beyond the maximum, refused before a rotation starts', async () => {
    const { secretId, versionId } = await roleWithSecret('it', 'preflight-grace', passwords);
    await expect(rig.rotor.rotate(secretId, { graceMs: 99_999_999 * 86_400_000 })).rejects.toThrow(
      /grace: .* is longer than the maximum grace period of 30d/,
    );
    await untouched(secretId, versionId);
  });

  it('a stray AWSPENDING the database holds: the database is set back to AWSCURRENT before the label moves', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('it', 'preflight-stray', passwords);
    // A rotation that set its password and never finished: AWSPENDING holds what the database accepts.
    const strayPassword = newPassword();
    const stray = await new SecretsManagerClient({}).send(
      new PutSecretValueCommand({
        SecretId: secretId,
        SecretString: JSON.stringify(pgSecret(username, strayPassword)),
        VersionStages: ['AWSPENDING'],
      }),
    );
    await withAdmin((a) =>
      a.query(`ALTER ROLE ${escapeIdentifier(username)} PASSWORD ${escapeLiteral(strayPassword)}`),
    );
    expect(await logsIn(username, password)).toBe(false);

    expect(await refusal(secretId)).toBe('completed');
    const create = (await rig.rotor.status(secretId))?.steps.find((s) => s.step === 'create');
    expect(create?.outcome).toBe('created; the database was set back to AWSCURRENT from a stray AWSPENDING');
    const after = await labels(secretId);
    expect(after.previous).toBe(versionId);
    expect(after.pending).toBeUndefined();
    expect([after.current]).not.toContain(stray.VersionId);
    expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
    expect(await logsIn(username, strayPassword)).toBe(false);
  });

  it('leaves no password in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/preflight-');
  });
});
