import { createConnection, createPool } from 'mysql2/promise';
import { Client, Pool } from 'pg';
import {
  createRotatingMysqlPool,
  createRotatingPgPool,
  type LoginReporter,
  type SecretCache,
  type SecretStore,
} from 'rotor-consumers';
import { uniqueName } from './env';
import { newPassword } from './hygiene';
import type { Backend } from './load-app';
import { createMysqlUser, mysqlSecret } from './mysql';
import { adminSecret, createRole, createSecret, pgSecret, store, tagSecret } from './stack';

export type Engine = 'postgres' | 'mysql';
export type Mode = 'single' | 'alternating';

/**
 * A login and its secret for one of the four strategies; alternating ones (their master is the stack's admin,
 * stored once per engine) retire the previous login by disabling it. Passwords join `seen`.
 */
export function strategySecrets(prefix: string, seen: Set<string>): (engine: Engine, mode: Mode) => Promise<string> {
  const masters = new Map<Engine, Promise<string>>();
  const master = (engine: Engine) => {
    if (!masters.has(engine)) {
      masters.set(
        engine,
        engine === 'postgres'
          ? adminSecret(`${prefix}-pg-master`, 'ROTOR_PG_ADMIN_URL', pgSecret, seen)
          : adminSecret(`${prefix}-mysql-master`, 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, seen),
      );
    }
    return masters.get(engine)!;
  };
  return async (engine, mode) => {
    const username = uniqueName(`rotor_load_${engine[0]}${mode[0]}`).replace(/-/g, '_').slice(0, 40);
    const password = newPassword(seen);
    const secretId = uniqueName(`${prefix.includes('/') ? prefix : `it/${prefix}`}-${engine}-${mode}`);
    const extra = mode === 'alternating' ? { masterarn: await master(engine) } : {};
    if (engine === 'postgres') {
      await createRole(username, password);
      await createSecret(secretId, pgSecret(username, password, extra));
    } else {
      await createMysqlUser(username, password);
      await createSecret(secretId, mysqlSecret(username, password, extra));
    }
    if (mode === 'alternating')
      await tagSecret(secretId, { 'rotor:retire': 'disable-login', 'rotor:live-sessions': 'proceed' });
    return secretId;
  };
}

/** The application done right, for either engine. */
export function rotatingBackend(engine: Engine, cache: SecretCache, secretId: string): Backend {
  return engine === 'postgres' ? rotatingPg(cache, secretId) : rotatingMysql(cache, secretId);
}

/** The control, for either engine. */
export function staticBackend(engine: Engine, secretId: string, from: SecretStore = store): Promise<Backend> {
  return engine === 'postgres' ? staticPg(secretId, from) : staticMysql(secretId, from);
}

/** Connections that close quickly, so new logins happen all the time, as in a busy application. */
const PG_CHURN = { max: 3, idleTimeoutMillis: 20, maxLifetimeSeconds: 1 };
const MYSQL_CHURN = { connectionLimit: 3, maxIdle: 1, idleTimeout: 20 };

interface Login {
  host: string;
  port: number;
  username: string;
  password: string;
  dbname?: string;
}

/** The application done right: rotor's rotating pool for PostgreSQL. */
export function rotatingPg(
  cache: SecretCache,
  secretId: string,
  options: { reporter?: LoginReporter; backoffMs?: number } = {},
): Backend {
  const pool = createRotatingPgPool({ cache, secretId, pool: PG_CHURN, ...options });
  pool.on('error', () => undefined);
  const version = () => pool.generation?.versionId ?? 'none';
  return {
    async pooled() {
      await pool.query('SELECT 1');
      return version();
    },
    async fresh() {
      const client = await pool.connect();
      try {
        await client.query('SELECT 1');
        return version();
      } finally {
        client.release(true);
      }
    },
    close: () => pool.end(),
  };
}

/** The application done right for MySQL/MariaDB. */
export function rotatingMysql(cache: SecretCache, secretId: string): Backend {
  const pool = createRotatingMysqlPool({ cache, secretId, pool: MYSQL_CHURN });
  const version = () => pool.generation?.versionId ?? 'none';
  return {
    async pooled() {
      await pool.query('SELECT 1');
      return version();
    },
    async fresh() {
      const connection = await pool.getConnection();
      try {
        await connection.query('SELECT 1');
        return version();
      } finally {
        connection.destroy();
      }
    },
    close: () => pool.end(),
  };
}

/** The control: an application that read its password at start, as most do today. */
export async function staticPg(secretId: string, from: SecretStore = store): Promise<Backend> {
  const login = JSON.parse((await from.getByStage(secretId, 'AWSCURRENT'))!.value) as Login;
  const config = {
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    database: login.dbname ?? 'postgres',
  };
  const pool = new Pool({ ...PG_CHURN, ...config });
  pool.on('error', () => undefined);
  return {
    async pooled() {
      await pool.query('SELECT 1');
      return 'static';
    },
    async fresh() {
      const client = new Client(config);
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('SELECT 1');
        return 'static';
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    close: () => pool.end(),
  };
}

export async function staticMysql(secretId: string, from: SecretStore = store): Promise<Backend> {
  const login = JSON.parse((await from.getByStage(secretId, 'AWSCURRENT'))!.value) as Login;
  const config = {
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    ...(login.dbname ? { database: login.dbname } : {}),
  };
  const pool = createPool({ ...MYSQL_CHURN, ...config });
  return {
    async pooled() {
      await pool.query('SELECT 1');
      return 'static';
    },
    async fresh() {
      const connection = await createConnection(config);
      try {
        await connection.query('SELECT 1');
        return 'static';
      } finally {
        await connection.end().catch(() => undefined);
      }
    },
    close: () => pool.end(),
  };
}

/** Refused logins: PostgreSQL 28P01/28000, MySQL 1045, a locked or blocked account (MySQL 3118, MariaDB 4150/4151). */
export const AUTH_FAILURES = new Set(['28P01', '28000', '1045', '3118', '4150', '4151']);
