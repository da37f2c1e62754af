import { ErrorType, InvalidInputError, RotorError } from './errors';
import { parseJsonObject } from './secret-json';
import { Stage } from './stages';
import type { SecretStore } from './stores/secret-store';

/** What SecretCache needs of a store: describe (the cheap metadata call) and reads. Any SecretStore will do. */
export type SecretReader = Pick<SecretStore, 'describe' | 'getByVersion' | 'getByStage'>;

/**
 * One version of a secret, read at once: `value` and `versionId` always belong together, so a username and a
 * password never come from two versions.
 */
export interface SecretSnapshot {
  readonly secretId: string;
  readonly versionId: string;
  readonly stage: typeof Stage.current | typeof Stage.pending;
  readonly value: string;
  /** When the store last confirmed this is still the version with `stage` (ms since the epoch). */
  readonly checkedAt: number;
}

export interface SecretCacheOptions {
  store: SecretReader;
  /** How often the AWSCURRENT version id is checked (default 60 s). Only a changed id costs a read of the value. */
  refreshIntervalMs?: number;
  /** Spread of each interval, as a share of it (default 0.1: ±10 %), so a fleet does not check in step. */
  jitter?: number;
  /**
   * How long the last good value is served while the store cannot be reached (default 5 min). After that, reads
   * fail with `SecretCacheStaleError` instead of serving a value that may long be revoked.
   */
  maxStaleMs?: number;
  /**
   * The most secrets kept (default 1000); the least recently read is forgotten first. A forgotten secret is read
   * again from the store on its next use.
   */
  maxEntries?: number;
  /** Clock and randomness, for tests. */
  now?: () => number;
  random?: () => number;
}

/** The store has been unreachable for longer than `maxStaleMs`: the cache will not serve what it last saw. */
export class SecretCacheStaleError extends RotorError {
  constructor(secretId: string, sinceMs: number, cause: unknown) {
    super(
      ErrorType.Unavailable,
      `secret ${secretId}: the store has not answered for ${Math.round(sinceMs / 1000)}s; the cached version is too old to serve`,
      secretId,
      { cause },
    );
  }
}

interface Entry {
  current?: SecretSnapshot;
  /** When the next check is due. */
  dueAt: number;
  /** When the store last answered for this secret. */
  lastSuccessAt: number;
  inFlight?: Promise<SecretSnapshot>;
  /** A check queued behind the one in flight, for callers that need one begun after they asked. */
  next?: Promise<SecretSnapshot>;
  /** Store errors in a row; while `retryAt` is ahead, the store is not asked again (backoff). */
  failures: number;
  retryAt: number;
  lastError?: unknown;
}

/** The first wait after a store error, doubling with each error in a row up to a minute. */
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

/**
 * A version-aware cache of secrets for applications (beats AWS's caching clients on the points that matter for
 * rotation):
 * - a refresh is one cheap metadata call (describe); the value is read only when the AWSCURRENT version id changed;
 * - refresh intervals have jitter; one refresh per secret is in flight at a time (single-flight);
 * - when the store is unreachable the last good value is served for `maxStaleMs`, then reads fail loudly; after a
 *   store error the store is asked again only after a backoff (1 s doubling up to 1 min, jittered), whoever asks
 *   meanwhile, unless `refreshNow` asks for a fresh answer;
 * - at most `maxEntries` secrets are kept (least recently read forgotten first);
 * - `refreshNow()` checks at once (a login failure is the reason to call it), with no sleep;
 * - `pending()` reads AWSPENDING on demand: the credential that works between a rotation's `set` and `finish`.
 *
 * @example
 *   import { SecretCache, AwsSecretsManagerStore } from 'rotor-consumers';
 *   const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 30_000 });
 *   const { versionId, value } = await cache.get('prod/db/app');
 *   const { username, password } = JSON.parse(value);
 */
export class SecretCache {
  readonly #store: SecretReader;
  readonly #intervalMs: number;
  readonly #jitter: number;
  readonly #maxStaleMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;

  constructor(options: SecretCacheOptions) {
    checkCacheOptions(options);
    this.#store = options.store;
    this.#intervalMs = options.refreshIntervalMs ?? 60_000;
    this.#jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5);
    this.#maxStaleMs = options.maxStaleMs ?? 300_000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#maxEntries = options.maxEntries ?? 1000;
  }

  /** The AWSCURRENT version, from the cache while it is fresh, else checked against the store first. */
  async get(secretId: string): Promise<SecretSnapshot> {
    const entry = this.#entry(secretId);
    if (entry.current && this.#now() < entry.dueAt) return entry.current;
    return this.#refresh(secretId, entry);
  }

  /**
   * Checks the store now and returns the AWSCURRENT version. A check already in flight is joined; with `fresh`, the
   * answer comes from a check begun after this call (one in flight may have begun before what made the caller ask,
   * a refused login say): it waits for that one, then checks again, one check for all who waited on the same one.
   */
  refreshNow(secretId: string, options: { fresh?: boolean } = {}): Promise<SecretSnapshot> {
    const entry = this.#entry(secretId);
    // A caller that needs a fresh answer (a refused login) asks the store now, backoff or not.
    if (options.fresh) entry.retryAt = 0;
    if (!options.fresh || !entry.inFlight) return this.#refresh(secretId, entry);
    entry.next ??= entry.inFlight
      .catch(() => undefined)
      .then(() => {
        entry.next = undefined;
        return this.#refresh(secretId, entry);
      });
    return entry.next;
  }

  /**
   * The AWSPENDING version, read now, when there is one and it is not also AWSCURRENT: during a rotation, between
   * `set` and `finish`, it is the credential the target accepts.
   */
  async pending(secretId: string): Promise<SecretSnapshot | undefined> {
    const version = await this.#store.getByStage(secretId, Stage.pending);
    if (!version || version.stages.includes(Stage.current)) return undefined;
    return {
      secretId,
      versionId: version.versionId,
      stage: Stage.pending,
      value: version.value,
      checkedAt: this.#now(),
    };
  }

  /**
   * The AWSCURRENT value parsed as a JSON object (AWS's database secrets, say), with its version id. A value that is
   * not one is an InvalidSecretError naming the secret and version, never quoting the value.
   */
  async getJson<T = Record<string, unknown>>(secretId: string): Promise<{ versionId: string; value: T }> {
    const snapshot = await this.get(secretId);
    return { versionId: snapshot.versionId, value: parseJsonObject(secretId, snapshot.value, snapshot.versionId) as T };
  }

  /** Forgets a secret (or every secret): the next read goes to the store. */
  invalidate(secretId?: string): void {
    if (secretId === undefined) this.#entries.clear();
    else this.#entries.delete(secretId);
  }

  #entry(secretId: string): Entry {
    let entry = this.#entries.get(secretId);
    if (entry) {
      // Most recently read last: the map's order is the eviction order.
      this.#entries.delete(secretId);
    } else {
      entry = { dueAt: 0, lastSuccessAt: 0, failures: 0, retryAt: 0 };
      for (const [id, old] of this.#entries) {
        if (this.#entries.size < this.#maxEntries) break;
        if (!old.inFlight) this.#entries.delete(id);
      }
    }
    this.#entries.set(secretId, entry);
    return entry;
  }

  #nextDue(): number {
    const spread = this.#intervalMs * this.#jitter * (2 * this.#random() - 1);
    return this.#now() + Math.max(0, this.#intervalMs + spread);
  }

  #refresh(secretId: string, entry: Entry): Promise<SecretSnapshot> {
    if (!entry.inFlight && this.#now() < entry.retryAt) {
      // Backing off after a store error: during an outage the last good value while it may still be served; any other
      // error (the secret is gone, say) again.
      const now = this.#now();
      if (!isOutage(entry.lastError)) return Promise.reject(entry.lastError);
      if (entry.current && now - entry.lastSuccessAt <= this.#maxStaleMs) return Promise.resolve(entry.current);
      return Promise.reject(
        entry.current
          ? new SecretCacheStaleError(secretId, now - entry.lastSuccessAt, entry.lastError)
          : entry.lastError,
      );
    }
    if (!entry.inFlight) {
      entry.inFlight = this.#check(secretId, entry).finally(() => {
        entry.inFlight = undefined;
      });
    }
    return entry.inFlight;
  }

  async #check(secretId: string, entry: Entry): Promise<SecretSnapshot> {
    try {
      const description = await this.#store.describe(secretId);
      const versionId = description.versions.find((v) => v.stages.includes(Stage.current))?.versionId;
      if (!versionId)
        throw new RotorError(ErrorType.StoreConflict, `secret ${secretId} has no ${Stage.current} version`, secretId);
      const now = this.#now();
      let snapshot: SecretSnapshot;
      if (entry.current?.versionId === versionId) {
        snapshot = { ...entry.current, checkedAt: now };
      } else {
        const version = await this.#store.getByVersion(secretId, versionId);
        if (!version)
          throw new RotorError(ErrorType.StoreConflict, `secret ${secretId}: version ${versionId} is gone`, secretId);
        snapshot = { secretId, versionId, stage: Stage.current, value: version.value, checkedAt: now };
      }
      entry.current = snapshot;
      entry.lastSuccessAt = now;
      entry.dueAt = this.#nextDue();
      entry.failures = 0;
      entry.retryAt = 0;
      entry.lastError = undefined;
      return snapshot;
    } catch (error) {
      const now = this.#now();
      entry.failures++;
      entry.lastError = error;
      const backoff = Math.min(FIRST_BACKOFF_MS * 2 ** (entry.failures - 1), MAX_BACKOFF_MS);
      entry.retryAt = now + backoff * (0.8 + 0.4 * this.#random());
      // A secret that does not exist, or is not what it should be, is not an outage: say so at once.
      // A secret deleted from the store is not served from the cache any more.
      if (error instanceof RotorError && error.type === ErrorType.SecretNotFound) entry.current = undefined;
      if (!isOutage(error) || !entry.current) throw error;
      if (now - entry.lastSuccessAt > this.#maxStaleMs)
        throw new SecretCacheStaleError(secretId, now - entry.lastSuccessAt, error);
      // Serve the last good value; the store is asked again once the backoff has passed.
      entry.dueAt = entry.retryAt;
      return entry.current;
    }
  }
}

/** Checks a cache's options when it is made, naming each one that is wrong. */
function checkCacheOptions(options: SecretCacheOptions): void {
  const o = options as unknown as Record<string, unknown> | undefined;
  if (typeof o !== 'object' || o === null) throw new InvalidInputError('SecretCache: options must be an object');
  const problems: string[] = [];
  const store = o.store as Record<string, unknown> | undefined;
  if (typeof store !== 'object' || store === null)
    problems.push('store: is required (new AwsSecretsManagerStore(), or any SecretStore)');
  else
    for (const method of ['describe', 'getByVersion', 'getByStage'])
      if (typeof store[method] !== 'function') problems.push(`store: has no ${method}() (not a SecretStore)`);
  const positive = (name: string, min: number) => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= min))
      problems.push(`${name}: must be a number of at least ${min}`);
  };
  positive('refreshIntervalMs', 1);
  positive('maxStaleMs', 0);
  positive('maxEntries', 1);
  const jitter = o.jitter;
  if (jitter !== undefined && !(typeof jitter === 'number' && jitter >= 0 && jitter <= 0.5))
    problems.push('jitter: must be a share from 0 to 0.5');
  if (problems.length > 0) throw new InvalidInputError(`SecretCache: ${problems.join('; ')}`);
}

/** Whether a store error is an outage (the last good value may be served), not an answer (a secret gone, say). */
function isOutage(error: unknown): boolean {
  return !(error instanceof RotorError) || error.type === ErrorType.Unavailable;
}
