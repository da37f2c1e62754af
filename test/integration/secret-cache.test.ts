import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool, type RowDataPacket } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import {
  AwsSecretsManagerStore,
  createRotatingMysqlPool,
  createRotatingPgPool,
  SecretCache,
  type LoginEvent,
} from 'rotor-consumers';
import { SecretNotFoundError } from 'rotor-consumers/core';
import { uniqueName } from '../helpers/env';
import { mysqlLogsIn, mysqlSecret, mysqlUserWithSecret, withMysqlAdmin } from '../helpers/mysql';
import { createSecret, pgSecret, roleWithSecret, store, withAdmin } from '../helpers/stack';

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

/** Makes `value` the secret's AWSCURRENT, as a rotation's finish or a rollback would. */
async function makeCurrent(secretId: string, value: object): Promise<void> {
  const token = randomUUID();
  await store.putPending(secretId, token, JSON.stringify(value));
  await store.moveStage(secretId, 'AWSCURRENT', token);
  await store.removeStage(secretId, 'AWSPENDING', token);
}

const burstOf = <T>(work: () => Promise<T>) => Promise.allSettled(Array.from({ length: 10 }, work));
const errnos = (outcomes: PromiseSettledResult<unknown>[]) =>
  outcomes.map((o) =>
    o.status === 'rejected'
      ? String((o.reason as { errno?: number; code?: string }).errno ?? (o.reason as { code?: string }).code)
      : 'ok',
  );

describe('the failed-login cap under concurrency, on real databases', () => {
  it('MariaDB blocking accounts after 5 wrong passwords: a burst of 10 after the password changed behind the pool costs 3 refused logins, one more after the pause, and the account still logs in once the secret is fixed; a plain pool gets it blocked', async () => {
    const seen = new Set<string>();
    const app = await mysqlUserWithSecret('login-cap', seen);
    const plain = await mysqlUserWithSecret('login-cap-control', seen);
    const changed = `Changed-${randomUUID()}`;
    await withMysqlAdmin(async (admin) => {
      const failedConnects = async () =>
        Number((await admin.query<RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Aborted_connects'"))[0][0]!.Value);
      const changeBehindThePool = async (username: string) => {
        await admin.query('ALTER USER ?@? IDENTIFIED BY ?', [username, '%', changed]);
        const [sessions] = await admin.query<RowDataPacket[]>(
          'SELECT id FROM information_schema.processlist WHERE user = ?',
          [username],
        );
        for (const { id } of sessions) await admin.query('KILL CONNECTION ?', [id]);
        await sleep(500); // the pools drop their killed connections: every request needs a new login
      };
      await admin.query('SET GLOBAL max_password_errors = 5');
      try {
        const events: LoginEvent[] = [];
        const pool = createRotatingMysqlPool({
          cache: new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 3_600_000 }),
          secretId: app.secretId,
          reporter: { record: (e) => void events.push(e) },
          pool: { connectionLimit: 10 },
        });
        try {
          await pool.query('SELECT 1');
          await changeBehindThePool(app.username);
          let before = await failedConnects();
          const first = await burstOf(() => pool.query('SELECT SLEEP(0.1)'));
          expect(errnos(first)).toEqual(Array(10).fill('1045'));
          expect((await failedConnects()) - before).toBe(3);
          expect(events.filter((e) => e.outcome === 'auth-failure')).toHaveLength(3);

          await sleep(1_100); // past the pause: one request tries, the others fail fast
          before = await failedConnects();
          expect(errnos(await burstOf(() => pool.query('SELECT 1')))).toEqual(Array(10).fill('1045'));
          expect((await failedConnects()) - before).toBe(1);

          // The secret is fixed (a rotation's finish, a rollback): 4 wrong passwords so far, so MariaDB lets it in.
          await makeCurrent(app.secretId, mysqlSecret(app.username, changed));
          await sleep(1_100); // the pool asks the store at most once a second while the old version is paused
          const [rows] = await pool.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u');
          expect(String(rows[0]!.u)).toMatch(new RegExp(`^${app.username}@`));
        } finally {
          await pool.end();
        }

        // The control: a plain mysql2 pool with the stale password sends all ten logins, and MariaDB blocks the
        // account: the right password is refused too (4150) until an administrator flushes privileges.
        const url = mysqlSecret(plain.username, plain.password) as { host: string; port: number };
        const stale = createPool({
          host: url.host,
          port: url.port,
          user: plain.username,
          password: plain.password,
          connectionLimit: 10,
        });
        try {
          await stale.query('SELECT 1');
          await changeBehindThePool(plain.username);
          const before = await failedConnects();
          const outcomes = errnos(await burstOf(() => stale.query('SELECT SLEEP(0.1)')));
          expect((await failedConnects()) - before).toBe(10);
          expect(outcomes).toContain('4150');
          expect(await mysqlLogsIn(plain.username, changed)).toBe(false);
        } finally {
          await stale.end();
        }
      } finally {
        await admin.query('SET GLOBAL max_password_errors = DEFAULT');
        await admin.query('FLUSH PRIVILEGES');
      }
    });
  });

  it('PostgreSQL: a burst of 10 after the password changed behind the pool reports 3 refused logins, then follows the fixed secret', async () => {
    const { secretId, username } = await roleWithSecret('it', 'login-cap', new Set());
    const changed = `Changed-${randomUUID()}`;
    const events: LoginEvent[] = [];
    const pool = createRotatingPgPool({
      cache: new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 3_600_000 }),
      secretId,
      reporter: { record: (e) => void events.push(e) },
      pool: { max: 10 },
    });
    pool.on('error', () => undefined); // the idle connection terminated below
    try {
      await pool.query('SELECT 1');
      await withAdmin(async (admin) => {
        await admin.query(`ALTER ROLE ${admin.escapeIdentifier(username)} PASSWORD ${admin.escapeLiteral(changed)}`);
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [username]);
      });
      await sleep(500);
      const first = await burstOf(() => pool.query('SELECT pg_sleep(0.1)'));
      expect(errnos(first)).toEqual(Array(10).fill('28P01'));
      // Each refused login is one request's refusal: three logins were tried, the seven waiting were held back.
      expect(events.filter((e) => e.outcome === 'auth-failure')).toHaveLength(3);
      await makeCurrent(secretId, pgSecret(username, changed));
      await sleep(1_100);
      const { rows } = await pool.query<{ u: string }>('SELECT current_user AS u');
      expect(rows[0]!.u).toBe(username);
    } finally {
      await pool.end();
    }
  });
});
