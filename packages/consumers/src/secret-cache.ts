import { RotorError, ErrorType } from './errors';
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
}

/**
 * A version-aware cache of secrets for applications (beats AWS's caching clients on the points that matter for
 * rotation):
 * - a refresh is one cheap metadata call (describe); the value is read only when the AWSCURRENT version id changed;
 * - refresh intervals have jitter; one refresh per secret is in flight at a time (single-flight);
 * - when the store is unreachable the last good value is served for `maxStaleMs`, then reads fail loudly;
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

  constructor(options: SecretCacheOptions) {
    this.#store = options.store;
    this.#intervalMs = options.refreshIntervalMs ?? 60_000;
    this.#jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5);
    this.#maxStaleMs = options.maxStaleMs ?? 300_000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
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

  /** The AWSCURRENT value parsed as JSON (AWS's database secrets, say), with its version id. */
  async getJson<T = Record<string, unknown>>(secretId: string): Promise<{ versionId: string; value: T }> {
    const snapshot = await this.get(secretId);
    return { versionId: snapshot.versionId, value: JSON.parse(snapshot.value) as T };
  }

  /** Forgets a secret (or every secret): the next read goes to the store. */
  invalidate(secretId?: string): void {
    if (secretId === undefined) this.#entries.clear();
    else this.#entries.delete(secretId);
  }

  #entry(secretId: string): Entry {
    let entry = this.#entries.get(secretId);
    if (!entry) {
      entry = { dueAt: 0, lastSuccessAt: 0 };
      this.#entries.set(secretId, entry);
    }
    return entry;
  }

  #nextDue(): number {
    const spread = this.#intervalMs * this.#jitter * (2 * this.#random() - 1);
    return this.#now() + Math.max(0, this.#intervalMs + spread);
  }

  #refresh(secretId: string, entry: Entry): Promise<SecretSnapshot> {
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
      return snapshot;
    } catch (error) {
      const now = this.#now();
      // A secret that does not exist, or is not what it should be, is not an outage: say so at once.
      const outage = !(error instanceof RotorError) || error.type === ErrorType.Unavailable;
      if (!outage || !entry.current) throw error;
      if (now - entry.lastSuccessAt > this.#maxStaleMs)
        throw new SecretCacheStaleError(secretId, now - entry.lastSuccessAt, error);
      // Serve the last good value; try again soon rather than at the next full interval.
      entry.dueAt = now + Math.min(this.#intervalMs, 5_000);
      return entry.current;
    }
  }
}
