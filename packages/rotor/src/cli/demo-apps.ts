import { Client as PgClient, Pool } from 'pg';
import { createRotatingPgPool, SecretCache } from 'rotor-consumers';
import type { PostgresSecret } from '../rotators/postgres/single-user';
import type { SecretStore } from 'rotor-consumers/stores';
import { driveLoad, type Load } from './load';

/** Connections that close quickly, so new logins happen all the time, as in a busy application. */
const CHURN = { max: 3, idleTimeoutMillis: 50 };

/**
 * The demo's two applications, each serving a pooled query and a request with a login of its own in turn: one on
 * rotor-consumers, one that read its password at start (as most do today).
 */
export function demoApplications(
  store: SecretStore,
  secretId: string,
  login: PostgresSecret,
): { rotating: Load; naive: Load; stop(): Promise<void> } {
  const cache = new SecretCache({ store, refreshIntervalMs: 60_000 });
  const pool = createRotatingPgPool({ cache, secretId, pool: CHURN });
  pool.on('error', () => undefined);
  const rotating = driveLoad(async (n) => {
    if (n % 2 === 0) await pool.query('SELECT 1');
    else {
      const client = await pool.connect();
      try {
        await client.query('SELECT 1');
      } finally {
        client.release(true);
      }
    }
    return pool.generation?.versionId ?? 'none';
  }, 2);

  const config = {
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    database: login.dbname,
  };
  const fixed = new Pool({ ...CHURN, ...config });
  fixed.on('error', () => undefined);
  const naive = driveLoad(async (n) => {
    if (n % 2 === 0) await fixed.query('SELECT 1');
    else {
      const client = new PgClient(config);
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    return 'static';
  }, 2);

  return {
    rotating,
    naive,
    async stop() {
      await Promise.all([rotating.stop(), naive.stop()]);
      await Promise.all([pool.end(), fixed.end().catch(() => undefined)]);
    },
  };
}

/** "N requests served, F failed", with the count per version, or per error, for people. */
export function describeLoad(load: Load): string {
  const served = load.total() - load.failures.length;
  const versions = [...load.served.entries()]
    .filter(([v]) => v !== 'static')
    .map(([v, count]) => `version ${v}: ${count}`);
  const errors = new Map<string, number>();
  for (const code of load.failures) errors.set(code, (errors.get(code) ?? 0) + 1);
  const failed = [...errors.entries()].map(([code, count]) => `${code}: ${count}`);
  return `${served} requests served, ${load.failures.length} failed${versions.length ? ` (${versions.join(', ')})` : ''}${failed.length ? ` (${failed.join(', ')})` : ''}`;
}
