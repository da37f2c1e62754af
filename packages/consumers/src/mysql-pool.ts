import { EventEmitter } from 'node:events';
import type * as Mysql from 'mysql2/promise';
import type { FieldPacket, PoolConnection, PoolOptions, QueryOptions, QueryResult } from 'mysql2/promise';
import { loadMysql } from './lazy';
import {
  checkGenerationOptions,
  Generations,
  jitteredLifetimeMs,
  type GenerationOptions,
  type LoginOver,
  type PoolDriver,
} from './generations';

import { isMysqlAuthError } from './logins';

export { isMysqlAuthError };

export interface RotatingMysqlPoolOptions extends GenerationOptions {
  /** The secret in AWS's JSON shape: host, port, username, password, dbname. */
  secretId: string;
  /** mysql2 pool settings (`connectionLimit`, `idleTimeout`, `ssl`...); the login comes from the secret. */
  pool?: Omit<PoolOptions, 'user' | 'password' | 'host' | 'port' | 'database' | 'uri'>;
  /** As for createRotatingPgPool: failed logins in a row before a pause (default 3), doubling from `backoffMs` (1 s). */
  maxFailedLogins?: number;
  backoffMs?: number;
}

/** What rotor uses of mysql2's own (callback) pool, under its promise wrapper: its getConnection and what it holds. */
interface MysqlCorePool {
  getConnection(cb: (error: Error | null, connection?: unknown) => void): void;
  _freeConnections?: { length: number };
  _allConnections?: { length: number };
  config?: { connectionLimit?: number };
}

/**
 * Makes every new connection of mysql2's pool take a turn to log in (PoolDriver.open): mysql2 has no hook before a
 * login, so its pool's getConnection is wrapped on this instance. Every path that logs in goes through it: a request
 * (query, execute, getConnection) and mysql2's own retry of a queued request when a connection died. Whether a call
 * will log in is read from mysql2's own fields (no idle connection, below its limit) in the tick that acts on it;
 * a turn is held only while the connection is made, never while a request waits in mysql2's queue.
 */
function takeTurns(pool: Mysql.Pool, loginTurn: () => Promise<LoginOver>): void {
  const core = (pool as unknown as { pool?: MysqlCorePool }).pool;
  if (!core || typeof core.getConnection !== 'function') return;
  const original = core.getConnection.bind(core);
  const willLogIn = () => {
    const free = core._freeConnections?.length;
    const open = core._allConnections?.length;
    const limit = core.config?.connectionLimit;
    if (free === undefined || open === undefined) return true; // unknown: take a turn, to be safe
    return free === 0 && (!limit || open < limit);
  };
  core.getConnection = (cb) => {
    if (!willLogIn()) return original(cb);
    loginTurn().then(
      (over) => {
        if (!willLogIn()) {
          over(); // meanwhile a connection came free, or the pool filled: no login
          return original(cb);
        }
        original((error, connection) => {
          over(error ?? undefined);
          cb(error, connection);
        });
      },
      (held: Error) => cb(held),
    );
  };
}

function mysqlDriver(emitter: EventEmitter, options: RotatingMysqlPoolOptions): PoolDriver<Mysql.Pool> {
  const mysql = loadMysql();
  const config = options.pool;
  /** When each connection is due to close, drawn per connection; it closes at its first release after that. */
  const expiresAt = new WeakMap<object, number>();
  const core = (connection: object) => (connection as { connection?: object }).connection ?? connection;
  return {
    open(login, onLogin, loginTurn) {
      const pool = mysql.createPool({
        ...config,
        host: login.host,
        port: login.port === undefined ? 3306 : Number(login.port),
        user: login.username,
        password: login.password,
        ...(login.dbname ? { database: login.dbname } : {}),
      });
      pool.on('connection', (connection) => {
        const lifetimeMs = jitteredLifetimeMs(options);
        if (lifetimeMs !== undefined) expiresAt.set(core(connection), Date.now() + lifetimeMs);
        onLogin();
        emitter.emit('connection', connection);
      });
      pool.on('acquire', (connection) => emitter.emit('acquire', connection));
      pool.on('release', (connection) => {
        emitter.emit('release', connection);
        if (Date.now() >= (expiresAt.get(core(connection)) ?? Infinity)) connection.destroy();
      });
      pool.on('enqueue', () => emitter.emit('enqueue'));
      takeTurns(pool, loginTurn);
      return pool;
    },
    async probe(pool) {
      (await pool.getConnection()).release();
    },
    end: (pool) => pool.end(),
    authErrorClass: (error) => (isMysqlAuthError(error) ? String((error as { errno: number }).errno) : undefined),
    // mysql2's end() closes busy connections too: an old generation ends once nothing is checked out of it.
    endWaitsForBusy: false,
  };
}

/**
 * A drop-in `mysql2/promise` pool that follows rotations, as RotatingPgPool does for node-postgres: a pool per
 * credential generation, checked with one connection before the switch; the old generation ends once none of its
 * connections is checked out. A refused login (1045, or a locked account) triggers one single-flight refetch, then
 * AWSPENDING, then one retry; failed logins in a row are capped with a backoff. With `maxLifetimeMs`, a connection
 * older than its own jittered lifetime closes when it is released. Events: `connection`, `acquire`,
 * `release`, `enqueue` as mysql2's, and `generation` on each switch. `mysql2` is a peer dependency, loaded on the
 * first pool.
 *
 * @example
 *   import { SecretCache, AwsSecretsManagerStore, createRotatingMysqlPool } from 'rotor-consumers';
 *   const cache = new SecretCache({ store: new AwsSecretsManagerStore() });
 *   const pool = createRotatingMysqlPool({ cache, secretId: 'prod/mysql/app', pool: { connectionLimit: 10 } });
 *   const [rows] = await pool.query('SELECT NOW() AS now');
 *   const connection = await pool.getConnection();
 *   try { await connection.beginTransaction(); ... } finally { connection.release(); }
 */
export class RotatingMysqlPool extends EventEmitter {
  readonly #generations: Generations<Mysql.Pool>;

  constructor(options: RotatingMysqlPoolOptions) {
    super();
    checkGenerationOptions(options);
    this.#generations = new Generations(options, mysqlDriver(this, options), (g) =>
      this.emit('generation', { versionId: g.versionId, username: g.username }),
    );
  }

  /** The version id and login of the generation new connections use. */
  get generation(): { versionId: string; username: string } | undefined {
    const g = this.#generations.active;
    return g && { versionId: g.versionId, username: g.username };
  }

  query<T extends QueryResult = QueryResult>(
    sql: string | QueryOptions,
    values?: unknown,
  ): Promise<[T, FieldPacket[]]> {
    return this.#generations.run((pool) => pool.query<T>(sql as string, values as never));
  }

  execute<T extends QueryResult = QueryResult>(sql: string, values?: unknown): Promise<[T, FieldPacket[]]> {
    return this.#generations.run((pool) => pool.execute<T>(sql, values as never));
  }

  /** A connection of the current generation; `release()` it (or `destroy()` it) as with mysql2's pool. */
  getConnection(): Promise<PoolConnection> {
    return this.#generations.run(async (pool, generation) => {
      const connection = await pool.getConnection();
      const done = this.#generations.checkout(generation);
      const release = connection.release.bind(connection);
      const destroy = connection.destroy.bind(connection);
      connection.release = () => {
        release();
        done();
      };
      connection.destroy = () => {
        destroy();
        done();
      };
      return connection;
    });
  }

  /** Ends every generation's pool. */
  end(): Promise<void> {
    return this.#generations.end();
  }
}

/** A mysql2/promise pool that follows the rotations of `secretId` (see RotatingMysqlPool). */
export function createRotatingMysqlPool(options: RotatingMysqlPoolOptions): RotatingMysqlPool {
  return new RotatingMysqlPool(options);
}
