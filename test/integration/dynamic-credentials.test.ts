import { randomBytes } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { LeasedCredentials, SecretCache } from 'rotor-consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotatingBackend, staticBackend, type Engine } from '../helpers/backends';
import { stackEnv, uniqueName, until } from '../helpers/env';
import { runCli } from '../helpers/cli';
import { expectNoPasswords, recordHistories } from '../helpers/hygiene';
import { serveUnderLoad } from '../helpers/load-app';
import { createConnection as createMysqlConnection, type RowDataPacket } from 'mysql2/promise';
import { mysqlLogsIn, mysqlSecret, withMysqlAdmin } from '../helpers/mysql';
import { BAO_MOUNT } from '../helpers/openbao';
import { freePort, workerWithConfig } from '../helpers/ops';
import { tcpProxy } from '../helpers/outage';
import { adminSecret, createSecret, idOn, pgSecret, store, withAdmin } from '../helpers/stack';

/*
 * Short-lived database credentials on the real stack: templates on OpenBao, a `rotor worker` serving leases at its
 * report endpoint, applications on rotor-consumers' pools over LeasedCredentials. Lifetimes are seconds here (TTL
 * 6 s, maximum 12 s: renewed at 4 s, the instance renews every 2 s, a new login 6 s before the end), so five maximum
 * lifetimes take a minute.
 */

const values = new Set<string>();
const token = randomBytes(24).toString('base64url');
const taskQueue = uniqueName('it-dynamic');
const prefix = { postgres: `pg${randomBytes(3).toString('hex')}`, mysql: `my${randomBytes(3).toString('hex')}` };
const templates: Record<Engine, string> = {
  postgres: idOn('bao', uniqueName('it/dyn-pg')),
  mysql: idOn('bao', uniqueName('it/dyn-mysql')),
};
const TTL = '6s';
const MAX_TTL_MS = 12_000;
const table = uniqueName('dyn_items').replace(/-/g, '_');
let url = '';
let metricsPort = 0;
const outputs: string[] = [];
let running: Awaited<ReturnType<typeof workerWithConfig>>;
/** A PostgreSQL template's contents with its own login prefix (admin and key made in beforeAll). */
let pgTemplate: (usernamePrefix: string) => object;
/** The worker reaches OpenBao through this proxy, which a test cuts. */
let baoProxy: Awaited<ReturnType<typeof tcpProxy>>;

/** Logins of a template alive on its server now. */
async function liveLogins(engine: Engine): Promise<string[]> {
  if (engine === 'postgres')
    return withAdmin(async (admin) =>
      (
        await admin.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [
          `v_${prefix.postgres}_%`,
        ])
      ).rows.map((r) => r.rolname),
    );
  return withMysqlAdmin(async (admin) => {
    const [rows] = await admin.query('SELECT User AS user FROM mysql.user WHERE User LIKE ?', [`v_${prefix.mysql}_%`]);
    return (rows as { user: string }[]).map((r) => r.user);
  });
}

beforeAll(async () => {
  const pgAdmin = await adminSecret(`bao:${BAO_MOUNT}/it/dyn-pg-admin`, 'ROTOR_PG_ADMIN_URL', pgSecret, values);
  const myAdmin = await adminSecret(`bao:${BAO_MOUNT}/it/dyn-my-admin`, 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, values);
  await withAdmin((admin) => admin.query(`CREATE TABLE public.${table} (id int)`));
  await withMysqlAdmin((admin) => admin.query('CREATE DATABASE IF NOT EXISTS rotor_dynamic'));
  const key = () => {
    const k = randomBytes(32).toString('base64');
    values.add(k);
    return k;
  };
  pgTemplate = (usernamePrefix: string) => ({
    kind: 'dynamic-database',
    engine: 'postgres',
    admin: pgAdmin,
    creationStatements: [
      'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}',
      `GRANT SELECT ON public.${table} TO {{name}}`,
      'GRANT CREATE ON SCHEMA public TO {{name}}',
    ],
    defaultTtl: TTL,
    maxTtl: `${MAX_TTL_MS / 1000}s`,
    usernamePrefix,
    passwordKey: key(),
    reassignTo: decodeURIComponent(new URL(stackEnv('ROTOR_PG_ADMIN_URL')).username),
  });
  await createSecret(templates.postgres, pgTemplate(prefix.postgres));
  await createSecret(templates.mysql, {
    kind: 'dynamic-database',
    engine: 'mariadb',
    admin: myAdmin,
    creationStatements: [
      "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}",
      // Enough to define views, routines, triggers and events (as a migration run with a leased login would).
      "GRANT ALL ON rotor_dynamic.* TO {{name}}@'%'",
    ],
    defaultTtl: TTL,
    maxTtl: `${MAX_TTL_MS / 1000}s`,
    usernamePrefix: prefix.mysql,
    passwordKey: key(),
  });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  metricsPort = await freePort();
  const bao = new URL(stackEnv('BAO_ADDR'));
  baoProxy = await tcpProxy({ host: bao.hostname, port: Number(bao.port) });
  running = await workerWithConfig(
    taskQueue,
    `stores:
  openbao:
    - name: bao
      address: http://127.0.0.1:${baoProxy.port}
      auth: { method: token, tokenFromEnv: BAO_TOKEN }
reports:
  port: ${port}
  tokens:
    - { name: it-apps, tokenFromEnv: IT_LEASE_TOKEN, secrets: ['bao:${BAO_MOUNT}/it/*'], requestsPerSecond: 500, maxLeases: 150 }
secrets:
  - id: ${templates.postgres}
    schedule: { every: 30d }
`,
    { IT_LEASE_TOKEN: token, ROTOR_METRICS_PORT: String(metricsPort) },
  );
}, 120_000);

afterAll(async () => {
  await running?.stop();
  await baoProxy?.close();
});

const lease = (method: string, path: string, body?: object) =>
  fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });

describe('short-lived database credentials', () => {
  it(
    'applications under load through 5 maximum lifetimes: 0 failed queries on PostgreSQL and MariaDB; the control that kept its first credential fails',
    async () => {
      const run = async (engine: Engine) => {
        const leased = new LeasedCredentials({ url, token });
        const cache = new SecretCache({ store: leased, refreshIntervalMs: 500, jitter: 0 });
        const app = await serveUnderLoad(rotatingBackend(engine, cache, templates[engine]));
        const control = await serveUnderLoad(await staticBackend(engine, templates[engine], leased), 1);
        await new Promise((r) => setTimeout(r, MAX_TTL_MS * 5));
        await app.stop();
        await control.stop();
        const used = await liveLogins(engine);
        await leased.close();
        return { app, control, used };
      };
      const [pg, my] = await Promise.all([run('postgres'), run('mysql')]);
      for (const { app, control, used } of [pg, my]) {
        expect(app.failures).toEqual([]);
        // A new login before each maximum lifetime ended: at least five generations served requests.
        expect(app.served.size).toBeGreaterThanOrEqual(5);
        expect(app.total()).toBeGreaterThan(100);
        expect(control.failures.length).toBeGreaterThan(0);
        // While in use, a lease holds its current login and at most the one it replaced.
        expect(used.length).toBeLessThanOrEqual(2);
      }
      // Released at close: no login of either template is left.
      for (const engine of ['postgres', 'mysql'] as const)
        await until(
          `${engine} logins revoked`,
          async () => ((await liveLogins(engine)).length === 0 ? true : undefined),
          30_000,
        );
    },
    MAX_TTL_MS * 5 + 90_000,
  );

  it('revocation ends the sessions, reassigns what the login owns and drops it; its backstop is set', async () => {
    const leased = new LeasedCredentials({ url, token });
    const login = JSON.parse((await leased.getByStage(templates.postgres, 'AWSCURRENT'))!.value) as {
      username: string;
      password: string;
      host: string;
      port: number;
    };
    values.add(login.password);
    const session = new PgClient({
      host: login.host,
      port: login.port,
      user: login.username,
      password: login.password,
      database: 'postgres',
    });
    session.on('error', () => undefined);
    await session.connect();
    const owned = uniqueName('dyn_owned').replace(/-/g, '_');
    await session.query(`CREATE TABLE public.${owned} (id int)`);
    const validUntil = await withAdmin(
      async (a) =>
        (await a.query<{ v: Date }>('SELECT rolvaliduntil AS v FROM pg_roles WHERE rolname = $1', [login.username]))
          .rows[0]?.v,
    );
    expect(validUntil).toBeInstanceOf(Date);
    expect(validUntil!.getTime()).toBeGreaterThan(Date.now());
    await leased.close();
    await until(
      'the login dropped',
      async () => ((await liveLogins('postgres')).includes(login.username) ? undefined : true),
      20_000,
    );
    await expect(session.query('SELECT 1')).rejects.toThrow();
    const owner = await withAdmin(
      async (a) =>
        (await a.query<{ owner: string }>('SELECT tableowner AS owner FROM pg_tables WHERE tablename = $1', [owned]))
          .rows[0]?.owner,
    );
    expect(owner).toBe(decodeURIComponent(new URL(stackEnv('ROTOR_PG_ADMIN_URL')).username));
  }, 60_000);

  it('MySQL: revocation ends the sessions, makes the admin the definer of what the login defined and drops it; a backstop event would drop it at its maximum lifetime', async () => {
    await withMysqlAdmin((admin) => admin.query('SET GLOBAL event_scheduler = ON'));
    try {
      const leased = new LeasedCredentials({ url, token });
      const login = JSON.parse((await leased.getByStage(templates.mysql, 'AWSCURRENT'))!.value) as {
        username: string;
        password: string;
        host: string;
        port: number;
      };
      values.add(login.password);
      const issuedAt = Date.now();
      const session = await createMysqlConnection({
        host: login.host,
        port: login.port,
        user: login.username,
        password: login.password,
        database: 'rotor_dynamic',
      });
      session.on('error', () => undefined);
      const n = uniqueName('d').replace(/-/g, '_');
      await session.query(`CREATE TABLE t_${n} (id int)`);
      await session.query(`CREATE VIEW v_${n} AS SELECT 1 AS one`);
      await session.query(`CREATE PROCEDURE p_${n}() SELECT 2 AS two`);
      await session.query(`CREATE TRIGGER tr_${n} BEFORE INSERT ON t_${n} FOR EACH ROW SET NEW.id = NEW.id + 1`);
      await session.query(`CREATE EVENT e_${n} ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1`);
      const definers = () =>
        withMysqlAdmin(async (admin) => {
          const [rows] = await admin.query<RowDataPacket[]>(
            `SELECT DEFINER AS d FROM information_schema.VIEWS WHERE TABLE_NAME = ?
             UNION ALL SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_NAME = ?
             UNION ALL SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = ?
             UNION ALL SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_NAME = ?`,
            [`v_${n}`, `p_${n}`, `tr_${n}`, `e_${n}`],
          );
          return rows.map((r) => String(r.d));
        });
      expect(await definers()).toEqual(Array(4).fill(`${login.username}@%`));
      // The backstop: an event that drops the login at its maximum lifetime, whatever becomes of rotor.
      const backstop = await withMysqlAdmin(async (admin) => {
        await admin.query("SET time_zone = '+00:00'");
        const [rows] = await admin.query<RowDataPacket[]>(
          "SELECT DATE_FORMAT(EXECUTE_AT, '%Y-%m-%dT%H:%i:%sZ') AS at FROM information_schema.EVENTS WHERE EVENT_NAME = ?",
          [`rotor_end_${login.username}`],
        );
        return rows.map((r) => Date.parse(String(r.at)));
      });
      expect(backstop).toHaveLength(1);
      expect(Math.abs(backstop[0]! - (issuedAt + MAX_TTL_MS))).toBeLessThan(5_000);

      await leased.close();
      await until(
        'the login dropped',
        async () => ((await liveLogins('mysql')).includes(login.username) ? undefined : true),
        20_000,
      );
      await expect(session.query('SELECT 1')).rejects.toThrow();
      const [admin] = await withMysqlAdmin(
        async (a) => (await a.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u'))[0],
      );
      expect(await definers()).toEqual(Array(4).fill(String(admin!.u)));
      // What it defined still works, now as the admin's.
      await withMysqlAdmin(async (a) => {
        expect((await a.query<RowDataPacket[]>(`SELECT one FROM rotor_dynamic.v_${n}`))[0]).toEqual([{ one: 1 }]);
        await a.query(`CALL rotor_dynamic.p_${n}()`);
        await a.query(`INSERT INTO rotor_dynamic.t_${n} VALUES (1)`);
        expect((await a.query<RowDataPacket[]>(`SELECT id FROM rotor_dynamic.t_${n}`))[0]).toEqual([{ id: 2 }]);
        const [events] = await a.query<RowDataPacket[]>(
          'SELECT 1 FROM information_schema.EVENTS WHERE EVENT_NAME = ?',
          [`rotor_end_${login.username}`],
        );
        expect(events).toEqual([]); // revocation took the backstop away with the login
      });
      await session.end().catch(() => undefined);
    } finally {
      await withMysqlAdmin((admin) => admin.query('SET GLOBAL event_scheduler = OFF'));
    }
  }, 60_000);

  it('MySQL: the backstop event drops a login whose revocation did not run, and the revocation that comes later finds it gone', async () => {
    await withMysqlAdmin((admin) => admin.query('SET GLOBAL event_scheduler = ON'));
    try {
      const response = await lease('POST', '/v1/leases', { secretId: templates.mysql });
      const credential = (await response.json()) as { leaseId: string; username: string; password: string };
      expect(response.status).toBe(201);
      values.add(credential.password);
      expect(await mysqlLogsIn(credential.username, credential.password)).toBe(true);
      // Its maximum lifetime comes while rotor cannot revoke: the server's own event ends the login.
      await withMysqlAdmin((admin) =>
        admin.query(
          `ALTER EVENT mysql.${admin.escapeId(`rotor_end_${credential.username}`)} ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 1 SECOND`,
        ),
      );
      await until(
        'the backstop dropped the login',
        async () => ((await liveLogins('mysql')).includes(credential.username) ? undefined : true),
        20_000,
      );
      expect(await mysqlLogsIn(credential.username, credential.password)).toBe(false);
      expect((await lease('DELETE', `/v1/leases/${credential.leaseId}`)).status).toBe(204);
    } finally {
      await withMysqlAdmin((admin) => admin.query('SET GLOBAL event_scheduler = OFF'));
    }
  }, 60_000);

  it('an application that restarts 100 times without releasing leaves no logins: leases it stopped renewing end', async () => {
    const opened: string[] = [];
    for (let i = 0; i < 100; i++) {
      const response = await fetch(`${url}/v1/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ secretId: templates.mysql }),
      });
      expect(response.status).toBe(201);
      const credential = (await response.json()) as { leaseId: string; password: string };
      values.add(credential.password);
      opened.push(credential.leaseId);
    }
    // The first ones may have ended already (never renewed: gone after two renewal periods, 4 s here).
    const live = (await liveLogins('mysql')).length;
    expect(live).toBeGreaterThan(0);
    expect(live).toBeLessThanOrEqual(100);
    // Operators see them: rotor status and the worker's metrics.
    const status = await runCli(taskQueue, ['status', '--json'], {}, outputs);
    const rows = JSON.parse(status.stdout) as { secretId: string; leases?: { live: number; logins: number } }[];
    const shown = rows.find((r) => r.secretId === templates.mysql)?.leases;
    expect(shown?.live).toBeGreaterThan(0);
    // One login per lease (a lease that has just started may not have published its login yet), none without one.
    expect(shown!.logins).toBeLessThanOrEqual(shown!.live);
    expect(shown!.logins).toBeGreaterThanOrEqual(shown!.live - 5);
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(Number(/^rotor_leases_live (\d+)/m.exec(scraped)?.[1])).toBeGreaterThan(0);
    expect(Number(/^rotor_lease_logins_live (\d+)/m.exec(scraped)?.[1])).toBeGreaterThan(0);
    // Never renewed: each ends once its instance is taken for gone (the 6 s TTL here) and its login is revoked.
    await until(
      'abandoned leases ended',
      async () => ((await liveLogins('mysql')).length === 0 ? true : undefined),
      30_000,
    );
    for (const leaseId of opened) {
      const renew = await fetch(`${url}/v1/leases/${leaseId}/renew`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(renew.status).toBe(410);
    }
  }, 90_000);

  it("refuses a template outside the token's scopes, a bad template, and a lease of another token", async () => {
    const post = (body: unknown, bearer = token) =>
      fetch(`${url}/v1/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post({ secretId: 'prod/db/orders' })).status).toBe(403);
    expect((await post({ secretId: templates.postgres }, 'not-the-token')).status).toBe(401);
    const bad = idOn('bao', uniqueName('it/dyn-bad'));
    await createSecret(bad, {
      kind: 'dynamic-database',
      engine: 'postgres',
      admin: 'x',
      creationStatements: ["CREATE ROLE '{{name}}'"],
      defaultTtl: '60',
      maxTtl: '1h',
      usernamePrefix: 'Bad!',
      passwordKey: 'short',
    });
    const refused = await post({ secretId: bad });
    expect(refused.status).toBe(400);
    const { error } = (await refused.json()) as { error: string };
    expect(error).toMatch(/defaultTtl.*unit/);
    expect(error).toMatch(/usernamePrefix/);
    expect(error).toMatch(/passwordKey/);
    expect(error).toMatch(/quoted already/);
    expect(error).not.toContain('short');
  });

  it('OpenBao unreachable for 30 s while leases renew and replace their logins: 0 failed queries', async () => {
    // A template only the endpoint has read when the outage begins (no lease step has yet): the steps go on with
    // what the endpoint read.
    const template = idOn('bao', uniqueName('it/dyn-pg-outage'));
    await createSecret(template, pgTemplate(`${prefix.postgres}o`));
    const leased = new LeasedCredentials({ url, token });
    const cache = new SecretCache({ store: leased, refreshIntervalMs: 500, jitter: 0 });
    const app = await serveUnderLoad(rotatingBackend('postgres', cache, template));
    try {
      // Cut once the application holds its lease, before the lease's first renewal (at 3 s).
      await until('the first lease served', async () => (app.served.size > 0 ? true : undefined), 10_000);
      await baoProxy.cut();
      await new Promise((r) => setTimeout(r, 30_000));
      await baoProxy.restore();
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await baoProxy.restore();
      await app.stop();
      await leased.close();
    }
    expect(app.failures).toEqual([]);
    // Renewed and replaced through the outage: at least three logins served.
    expect(app.served.size).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('the worker SIGKILLed while leases are issued, renewed and revoked, on PostgreSQL and MariaDB: every login ends, no revocation fails', async () => {
    const open = async (engine: Engine) => {
      const response = await lease('POST', '/v1/leases', { secretId: templates[engine] });
      const credential = (await response.json()) as { leaseId: string; password: string; error?: string };
      expect(response.status, credential.error).toBe(201);
      values.add(credential.password);
      return credential.leaseId;
    };
    const engines: Engine[] = ['postgres', 'mysql'];
    const renewing = await Promise.all(engines.map(open));
    const releasing = await Promise.all(engines.map(open));
    let renew = true;
    const renewals = (async () => {
      while (renew) {
        for (const id of renewing) await lease('POST', `/v1/leases/${id}/renew`).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // Revocations under way as the worker dies.
    for (const id of releasing) await lease('DELETE', `/v1/leases/${id}`);
    // One being issued on each engine as the worker dies: its answer never comes, and nobody renews it.
    const issuing = engines.map((engine) =>
      lease('POST', '/v1/leases', { secretId: templates[engine] }).catch(() => undefined),
    );
    await new Promise((r) => setTimeout(r, 100));
    await running.restart();
    await Promise.all(issuing);
    // The ones renewed go on; release them, then every lease ends and every login is gone.
    await new Promise((r) => setTimeout(r, 5000));
    renew = false;
    await renewals;
    for (const id of renewing) await lease('DELETE', `/v1/leases/${id}`);
    const leasesOf = (status: string) =>
      running.rotor.client.workflow.list({
        query: `WorkflowType = 'dynamicLease' AND RotorSecretId IN ('${templates.postgres}', '${templates.mysql}')${status}`,
      });
    await until(
      'every lease ended',
      async () => {
        for await (const execution of leasesOf(" AND ExecutionStatus = 'Running'")) if (execution) return undefined;
        for (const engine of engines) if ((await liveLogins(engine)).length > 0) return undefined;
        return true;
      },
      90_000,
    );
    // No revocation failed: retried ones found the login gone (idempotent), none errored.
    for await (const execution of leasesOf('')) {
      expect(execution.status.name, execution.workflowId).toBe('COMPLETED');
      const history = await running.rotor.client.workflow.getHandle(execution.workflowId).fetchHistory();
      const failed = (history.events ?? []).filter((e) => e.activityTaskFailedEventAttributes);
      expect(failed.map((e) => e.activityTaskFailedEventAttributes?.failure?.message)).toEqual([]);
    }
  }, 150_000);

  it('a template with standby keeps a lease ready: handed over at once, renewed by its new holder, revoked on release', async () => {
    const standbyTemplate = idOn('bao', uniqueName('it/dyn-standby'));
    const prefixNow = `sb${randomBytes(3).toString('hex')}`;
    const key = randomBytes(32).toString('base64');
    values.add(key);
    const pgAdmin = JSON.parse((await store.getByStage(templates.postgres, 'AWSCURRENT'))!.value).admin as string;
    await createSecret(standbyTemplate, {
      kind: 'dynamic-database',
      engine: 'postgres',
      admin: pgAdmin,
      creationStatements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}}'],
      defaultTtl: TTL,
      maxTtl: `${MAX_TTL_MS / 1000}s`,
      usernamePrefix: prefixNow,
      passwordKey: key,
      standby: 1,
    });
    const roles = async () =>
      withAdmin(async (a) =>
        (
          await a.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [`v_${prefixNow}_%`])
        ).rows.map((r) => r.rolname),
      );
    const first = (await (await lease('POST', '/v1/leases', { secretId: standbyTemplate })).json()) as {
      leaseId: string;
      username: string;
    };
    // One ready beside the one handed out.
    await until('a standby lease', async () => ((await roles()).length === 2 ? true : undefined), 20_000);
    const ready = (await roles()).find((r) => r !== first.username)!;
    const handed = (await (await lease('POST', '/v1/leases', { secretId: standbyTemplate })).json()) as {
      leaseId: string;
      username: string;
      password: string;
    };
    values.add(handed.password);
    expect(handed.username).toBe(ready);
    const session = new PgClient({
      host: new URL(stackEnv('ROTOR_PG_ADMIN_URL')).hostname,
      port: Number(new URL(stackEnv('ROTOR_PG_ADMIN_URL')).port),
      user: handed.username,
      password: handed.password,
      database: 'postgres',
    });
    await session.connect();
    await session.end();
    expect((await lease('POST', `/v1/leases/${handed.leaseId}/renew`)).status).toBe(200);
    await lease('DELETE', `/v1/leases/${handed.leaseId}`);
    await lease('DELETE', `/v1/leases/${first.leaseId}`);
    await until(
      'the handed-over login revoked',
      async () => ((await roles()).includes(handed.username) ? undefined : true),
      20_000,
    );
  }, 60_000);

  it('audits each lease: its logins issued and revoked, and how it ended', async () => {
    const history = await runCli(taskQueue, ['history', templates.postgres, '--json', '--limit', '200'], {}, outputs);
    expect(history.code).toBe(0);
    const events = JSON.parse(history.stdout) as { kind: string; outcome?: string }[];
    const kinds = new Set(events.map((e) => e.kind));
    expect(kinds).toEqual(new Set(['lease-issued', 'lease-revoked', 'lease-ended']));
    expect(events.filter((e) => e.kind === 'lease-ended').map((e) => e.outcome)).toContain('released');
  });

  it('no password, key or template value in any history, worker log, audit row or CLI output', async () => {
    await expectNoPasswords(running.rotor.client, taskQueue, values, templates.postgres, outputs);
    // Leases that ended every way (released, abandoned, through a worker's SIGKILL), for the replay tests.
    // Suffixed with the last patch they carry (leaseRenewLead): the names before it hold the histories recorded earlier.
    await recordHistories(
      running.rotor.client,
      taskQueue,
      ['bao:secret/it/dyn-pg', 'bao:secret/it/dyn-mysql'],
      '-renew-lead',
    );
  });
});
