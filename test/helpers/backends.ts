import { createConnection, createPool } from 'mysql2/promise';
import { Client, Pool } from 'pg';
import { createRotatingMysqlPool, createRotatingPgPool, type LoginReporter, type SecretCache } from '../../src/consumers';
import type { Backend } from './load-app';
import { store } from './stack';

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
export function rotatingPg(cache: SecretCache, secretId: string, options: { reporter?: LoginReporter; backoffMs?: number } = {}): Backend {
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
export async function staticPg(secretId: string): Promise<Backend> {
  const login = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as Login;
  const config = { host: login.host, port: login.port, user: login.username, password: login.password, database: login.dbname ?? 'postgres' };
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

export async function staticMysql(secretId: string): Promise<Backend> {
  const login = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as Login;
  const config = { host: login.host, port: login.port, user: login.username, password: login.password, ...(login.dbname ? { database: login.dbname } : {}) };
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

/** Refused logins: PostgreSQL 28P01/28000, MySQL 1045, a locked account (MySQL 3118, MariaDB 4151). */
export const AUTH_FAILURES = new Set(['28P01', '28000', '1045', '3118', '4151']);
