import type { RowDataPacket } from 'mysql2';
import { createConnection } from 'mysql2/promise';
import { beforeAll, describe, expect, it } from 'vitest';
import { stackEnv, uniqueName } from '../helpers/env';
import { holdDirectory } from '../helpers/faulty-rotators';
import { historiesText } from '../helpers/hygiene';
import { createMysqlUser, mysqlLogsIn, mysqlSecret, mysqlUserExists, withMysqlAdmin } from '../helpers/mysql';
import {
  adminSecret,
  createSecret,
  labels,
  rememberPasswords,
  store,
  tagSecret,
  waitForStatus,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';
import { WorkerProcess } from '../helpers/worker-process';

const holdDir = holdDirectory();
const rig = useWorkerRig('it-mysql-alt', { holdDir });
const { taskQueue } = rig;
let masterId: string;
const passwords = new Set<string>();
const remember = (secretId: string) => rememberPasswords(secretId, passwords);

/** An account with a database of its own, and its alternating-users secret. */
async function pair(marker: string, tags?: Record<string, string>) {
  const base = uniqueName(`rotor_alt_${marker}`).replace(/-/g, '_').slice(0, 40);
  const password = `Init-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  passwords.add(password);
  await createMysqlUser(base, password);
  const db = `${base}_db`;
  await withMysqlAdmin(async (a) => {
    await a.query(`CREATE DATABASE ${a.escapeId(db)}`);
    await a.query(`GRANT ALL ON ${a.escapeId(db)}.* TO ?@'%'`, [base]);
  });
  const secretId = uniqueName(`it/mysql-alt-${marker}`);
  const versionId = await createSecret(secretId, mysqlSecret(base, password, { dbname: db, masterarn: masterId }));
  if (tags) await tagSecret(secretId, tags);
  return { secretId, base, password, versionId, db };
}

async function current(secretId: string): Promise<{ username: string; password: string }> {
  const json = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value);
  passwords.add(json.password);
  return json;
}

async function rotation(secretId: string, graceMs = 0) {
  await rig.rotor.rotate(secretId, { graceMs });
  const outcome = await rig.rotor.wait(secretId);
  await remember(secretId);
  return outcome;
}

async function asAccount<T>(
  user: string,
  password: string,
  db: string,
  work: (c: Awaited<ReturnType<typeof createConnection>>) => Promise<T>,
) {
  const url = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
  const c = await createConnection({ host: url.hostname, port: Number(url.port), user, password, database: db });
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  masterId = await adminSecret('mysql-alt-master', 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, passwords);
});

describe('MySQL/MariaDB alternating users on the real stack', () => {
  it('alternates between name and name_clone with the same grants; the held login keeps working', async () => {
    const { secretId, base, password, db, versionId } = await pair('happy');
    await asAccount(base, password, db, (c) => c.query('CREATE TABLE t (id int)'));
    expect((await rotation(secretId)).outcome).toBe('completed');
    const clone = await current(secretId);
    expect(clone.username).toBe(`${base}_clone`);
    expect(await mysqlLogsIn(base, password)).toBe(true);
    expect((await labels(secretId)).previous).toBe(versionId);
    await asAccount(clone.username, clone.password, db, async (c) => {
      await c.query('INSERT INTO t VALUES (1)');
      await c.query('CREATE TABLE t2 (id int)');
    });
    // A grant made to the first login after the clone existed reaches the clone at the next-but-one rotation.
    await withMysqlAdmin(async (a) => {
      await a.query(`CREATE DATABASE ${a.escapeId(`${db}_extra`)}`);
      await a.query(`GRANT SELECT ON ${a.escapeId(`${db}_extra`)}.* TO ?@'%'`, [base]);
    });
    expect((await rotation(secretId)).outcome).toBe('completed');
    const back = await current(secretId);
    expect(back.username).toBe(base);
    await asAccount(base, back.password, db, (c) => c.query('INSERT INTO t2 VALUES (2)'));
    expect((await rotation(secretId)).outcome).toBe('completed');
    const clone2 = await current(secretId);
    await asAccount(clone2.username, clone2.password, `${db}_extra`, (c) => c.query('SELECT 1'));
  });

  it('refuses to use the admin secret when AWSCURRENT does not log in (confused-deputy guard)', async () => {
    const { secretId, base } = await pair('deputy');
    await withMysqlAdmin((a) => a.query("ALTER USER ?@'%' IDENTIFIED BY ?", [base, `Oob-${Date.now()}`]));
    const outcome = await rotation(secretId);
    expect(outcome.outcome === 'failed' && outcome.message).toMatch(
      /AWSCURRENT does not log in .*rotor will not use the admin secret/,
    );
    expect(await mysqlUserExists(`${base}_clone`)).toBe(false);
  });

  it('rolls back during grace', async () => {
    const { secretId, base, password, versionId } = await pair('rollback');
    await rig.rotor.rotate(secretId, { graceMs: 600_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    await rig.rotor.rollback(secretId, 'test');
    expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
    await remember(secretId);
    expect((await labels(secretId)).current).toBe(versionId);
    expect(await mysqlLogsIn(base, password)).toBe(true);
  });

  it('locks the previous account after waiting for its session, and the next rotation unlocks it', async () => {
    const { secretId, base, password, db } = await pair('retire', {
      'rotor:retire': 'disable-login',
      'rotor:live-sessions-max-wait': '2m',
    });
    const url = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
    const held = await createConnection({
      host: url.hostname,
      port: Number(url.port),
      user: base,
      password,
      database: db,
    });
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const waiting = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'awaiting-sessions');
    expect(waiting.liveSessions).toBe(1);
    await held.end();
    const outcome = await rig.rotor.wait(secretId);
    await remember(secretId);
    expect(outcome.outcome === 'completed' && outcome.result.retirement).toBe('disabled-login');
    expect(await mysqlLogsIn(base, password)).toBe(false);
    expect((await rotation(secretId)).outcome).toBe('completed');
    const back = await current(secretId);
    expect(back.username).toBe(base);
    expect(await mysqlLogsIn(base, back.password)).toBe(true);
  });

  it('terminates the sessions of the previous account when the policy says so', async () => {
    const { secretId, base, password, db } = await pair('terminate', {
      'rotor:retire': 'scramble-password',
      'rotor:live-sessions': 'terminate',
    });
    const url = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
    const held = await createConnection({
      host: url.hostname,
      port: Number(url.port),
      user: base,
      password,
      database: db,
    });
    held.on('error', () => undefined);
    const outcome = await rotation(secretId);
    expect(outcome.outcome === 'completed' && outcome.result.retirement).toBe(
      'scrambled-password; terminated 1 sessions',
    );
    await expect(held.query('SELECT 1')).rejects.toThrow();
    expect(await mysqlLogsIn(base, password)).toBe(false);
  });

  it('gives the clone the TLS requirement of the current account', async () => {
    const { secretId, base } = await pair('tls');
    await withMysqlAdmin((a) => a.query("ALTER USER ?@'%' REQUIRE SSL", [base]));
    expect((await rotation(secretId)).outcome).toBe('completed');
    const clone = await current(secretId);
    const [rows] = await withMysqlAdmin((a) =>
      a.query<RowDataPacket[]>("SELECT ssl_type AS t FROM mysql.user WHERE User = ? AND Host = '%'", [clone.username]),
    );
    expect(rows[0]?.t).toBe('ANY');
    expect(await mysqlLogsIn(clone.username, clone.password)).toBe(false);
    const url = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
    const tls = await createConnection({
      host: url.hostname,
      port: Number(url.port),
      user: clone.username,
      password: clone.password,
      ssl: { rejectUnauthorized: false },
    });
    await tls.end();
  });

  it('compensates when the test step fails: AWSCURRENT stays the account it was', async () => {
    const { secretId, base, password, versionId } = await pair('fail-test');
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('failed');
    await remember(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await mysqlLogsIn(base, password)).toBe(true);
  });

  it('a worker killed with SIGKILL mid-rotation: a new worker finishes it', async () => {
    const { secretId, base } = await pair('hold-test');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await rig.killWhileHeld(secretId);
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await remember(secretId);
    const now = await current(secretId);
    expect(now.username).toBe(`${base}_clone`);
    expect(await mysqlLogsIn(now.username, now.password)).toBe(true);
  });

  it('leaves no password, the admin password included, in histories or worker logs', async () => {
    const { text } = await historiesText(rig.rotor.client, taskQueue);
    const logs = WorkerProcess.allLogs.join('\n');
    expect(text).toContain('it/mysql-alt-happy');
    for (const p of passwords) {
      expect(text.includes(p)).toBe(false);
      expect(logs.includes(p)).toBe(false);
    }
  });
});
