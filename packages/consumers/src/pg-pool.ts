import { EventEmitter } from 'node:events';
import type * as Pg from 'pg';
import type { PoolClient, PoolConfig, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { loadPg } from './lazy';
import {
  checkGenerationOptions,
  Generations,
  jitteredLifetimeMs,
  type GenerationOptions,
  type LoginOver,
  type PoolDriver,
} from './generations';

import { isPgAuthError } from './logins';

export { isPgAuthError };

export interface RotatingPgPoolOptions extends GenerationOptions {
  /** The secret in AWS's JSON shape: host, port, username, password, dbname. */
  secretId: string;
  /** node-postgres pool settings (`max`, `idleTimeoutMillis`, `maxLifetimeSeconds`, `ssl`...); the login comes from the secret. */
  pool?: Omit<PoolConfig, 'user' | 'password' | 'host' | 'port' | 'database' | 'connectionString'>;
  /**
   * Failed logins in a row after which the pool stops trying for a while (default 3): a stale secret must never
   * lock an account. The pause doubles from `backoffMs` (default 1 s) up to 30 s.
   */
  maxFailedLogins?: number;
  backoffMs?: number;
}

/**
 * A turn to log in, waited for at most `limitMs` (pg's `connectionTimeoutMillis`, which counts from the pool's
 * request): a connection waiting its turn behind logins to a database that never answers fails in time, as pg's own
 * would. A turn granted after that is given back at once.
 */
function turnWithin(loginTurn: () => Promise<LoginOver>, limitMs: number | undefined): Promise<LoginOver> {
  const turn = loginTurn();
  if (!limitMs) return turn;
  let timer: NodeJS.Timeout | undefined;
  let late = false;
  void turn.then(
    (over) => {
      clearTimeout(timer);
      if (late) over();
    },
    () => clearTimeout(timer),
  );
  return Promise.race([
    turn,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        reject(new Error('timeout exceeded when trying to connect (waiting for a turn to log in)'));
      }, limitMs);
    }),
  ]);
}

function pgDriver(emitter: EventEmitter, options: RotatingPgPoolOptions): PoolDriver<Pg.Pool> {
  const { Pool, Client } = loadPg();
  const config = options.pool;
  return {
    open(login, onLogin, loginTurn) {
      /** pg's client, logging in only on its turn (the pool makes one per new connection and calls connect). */
      class TurnTakingClient extends Client {
        override connect(): Promise<Pg.Client>;
        override connect(callback: (error: Error | null, client?: Pg.Client) => void): void;
        override connect(callback?: (error: Error | null, client?: Pg.Client) => void): Promise<Pg.Client> | void {
          const connecting = turnWithin(loginTurn, config?.connectionTimeoutMillis).then((over) =>
            super.connect().then(
              (client) => (over(), client),
              (error: unknown) => {
                over(error);
                throw error;
              },
            ),
          );
          if (!callback) return connecting;
          connecting.then((client) => callback(null, client), callback);
        }
      }
      // pg's own lifetime (whole seconds) closes idle connections and busy ones on release; the jitter is drawn per
      // generation, so the instances of a fleet do not reconnect in step.
      const lifetimeMs = config?.maxLifetimeSeconds === undefined ? jitteredLifetimeMs(options) : undefined;
      const pool = new Pool({
        ...config,
        ...(lifetimeMs !== undefined ? { maxLifetimeSeconds: Math.max(1, Math.round(lifetimeMs / 1000)) } : {}),
        host: login.host,
        port: login.port === undefined ? 5432 : Number(login.port),
        user: login.username,
        password: login.password,
        database: login.dbname ?? 'postgres',
        Client: TurnTakingClient as unknown as typeof Client,
      });
      pool.on('error', (error, client) => emitter.emit('error', error, client));
      pool.on('connect', (client) => {
        onLogin();
        emitter.emit('connect', client);
      });
      pool.on('acquire', (client) => emitter.emit('acquire', client));
      pool.on('release', (error, client) => emitter.emit('release', error, client));
      pool.on('remove', (client) => emitter.emit('remove', client));
      return pool;
    },
    async probe(pool) {
      (await pool.connect()).release();
    },
    end: (pool) => pool.end(),
    authErrorClass: (error) => (isPgAuthError(error) ? String((error as { code: string }).code) : undefined),
    endWaitsForBusy: true,
  };
}

/**
 * A drop-in `pg.Pool` that follows rotations: new connections always use the current credential. Each credential
 * generation (version of the secret) has a pool of its own, so no pool ever mixes logins; a new generation is
 * checked with one connection before the switch, then the old pool closes its idle connections at once and its busy
 * ones when they are released. A refused login (28P01/28000) triggers one single-flight refetch, then a try with
 * AWSPENDING (the window between a rotation's `set` and `finish`), then the query is retried once; failed logins in a
 * row are capped with a backoff. `maxLifetimeMs` (with `lifetimeJitter`) sets pg's `maxLifetimeSeconds`, drawn per
 * generation. Events: `connect`, `acquire`, `release`, `remove`, `error` as pg.Pool's, and
 * `generation` ({ versionId, username }) on each switch. `pg` is a peer dependency, loaded on the first pool.
 *
 * @example
 *   import { SecretCache, AwsSecretsManagerStore, createRotatingPgPool } from 'rotor-consumers';
 *   const cache = new SecretCache({ store: new AwsSecretsManagerStore() });
 *   const pool = createRotatingPgPool({ cache, secretId: 'prod/db/app', pool: { max: 10 } });
 *   const { rows } = await pool.query('SELECT now()');
 *   const client = await pool.connect();
 *   try { await client.query('BEGIN'); ... } finally { client.release(); }
 */
export class RotatingPgPool extends EventEmitter {
  readonly #generations: Generations<Pg.Pool>;

  constructor(options: RotatingPgPoolOptions) {
    super();
    checkGenerationOptions(options);
    this.#generations = new Generations(options, pgDriver(this, options), (g) =>
      this.emit('generation', { versionId: g.versionId, username: g.username }),
    );
  }

  /** The version id and login of the generation new connections use. */
  get generation(): { versionId: string; username: string } | undefined {
    const g = this.#generations.active;
    return g && { versionId: g.versionId, username: g.username };
  }

  get totalCount(): number {
    return this.#generations.active?.pool.totalCount ?? 0;
  }
  get idleCount(): number {
    return this.#generations.active?.pool.idleCount ?? 0;
  }
  get waitingCount(): number {
    return this.#generations.active?.pool.waitingCount ?? 0;
  }

  query<R extends QueryResultRow = QueryResultRow>(
    text: string | QueryConfig,
    values?: unknown[],
  ): Promise<QueryResult<R>> {
    return this.#generations.run((pool) => pool.query<R>(text as string, values));
  }

  /** A client of the current generation; `release()` it as with pg.Pool (`release(true)` destroys it). */
  connect(): Promise<PoolClient> {
    return this.#generations.run((pool) => pool.connect());
  }

  /** Ends every generation's pool. */
  end(): Promise<void> {
    return this.#generations.end();
  }
}

/** A pg.Pool-like pool that follows the rotations of `secretId` (see RotatingPgPool). */
export function createRotatingPgPool(options: RotatingPgPoolOptions): RotatingPgPool {
  return new RotatingPgPool(options);
}
