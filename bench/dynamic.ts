/**
 * Short-lived credentials beside OpenBao's database secrets engine, on the same PostgreSQL with the same lifetimes
 * (ROTOR_BENCH_DYNAMIC_TTL, default 10 s; maximum twice that):
 * - issue: the time to get a credential, five a second (rotor: POST /v1/leases at the worker, from a template keeping
 *   two leases ready and from one keeping none; OpenBao: GET <mount>/creds/<role>);
 * - revocation: a session open with the credential when it is revoked (rotor: DELETE the lease; OpenBao: revoke the
 *   lease), and whether the login is left;
 * - restarts: an application that restarts 10 times without releasing: how long its 10 logins stay live;
 * - load: failed queries of an application under load through 5 maximum lifetimes. rotor's: rotor-consumers' pool
 *   over LeasedCredentials. OpenBao's peer: renews its lease at half its TTL (as an agent does), and when a query
 *   fails fetches a new credential and a new pool (as a careful application does).
 */
import { randomBytes } from 'node:crypto';
import { Client as PgClient, Pool } from 'pg';
import { LeasedCredentials, SecretCache } from 'rotor-consumers';
import { rotatingBackend } from '../test/helpers/backends';
import { stackEnv, uniqueName } from '../test/helpers/env';
import { serveUnderLoad, type Backend } from '../test/helpers/load-app';
import { BAO_MOUNT, baoAdmin, ensureMounted } from '../test/helpers/openbao';
import { freePort, workerWithConfig } from '../test/helpers/ops';
import { adminSecret, createSecret, idOn, pgSecret, withAdmin } from '../test/helpers/stack';

interface Login {
  username: string;
  password: string;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const p95 = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * 0.95))] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchDynamic(ttlSeconds: number) {
  const maxTtlSeconds = ttlSeconds * 2;
  const admin = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  const seen = new Set<string>();
  const rotorPrefix = `b${randomBytes(3).toString('hex')}`;
  const baoRole = `bench${randomBytes(3).toString('hex')}`;

  // rotor: a template on OpenBao KV, a worker serving leases.
  const adminId = await adminSecret(`bao:${BAO_MOUNT}/bench/dyn-admin`, 'ROTOR_PG_ADMIN_URL', pgSecret, seen);
  const template = idOn('bao', uniqueName('bench/dyn-template'));
  // The same template keeping no lease ready: every request waits for its login and its lease workflow.
  const cold = idOn('bao', uniqueName('bench/dyn-cold'));
  const templateValue = (standby: number) => ({
    kind: 'dynamic-database',
    engine: 'postgres',
    admin: adminId,
    creationStatements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}'],
    defaultTtl: `${ttlSeconds}s`,
    maxTtl: `${maxTtlSeconds}s`,
    usernamePrefix: standby === 0 ? `${rotorPrefix}c` : rotorPrefix,
    passwordKey: randomBytes(32).toString('base64'),
    reassignTo: decodeURIComponent(admin.username),
    // Leases kept ready per worker: a request is answered without waiting for a login.
    standby,
  });
  await createSecret(template, templateValue(2));
  await createSecret(cold, templateValue(0));
  const token = randomBytes(24).toString('base64url');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const worker = await workerWithConfig(
    uniqueName('bench-dynamic'),
    `stores:
  openbao:
    - name: bao
      address: ${stackEnv('BAO_ADDR')}
      auth: { method: token, tokenFromEnv: BAO_TOKEN }
reports:
  port: ${port}
  tokens:
    - { name: bench, tokenFromEnv: BENCH_LEASE_TOKEN, secrets: ['bao:${BAO_MOUNT}/bench/*'], requestsPerSecond: 1000 }
secrets:
  - id: ${template}
    schedule: { every: 30d }
`,
    { BENCH_LEASE_TOKEN: token, ROTOR_LOG_LEVEL: 'info' },
  );
  const rotorApi = (method: string, path: string, body?: object) =>
    fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  // OpenBao: its database engine on the same PostgreSQL, the same lifetimes.
  const mount = 'bench-database';
  await ensureMounted('mounts', mount, 'database');
  await baoAdmin('POST', `${mount}/config/pg`, {
    plugin_name: 'postgresql-database-plugin',
    connection_url: `postgresql://{{username}}:{{password}}@${admin.hostname}:${admin.port}/postgres?sslmode=disable`,
    username: decodeURIComponent(admin.username),
    password: decodeURIComponent(admin.password),
    allowed_roles: '*',
  });
  await baoAdmin('POST', `${mount}/roles/${baoRole}`, {
    db_name: 'pg',
    creation_statements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`],
    default_ttl: `${ttlSeconds}s`,
    max_ttl: `${maxTtlSeconds}s`,
  });
  const baoCreds = async () => {
    const answer = await baoAdmin('GET', `${mount}/creds/${baoRole}`);
    return { leaseId: answer.leaseId!, ...(answer.data as Login) };
  };

  const liveRoles = async (pattern: string) =>
    withAdmin(async (a) =>
      Number((await a.query('SELECT count(*) AS n FROM pg_roles WHERE rolname LIKE $1', [pattern])).rows[0].n),
    );
  const rotorRoles = () => liveRoles(`v_${rotorPrefix}_%`);
  const baoRoles = () => liveRoles(`v-token-${baoRole.slice(0, 8)}%`);

  try {
    // Issue: 20 of each, 200 ms apart (five a second), each released right after, after one of each untimed (rotor's
    // first request for a template fills its standby; OpenBao's first connects its plugin).
    for (const secretId of [template, cold]) {
      const warm = (await (await rotorApi('POST', '/v1/leases', { secretId })).json()) as { leaseId: string };
      await rotorApi('DELETE', `/v1/leases/${warm.leaseId}`);
    }
    await baoAdmin('PUT', 'sys/leases/revoke', { lease_id: (await baoCreds()).leaseId });
    const issue = { rotor: [] as number[], rotorCold: [] as number[], openbao: [] as number[] };
    for (let i = 0; i < 20; i++) {
      await sleep(200);
      let t = performance.now();
      const opened = (await (await rotorApi('POST', '/v1/leases', { secretId: template })).json()) as {
        leaseId: string;
      };
      issue.rotor.push(performance.now() - t);
      await rotorApi('DELETE', `/v1/leases/${opened.leaseId}`);
      await sleep(100);
      t = performance.now();
      const coldOpened = (await (await rotorApi('POST', '/v1/leases', { secretId: cold })).json()) as {
        leaseId: string;
      };
      issue.rotorCold.push(performance.now() - t);
      await rotorApi('DELETE', `/v1/leases/${coldOpened.leaseId}`);
      t = performance.now();
      const creds = await baoCreds();
      issue.openbao.push(performance.now() - t);
      await baoAdmin('PUT', 'sys/leases/revoke', { lease_id: creds.leaseId });
    }

    // Revocation with a session open.
    const sessionAfterRevoke = async (login: Login, revoke: () => Promise<void>, gone: () => Promise<boolean>) => {
      const session = new PgClient({
        host: admin.hostname,
        port: Number(admin.port),
        user: login.username,
        password: login.password,
        database: 'postgres',
      });
      session.on('error', () => undefined);
      await session.connect();
      await revoke();
      const deadline = Date.now() + 15_000;
      while (!(await gone()) && Date.now() < deadline) await sleep(200);
      const sessionAlive = await session.query('SELECT 1').then(
        () => true,
        () => false,
      );
      await session.end().catch(() => undefined);
      const roleLeft = !(await gone());
      return { sessionAlive, roleLeft };
    };
    const roleGone = (name: string) => async () =>
      withAdmin(async (a) => (await a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount === 0);
    const rotorLease = (await (await rotorApi('POST', '/v1/leases', { secretId: template })).json()) as Login & {
      leaseId: string;
    };
    seen.add(rotorLease.password);
    const revocation = {
      rotor: await sessionAfterRevoke(
        rotorLease,
        async () => void (await rotorApi('DELETE', `/v1/leases/${rotorLease.leaseId}`)),
        roleGone(rotorLease.username),
      ),
      openbao: await (async () => {
        const creds = await baoCreds();
        seen.add(creds.password);
        return sessionAfterRevoke(
          creds,
          async () => void (await baoAdmin('PUT', 'sys/leases/revoke', { lease_id: creds.leaseId })),
          roleGone(creds.username),
        );
      })(),
    };

    // Restarts: 10 credentials taken and never renewed nor released.
    const abandon = async (take: () => Promise<unknown>, count: () => Promise<number>) => {
      const before = await count();
      for (let i = 0; i < 10; i++) await take();
      const started = Date.now();
      const peak = (await count()) - before;
      while ((await count()) > before && Date.now() - started < maxTtlSeconds * 3000) await sleep(250);
      return { peak, liveForSeconds: Math.round((Date.now() - started) / 100) / 10 };
    };
    const restarts = {
      rotor: await abandon(() => rotorApi('POST', '/v1/leases', { secretId: template }), rotorRoles),
      openbao: await abandon(baoCreds, baoRoles),
    };

    // Load through 5 maximum lifetimes, both at once.
    const runMs = maxTtlSeconds * 5 * 1000;
    const rotorApp = async () => {
      const leased = new LeasedCredentials({ url, token });
      const app = await serveUnderLoad(
        rotatingBackend('postgres', new SecretCache({ store: leased, refreshIntervalMs: 1000 }), template),
      );
      await sleep(runMs);
      await app.stop();
      await leased.close();
      return { served: app.total(), failed: app.failures.length, logins: app.served.size };
    };
    const baoApp = async () => {
      const app = await serveUnderLoad(await baoPeer(baoCreds, ttlSeconds, admin), 3);
      await sleep(runMs);
      await app.stop();
      return { served: app.total(), failed: app.failures.length, logins: app.served.size };
    };
    const [rotorLoad, baoLoad] = await Promise.all([rotorApp(), baoApp()]);
    return {
      ttlSeconds,
      maxTtlSeconds,
      issueMs: {
        rotor: { median: Math.round(median(issue.rotor)), p95: Math.round(p95(issue.rotor)) },
        rotorNoStandby: { median: Math.round(median(issue.rotorCold)), p95: Math.round(p95(issue.rotorCold)) },
        openbao: { median: Math.round(median(issue.openbao)), p95: Math.round(p95(issue.openbao)) },
      },
      revocation,
      restarts,
      load: { rotor: rotorLoad, openbao: baoLoad },
    };
  } finally {
    await worker.stop();
    await baoAdmin('DELETE', `sys/mounts/${mount}`).catch(() => undefined);
  }
}

/**
 * The peer application on OpenBao's engine: a pool on the credential it fetched, its lease renewed at half the TTL;
 * a failed query makes it fetch a new credential and a new pool (single-flight) and fails that request.
 */
async function baoPeer(
  fetchCreds: () => Promise<Login & { leaseId: string }>,
  ttlSeconds: number,
  admin: URL,
): Promise<Backend> {
  let creds = await fetchCreds();
  let generation = 0;
  const poolFor = (login: Login) => {
    const pool = new Pool({
      host: admin.hostname,
      port: Number(admin.port),
      user: login.username,
      password: login.password,
      database: 'postgres',
      max: 3,
      idleTimeoutMillis: 20,
      maxLifetimeSeconds: 1,
    });
    pool.on('error', () => undefined);
    return pool;
  };
  let pool = poolFor(creds);
  let refreshing: Promise<void> | undefined;
  const refresh = () =>
    (refreshing ??= (async () => {
      creds = await fetchCreds();
      const old = pool;
      pool = poolFor(creds);
      generation++;
      void old.end().catch(() => undefined);
    })().finally(() => (refreshing = undefined)));
  const renewer = setInterval(
    () => {
      void baoAdmin('PUT', 'sys/leases/renew', { lease_id: creds.leaseId, increment: `${ttlSeconds}s` }).catch(
        () => undefined,
      );
    },
    (ttlSeconds * 1000) / 2,
  );
  const run = async () => {
    try {
      await pool.query('SELECT 1');
      return `g${generation}`;
    } catch (error) {
      await refresh().catch(() => undefined);
      throw error;
    }
  };
  return {
    pooled: run,
    fresh: run,
    async close() {
      clearInterval(renewer);
      await pool.end().catch(() => undefined);
    },
  };
}
