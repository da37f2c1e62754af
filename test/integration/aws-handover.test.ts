import { DescribeSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createConnection } from 'mysql2/promise';
import { escapeIdentifier as q, escapeLiteral, Client as PgClient } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsRotates } from '../helpers/aws-reference';
import { stackEnv, uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword as freshPassword } from '../helpers/hygiene';
import { createMysqlUser, mysqlLogsIn, mysqlSecret, withMysqlAdmin } from '../helpers/mysql';
import {
  adminSecret,
  createSecret,
  labels,
  logsIn,
  pgSecret,
  rememberPasswords,
  store,
  withAdmin,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-aws-handover');
const passwords = new Set<string>();
const remember = (secretId: string) => rememberPasswords(secretId, passwords);
const sm = new SecretsManagerClient({});
let pgMasterArn: string;
let mysqlMasterArn: string;

type Kind = 'postgres' | 'mysql';
type Login = { username: string; password: string };

const newPassword = () => freshPassword(passwords);

async function arnOf(secretId: string): Promise<string> {
  return (await sm.send(new DescribeSecretCommand({ SecretId: secretId }))).ARN!;
}

async function currentLogin(secretId: string): Promise<Login> {
  const json = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value);
  passwords.add(json.password);
  return json;
}

/** Runs `sql` as a login of the secret, as the application would (PostgreSQL: its default role setting applies). */
async function asApp(kind: Kind, login: Login, db: string, sql: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  if (kind === 'postgres') {
    const url = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
    const c = new PgClient({
      host: url.hostname,
      port: Number(url.port),
      user: login.username,
      password: login.password,
      database: db,
    });
    await c.connect();
    try {
      for (const s of sql) out.push((await c.query(s)).rows);
    } finally {
      await c.end();
    }
    return out;
  }
  const url = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
  const c = await createConnection({
    host: url.hostname,
    port: Number(url.port),
    user: login.username,
    password: login.password,
    database: db,
  });
  try {
    for (const s of sql) out.push((await c.query(s))[0]);
  } finally {
    await c.end();
  }
  return out;
}

const loginWorks = (kind: Kind, l: Login) =>
  kind === 'postgres' ? logsIn(l.username, l.password) : mysqlLogsIn(l.username, l.password);

async function rotorRotates(secretId: string): Promise<void> {
  await rig.rotor.rotate(secretId, { graceMs: 0 });
  const outcome = await rig.rotor.wait(secretId);
  await remember(secretId);
  expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
  expect((await labels(secretId)).pending).toBeUndefined();
}

/** A login that owns a schema (PostgreSQL) or has a database (MySQL) and nothing else: no rotor setup. */
async function application(kind: Kind, mode: 'single' | 'multi') {
  const base = uniqueName(`rotor_ho_${kind[0]}${mode[0]}`).replace(/-/g, '_').slice(0, 40);
  const password = newPassword();
  const secretId = uniqueName(`it/handover-${kind}-${mode}`);
  const extra = mode === 'multi' ? { masterarn: kind === 'postgres' ? pgMasterArn : mysqlMasterArn } : {};
  if (kind === 'postgres') {
    await withAdmin(async (admin) => {
      await admin.query(`CREATE ROLE ${q(base)} LOGIN PASSWORD ${escapeLiteral(password)}`);
      await admin.query(`CREATE SCHEMA ${q(base)} AUTHORIZATION ${q(base)}`);
    });
    await createSecret(secretId, pgSecret(base, password, extra));
    return { secretId, base, db: 'postgres', table: (n: string) => `${q(base)}.${q(n)}` };
  }
  await createMysqlUser(base, password);
  const db = `${base}_db`;
  await withMysqlAdmin(async (a) => {
    await a.query(`CREATE DATABASE ${a.escapeId(db)}`);
    await a.query(`GRANT ALL ON ${a.escapeId(db)}.* TO ?@'%'`, [base]);
  });
  await createSecret(secretId, mysqlSecret(base, password, { dbname: db, ...extra }));
  return { secretId, base, db, table: (n: string) => `\`${n}\`` };
}

beforeAll(async () => {
  pgMasterArn = await arnOf(await adminSecret('handover-pg-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords));
  mysqlMasterArn = await arnOf(
    await adminSecret('handover-mysql-master', 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, passwords),
  );
});

describe("hand-overs between AWS's reference rotation functions and rotor", () => {
  for (const kind of ['postgres', 'mysql'] as const) {
    for (const mode of ['single', 'multi'] as const) {
      it(`${kind} ${mode === 'single' ? 'single-user' : 'alternating users'}: AWS, rotor, AWS, rotor, AWS, rotor; AWSCURRENT logs in and uses every table`, async () => {
        const app = await application(kind, mode);
        const tables: string[] = [];
        /** The application, as AWSCURRENT, uses every table made so far and makes one of its own. */
        const appWorks = async (round: number) => {
          const login = await currentLogin(app.secretId);
          expect(await loginWorks(kind, login)).toBe(true);
          const name = `t${round}`;
          await asApp(kind, login, app.db, [
            ...tables.flatMap((t) => [
              `INSERT INTO ${app.table(t)} VALUES (${round})`,
              `SELECT count(*) FROM ${app.table(t)}`,
            ]),
            `CREATE TABLE ${app.table(name)} (id int)`,
          ]);
          tables.push(name);
        };
        await appWorks(0);
        for (let round = 1; round <= 3; round++) {
          const before = await currentLogin(app.secretId);
          const token = await awsRotates(app.secretId, kind, mode);
          await remember(app.secretId);
          // AWS's function leaves AWSPENDING on the version it made current.
          expect(await labels(app.secretId)).toMatchObject({ current: token, pending: token });
          await appWorks(round * 10);

          await rotorRotates(app.secretId);
          const after = await currentLogin(app.secretId);
          if (mode === 'single') {
            expect(await loginWorks(kind, before)).toBe(false);
          } else {
            expect(after.username).toBe(before.username);
            expect(after.password).not.toBe(before.password);
          }
          await appWorks(round * 10 + 1);
        }
      });
    }
  }

  it('a PostgreSQL secret whose AWSPREVIOUS names a login that does not exist rotates', async () => {
    const app = await application('postgres', 'multi');
    const first = await currentLogin(app.secretId);
    // An older version, now AWSPREVIOUS, whose login is long gone; AWSCURRENT is the application's own.
    const ghost = {
      ...JSON.parse((await store.getByStage(app.secretId, 'AWSCURRENT'))!.value),
      username: `${app.base}_gone`,
      password: newPassword(),
    };
    await sm.send(
      new PutSecretValueCommand({
        SecretId: app.secretId,
        SecretString: JSON.stringify(ghost),
        VersionStages: ['AWSCURRENT'],
      }),
    );
    await sm.send(
      new PutSecretValueCommand({
        SecretId: app.secretId,
        SecretString: JSON.stringify(first),
        VersionStages: ['AWSCURRENT'],
      }),
    );
    await rotorRotates(app.secretId);
    const clone = await currentLogin(app.secretId);
    expect(clone.username).toBe(`${app.base}_clone`);
    expect(await logsIn(clone.username, clone.password)).toBe(true);
  });

  it('leaves no password, the admin passwords included, in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/handover-');
  });
});
