import { EventEmitter } from 'node:events';
import { Pool, type PoolClient, type PoolConfig, type QueryConfig, type QueryResult, type QueryResultRow } from 'pg';
import type { SecretCache, SecretSnapshot } from './secret-cache';

/** PostgreSQL refusing a login: a wrong password (28P01), or a role that may not log in (28000). */
const AUTH_CODES = new Set(['28P01', '28000']);

export function isPgAuthError(error: unknown): boolean {
  return AUTH_CODES.has(String((error as { code?: unknown })?.code ?? ''));
}

export interface RotatingPgPoolOptions {
  cache: SecretCache;
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

/** The pool of one credential generation: one version of the secret, one login. */
interface Generation {
  versionId: string;
  username: string;
  pool: Pool;
  /** Taken from AWSPENDING while AWSCURRENT still named `replaces` (between a rotation's set and finish). */
  replaces?: string;
}

/**
 * A drop-in `pg.Pool` that follows rotations: new connections always use the current credential. Each credential
 * generation (version of the secret) has a pool of its own, so no pool ever mixes logins; a new generation is
 * checked with one connection before the switch, then the old pool closes its idle connections at once and its busy
 * ones when they are released. A refused login (28P01/28000) triggers one single-flight refetch, then a try with
 * AWSPENDING (the window between a rotation's `set` and `finish`), then the query is retried once; failed logins in a
 * row are capped with a backoff.
 *
 * @example
 *   import { SecretCache, AwsSecretsManagerStore, createRotatingPgPool } from 'rotor/consumers';
 *   const cache = new SecretCache({ store: new AwsSecretsManagerStore() });
 *   const pool = createRotatingPgPool({ cache, secretId: 'prod/db/app', pool: { max: 10 } });
 *   const { rows } = await pool.query('SELECT now()');
 */
export class RotatingPgPool extends EventEmitter {
  readonly #options: RotatingPgPoolOptions;
  #generation?: Generation;
  #switching?: Promise<Generation>;
  #recovering?: Promise<Generation>;
  #retiring = new Set<Pool>();
  #failedLogins = 0;
  #pausedUntil = 0;
  #lastAuthError?: unknown;
  #ended = false;

  constructor(options: RotatingPgPoolOptions) {
    super();
    this.#options = options;
  }

  /** The version id and login of the generation new connections use. */
  get generation(): { versionId: string; username: string } | undefined {
    return this.#generation && { versionId: this.#generation.versionId, username: this.#generation.username };
  }

  get totalCount(): number {
    return this.#generation?.pool.totalCount ?? 0;
  }
  get idleCount(): number {
    return this.#generation?.pool.idleCount ?? 0;
  }
  get waitingCount(): number {
    return this.#generation?.pool.waitingCount ?? 0;
  }

  query<R extends QueryResultRow = QueryResultRow>(text: string | QueryConfig, values?: unknown[]): Promise<QueryResult<R>> {
    return this.#withLogin((pool) => pool.query<R>(text as string, values));
  }

  /** A client of the current generation; `release()` it as with pg.Pool. */
  connect(): Promise<PoolClient> {
    return this.#withLogin((pool) => pool.connect());
  }

  /** Ends every generation's pool. */
  async end(): Promise<void> {
    this.#ended = true;
    const pools = [...this.#retiring, ...(this.#generation ? [this.#generation.pool] : [])];
    this.#generation = undefined;
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }

  async #withLogin<T>(work: (pool: Pool) => Promise<T>): Promise<T> {
    if (this.#ended) throw new Error('the rotating pool has ended');
    const generation = await this.#current();
    try {
      return await work(generation.pool);
    } catch (error) {
      if (!isPgAuthError(error)) throw error;
      return work((await this.#recover(generation, error)).pool);
    }
  }

  /** The generation to use now: the one of AWSCURRENT (still the pending one while its rotation finishes). */
  async #current(): Promise<Generation> {
    const snapshot = await this.#options.cache.get(this.#options.secretId);
    const generation = this.#generation;
    if (generation && (generation.versionId === snapshot.versionId || generation.replaces === snapshot.versionId)) return generation;
    this.#switching ??= this.#switchTo([snapshot], snapshot.versionId, generation).finally(() => (this.#switching = undefined));
    return this.#switching;
  }

  /** After a refused login on `failed`: refetch (single-flight), then AWSPENDING, then pause when logins keep failing. */
  #recover(failed: Generation, error: unknown): Promise<Generation> {
    if (this.#generation !== failed) return this.#current();
    this.#lastAuthError = error;
    this.#recovering ??= (async () => {
      const cache = this.#options.cache;
      const current = await cache.refreshNow(this.#options.secretId);
      const pending = await cache.pending(this.#options.secretId);
      const candidates = [current, ...(pending ? [pending] : [])].filter((c) => c.versionId !== failed.versionId);
      return this.#switchTo(candidates, current.versionId, failed, true);
    })().finally(() => (this.#recovering = undefined));
    return this.#recovering;
  }

  /**
   * Checks each candidate with one connection and switches to the first that logs in (a pending candidate stands
   * in for `currentVersionId` until its rotation finishes); the old generation's pool
   * ends (idle connections now, busy ones on release). Keeps `previous` when none does, except after a refused
   * login (`mustSwitch`), where the refusal is thrown.
   */
  async #switchTo(candidates: SecretSnapshot[], currentVersionId: string, previous: Generation | undefined, mustSwitch = false): Promise<Generation> {
    if (Date.now() < this.#pausedUntil) throw this.#lastAuthError ?? new Error('logins are paused after repeated failures');
    let refused: unknown;
    for (const candidate of candidates) {
      const next = this.#generationFor(candidate, currentVersionId);
      try {
        const client = await next.pool.connect();
        client.release();
      } catch (error) {
        await next.pool.end().catch(() => undefined);
        if (!isPgAuthError(error)) throw error;
        refused = error;
        continue;
      }
      this.#failedLogins = 0;
      this.#install(next, previous);
      return next;
    }
    if (previous && !mustSwitch) return previous;
    if (refused !== undefined || mustSwitch) {
      this.#failedLogins++;
      const max = this.#options.maxFailedLogins ?? 3;
      if (this.#failedLogins >= max) {
        const pauseMs = Math.min(30_000, (this.#options.backoffMs ?? 1000) * 2 ** (this.#failedLogins - max));
        this.#pausedUntil = Date.now() + pauseMs;
      }
      throw refused ?? this.#lastAuthError;
    }
    throw new Error(`secret ${this.#options.secretId}: no credential to connect with`);
  }

  #generationFor(snapshot: SecretSnapshot, currentVersionId: string): Generation {
    const login = JSON.parse(snapshot.value) as { host: string; port?: number | string; username: string; password: string; dbname?: string };
    const pool = new Pool({
      ...this.#options.pool,
      host: login.host,
      port: login.port === undefined ? 5432 : Number(login.port),
      user: login.username,
      password: login.password,
      database: login.dbname ?? 'postgres',
    });
    pool.on('error', (error, client) => this.emit('error', error, client));
    pool.on('connect', (client) => this.emit('connect', client));
    return { versionId: snapshot.versionId, username: login.username, pool, ...(snapshot.stage === 'AWSPENDING' ? { replaces: currentVersionId } : {}) };
  }

  #install(next: Generation, previous: Generation | undefined): void {
    this.#generation = next;
    this.emit('generation', { versionId: next.versionId, username: next.username });
    if (previous && previous.pool !== next.pool) {
      this.#retiring.add(previous.pool);
      void previous.pool.end().catch(() => undefined).finally(() => this.#retiring.delete(previous.pool));
    }
  }
}

/** A pg.Pool-like pool that follows the rotations of `secretId` (see RotatingPgPool). */
export function createRotatingPgPool(options: RotatingPgPoolOptions): RotatingPgPool {
  return new RotatingPgPool(options);
}
