import { escapeIdentifier as q, escapeLiteral, Client as PgClient } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SetupPlan } from '../../packages/rotor/src/shared/reports';
import { runCli } from '../helpers/cli';
import { uniqueName } from '../helpers/env';
import {
  adminSecret,
  createRole,
  createSecret,
  pgSecret,
  roleExists,
  roleWithSecret,
  store,
  withAdmin,
  asPgLogin,
} from '../helpers/stack';
import { expectNoPasswords, newPassword as freshPassword } from '../helpers/hygiene';
import { rotateToCompletion, useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-setup');
const passwords = new Set<string>();
const outputs: string[] = [];
let master: string;

const newPassword = () => freshPassword(passwords);

async function asCurrent<T>(secretId: string, work: (c: PgClient) => Promise<T>): Promise<T> {
  const { username, password } = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value);
  passwords.add(password);
  return asPgLogin(username, password, work);
}

const rotate = (secretId: string) => rotateToCompletion(rig, secretId, passwords);

beforeAll(async () => {
  master = await adminSecret('setup-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
});

describe('rotor setup: the owner-role model as a command', () => {
  it('plans, applies in one transaction, changes nothing the second time, and the pair keeps rotating', async () => {
    const app = uniqueName('rotor_setup').replace(/-/g, '_');
    const reader = `${app}_reader`;
    await withAdmin(async (a) => {
      await a.query(`CREATE ROLE ${q(app)} LOGIN PASSWORD ${escapeLiteral(newPassword())}`);
      await a.query(`CREATE ROLE ${q(reader)} NOLOGIN`);
      await a.query(`CREATE SCHEMA ${q(app)} AUTHORIZATION ${q(app)}`);
      await a.query(
        `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(app)} IN SCHEMA ${q(app)} GRANT SELECT ON TABLES TO ${q(reader)}`,
      );
    });
    const password = [...passwords].at(-1)!;
    const secretId = uniqueName('it/setup');
    await createSecret(secretId, pgSecret(app, password, { masterarn: master }));
    await asCurrent(secretId, (c) => c.query(`CREATE TABLE ${q(app)}.t0 (id int)`));
    await rotate(secretId); // the clone exists, as on a pair that has been rotating
    const owner = `${app}_owner`;

    const dry = await runCli(rig.taskQueue, ['setup', secretId, '--dry-run', '--json'], {}, outputs);
    expect(dry.stderr).toBe('');
    const plan = JSON.parse(dry.stdout) as SetupPlan & { dryRun: boolean };
    expect(plan).toMatchObject({ owner, applied: 0, dryRun: true });
    expect(plan.statements.filter((s) => !s.done).map((s) => s.sql)).toEqual([
      `CREATE ROLE ${q(owner)} NOLOGIN`,
      `GRANT ${q(owner)} TO ${q(app)}`,
      `ALTER ROLE ${q(app)} SET role = ${escapeLiteral(owner)}`,
      `GRANT ${q(owner)} TO ${q(`${app}_clone`)}`,
      `ALTER ROLE ${q(`${app}_clone`)} SET role = ${escapeLiteral(owner)}`,
      `GRANT USAGE, CREATE ON SCHEMA ${q(app)} TO ${q(owner)}`,
      `REASSIGN OWNED BY ${q(app)} TO ${q(owner)}`,
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)} IN SCHEMA ${q(app)} GRANT SELECT ON TABLES TO ${q(reader)}`,
    ]);
    expect(await roleExists(owner)).toBe(false);

    const applied = await runCli(rig.taskQueue, ['setup', secretId], {}, outputs);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toMatch(/applied 8 statements in one transaction/);
    const owners = await withAdmin(async (a) =>
      (await a.query('SELECT DISTINCT tableowner AS o FROM pg_tables WHERE schemaname = $1', [app])).rows.map(
        (r) => r.o,
      ),
    );
    expect(owners).toEqual([owner]);

    const again = await runCli(rig.taskQueue, ['setup', secretId], {}, outputs);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/\(0 to run, \d+ in place\)/);
    expect(again.stdout).toMatch(/nothing to change/);

    // Both logins act as the owner role from now on, and use each other's tables.
    for (let i = 1; i <= 2; i++) {
      await rotate(secretId);
      await asCurrent(secretId, async (c) => {
        expect((await c.query('SELECT current_user AS u')).rows[0].u).toBe(owner);
        await c.query(`INSERT INTO ${q(app)}.t0 VALUES (${i})`);
        await c.query(`CREATE TABLE ${q(app)}.${q(`t${i}`)} (id int)`);
      });
    }
    const reads = await withAdmin(
      async (a) =>
        (
          await a.query(
            `SELECT has_table_privilege(${escapeLiteral(reader)}, ${escapeLiteral(`${app}.t2`)}, 'SELECT') AS ok`,
          )
        ).rows[0].ok,
    );
    expect(reads).toBe(true);
  });

  it('refuses, changing nothing, when the admin may not create roles, and for secrets that need no setup', async () => {
    const weak = uniqueName('rotor_setup_weak').replace(/-/g, '_');
    const weakPassword = newPassword();
    await createRole(weak, weakPassword);
    const weakAdmin = uniqueName('it/setup-weak-admin');
    await createSecret(weakAdmin, pgSecret(weak, weakPassword));
    const app = uniqueName('rotor_setup_refused').replace(/-/g, '_');
    const password = newPassword();
    await createRole(app, password);
    const secretId = uniqueName('it/setup-refused');
    await createSecret(secretId, pgSecret(app, password, { masterarn: weakAdmin }));
    const refused = await runCli(rig.taskQueue, ['setup', secretId], {}, outputs);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/the admin secret may not run CREATE ROLE .* nothing was changed/);
    expect(await roleExists(`${app}_owner`)).toBe(false);

    const single = await roleWithSecret('it', 'setup-single', passwords);
    const needless = await runCli(rig.taskQueue, ['setup', single.secretId], {}, outputs);
    expect(needless.code).toBe(2);
    expect(needless.stderr).toMatch(/rotates with postgres-single-user, which needs no setup/);
  });

  it('leaves no password in histories, worker logs or CLI output', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/setup', outputs);
  });
});
