import { InvalidInputError, InvalidSecretError } from './errors';
import type { LoginReporter } from './reporter';
import { parseJsonObject } from './secret-json';
import { SecretCache, type SecretSnapshot } from './secret-cache';
import { AwsSecretsManagerStore } from './stores/aws-secrets-manager';

/**
 * The fields of a database secret in AWS's JSON shape that a pool logs in with (rotor's rotators parse the same
 * secret into their own `DatabaseLogin`, with the port checked and the JSON kept).
 */
export interface DatabaseSecretFields {
  host: string;
  port?: number | string;
  username: string;
  password: string;
  dbname?: string;
}

/**
 * What the generations need of a driver's pool: open one for a login, check it logs in, end it. `loginTurn` must be
 * awaited before each new connection logs in, and its answer called once the login is over, with the error if it
 * failed: it bounds the logins in flight for the generation, and throws `LoginHeldBack` when the version was refused
 * meanwhile.
 */
export interface PoolDriver<P> {
  open(login: DatabaseSecretFields, onLogin: () => void, loginTurn: () => Promise<LoginOver>): P;
  /** Takes one connection and gives it back: throws what the driver throws when the login is refused. */
  probe(pool: P): Promise<void>;
  end(pool: P): Promise<void>;
  /** The driver's refused-login errors (wrong password, login not allowed), as opposed to network errors. */
  authErrorClass(error: unknown): string | undefined;
  /** Whether `end` lets busy connections finish (pg) or must wait until none is checked out (mysql2). */
  endWaitsForBusy: boolean;
}

export interface GenerationOptions {
  /** Where the secret is read (default: a SecretCache on AWS Secrets Manager with its documented defaults). */
  cache?: SecretCache;
  secretId: string;
  maxFailedLogins?: number;
  backoffMs?: number;
  reporter?: LoginReporter;
  /** Connections older than this are closed when released (optional), each at its own jittered age. */
  maxLifetimeMs?: number;
  /** Spread of `maxLifetimeMs`, as a share of it (default 0.1: ±10 %), so connections do not all reconnect at once. */
  lifetimeJitter?: number;
}

/** A lifetime drawn for one connection (or pool) from `maxLifetimeMs` and its jitter; undefined without one. */
export function jitteredLifetimeMs(
  options: Pick<GenerationOptions, 'maxLifetimeMs' | 'lifetimeJitter'>,
  random = Math.random,
): number | undefined {
  if (options.maxLifetimeMs === undefined) return undefined;
  const jitter = Math.min(Math.max(options.lifetimeJitter ?? 0.1, 0), 0.5);
  return Math.max(1, options.maxLifetimeMs * (1 + jitter * (2 * random() - 1)));
}

/** Ends a turn to log in: called once, with the login's error if it failed. */
export type LoginOver = (error?: unknown) => void;

/**
 * A login not attempted: its version was refused (or paused) while the connection waited for its turn. The request
 * looks again at which generation to use; it never reaches the application.
 */
export class LoginHeldBack extends Error {
  constructor(secretId: string, versionId: string) {
    super(`secret ${secretId}: version ${versionId}: login held back (its logins were refused meanwhile)`);
    this.name = 'LoginHeldBack';
  }
}

/** The pool of one credential generation: one version of the secret, one login. */
export interface Generation<P> {
  readonly versionId: string;
  readonly username: string;
  readonly pool: P;
  /** Taken from AWSPENDING while AWSCURRENT still named `replaces` (between a rotation's set and finish). */
  readonly replaces?: string;
  /** Work running on the pool, or connections checked out of it. */
  busy: number;
  retiring: boolean;
}

/**
 * The credential generations of one rotating pool, driver-neutral: which generation new connections use, the
 * switch to a new one (checked with one connection first), recovery from a refused login (one single-flight
 * refetch, then AWSPENDING), and the cap on failed logins with a doubling pause, so a stale secret never locks an
 * account. Logins and refusals go to the reporter, with version ids only.
 */
export class Generations<P> {
  #generation?: Generation<P>;
  #switching?: Promise<Generation<P>>;
  #recovering?: Promise<Generation<P>>;
  readonly #retiring = new Set<Generation<P>>();
  /** Refused logins in a row per version, and until when that version is not tried again. */
  readonly #refusals = new Map<string, { count: number; until: number; trying?: Promise<void> }>();
  /** Logins in flight per version, and the connections waiting for a turn. */
  readonly #logins = new Map<string, { inFlight: number; waiting: Array<() => void>; refused: number }>();
  #lastAuthError?: unknown;
  #pausedCheckAt = 0;
  #ended = false;

  private readonly options: GenerationOptions & { cache: SecretCache };

  constructor(
    options: GenerationOptions,
    private readonly driver: PoolDriver<P>,
    private readonly onSwitch: (generation: Generation<P>) => void,
  ) {
    checkGenerationOptions(options);
    this.options = { ...options, cache: options.cache ?? new SecretCache({ store: new AwsSecretsManagerStore() }) };
  }

  get active(): Generation<P> | undefined {
    return this.#generation;
  }

  /**
   * Runs `work` on the current generation's pool; after a refused login, once more on the generation recovered. Once
   * a version has been refused, one request at a time tries it (so at most one login attempt is in flight for it);
   * the others wait for that one's outcome, and a version refused `maxFailedLogins` times in a row pauses.
   */
  async run<T>(work: (pool: P, generation: Generation<P>) => Promise<T>): Promise<T> {
    for (;;) {
      let generation = await this.current();
      // Its logins were refused too often: no new attempt until the pause ends (a stale secret never locks an account).
      if (this.#paused(generation.versionId)) generation = await this.#whilePaused(generation);
      const refusal = this.#refusals.get(generation.versionId);
      if (refusal?.trying) {
        await refusal.trying;
        continue; // look again: it logged in, it was refused once more (and may pause), or another version took over
      }
      let tried: () => void = () => undefined;
      if (refusal) refusal.trying = new Promise<void>((resolve) => (tried = resolve));
      try {
        const result = await this.#on(generation, work);
        // It served: the version is no longer refused (a login, if there was one, cleared it already).
        if (refusal && this.#refusals.get(generation.versionId) === refusal)
          this.#refusals.delete(generation.versionId);
        return result;
      } catch (error) {
        if (error instanceof LoginHeldBack) continue; // refused meanwhile: look again, as after waiting on `trying`
        if (this.driver.authErrorClass(error) === undefined) throw error;
        this.#refused(generation, error);
        try {
          return await this.#on(await this.#recover(generation), work);
        } catch (again) {
          if (again instanceof LoginHeldBack) continue;
          throw again;
        }
      } finally {
        if (refusal) refusal.trying = undefined;
        tried();
      }
    }
  }

  /** Marks a connection checked out of `generation` (for pools whose `end` must wait); returns its release. */
  checkout(generation: Generation<P>): () => void {
    generation.busy++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#done(generation);
    };
  }

  async end(): Promise<void> {
    this.#ended = true;
    const all = [...this.#retiring, ...(this.#generation ? [this.#generation] : [])];
    this.#generation = undefined;
    await Promise.all(all.map((g) => this.driver.end(g.pool).catch(() => undefined)));
  }

  /** The generation to use now: the one of AWSCURRENT (still the pending one while its rotation finishes). */
  async current(): Promise<Generation<P>> {
    if (this.#ended) throw new Error('the rotating pool has ended');
    const snapshot = await this.options.cache.get(this.options.secretId);
    const generation = this.#generation;
    if (generation && (generation.versionId === snapshot.versionId || generation.replaces === snapshot.versionId))
      return generation;
    this.#switching ??= this.#switchTo([snapshot], snapshot.versionId, generation).finally(
      () => (this.#switching = undefined),
    );
    return this.#switching;
  }

  async #on<T>(chosen: Generation<P>, work: (pool: P, generation: Generation<P>) => Promise<T>): Promise<T> {
    // A generation retired between the choice and now (another request switched): its pool may be ending.
    const generation = chosen.retiring && this.#generation ? this.#generation : chosen;
    generation.busy++;
    try {
      return await work(generation.pool, generation);
    } finally {
      this.#done(generation);
    }
  }

  #done(generation: Generation<P>): void {
    generation.busy--;
    if (generation.retiring && generation.busy === 0 && !this.driver.endWaitsForBusy) this.#close(generation);
  }

  /** While `paused` is: at most once a second, looks for a version that replaced it (as after a refusal); else refuses. */
  async #whilePaused(paused: Generation<P>): Promise<Generation<P>> {
    if (Date.now() - this.#pausedCheckAt < 1000) throw this.#lastAuthError;
    this.#pausedCheckAt = Date.now();
    return this.#recover(paused);
  }

  #paused(versionId: string): boolean {
    const refusal = this.#refusals.get(versionId);
    return refusal !== undefined && Date.now() < refusal.until;
  }

  /** Counts a refused login of a version; from `maxFailedLogins` in a row on, it pauses, doubling up to 30 s. */
  #refused(generation: { versionId: string }, error: unknown): void {
    this.#lastAuthError = error;
    const refusal = this.#refusals.get(generation.versionId) ?? { count: 0, until: 0 };
    refusal.count++;
    const max = this.options.maxFailedLogins ?? 3;
    if (refusal.count >= max)
      refusal.until = Date.now() + Math.min(30_000, (this.options.backoffMs ?? 1000) * 2 ** (refusal.count - max));
    this.#refusals.set(generation.versionId, refusal);
    this.options.reporter?.record({
      secretId: this.options.secretId,
      versionId: generation.versionId,
      outcome: 'auth-failure',
      errorClass: this.driver.authErrorClass(error) ?? 'unknown',
    });
  }

  /**
   * After a refused login on `failed`: AWSPENDING, then AWSCURRENT (single-flight), each tried in turn; pauses when
   * logins keep failing. The order of the reads matters: the refusal means a rotation's set already gave the target
   * a newer version, which is AWSPENDING until the rotation's finish and AWSCURRENT from then on. Reading AWSPENDING
   * first, then AWSCURRENT with a check begun after that read, one of the two sees it wherever finish falls; the
   * other order misses it when finish lands between the reads (AWSCURRENT read before, AWSPENDING after).
   */
  #recover(failed: Generation<P>): Promise<Generation<P>> {
    if (this.#generation !== failed) return this.current();
    this.#recovering ??= (async () => {
      const cache = this.options.cache;
      const pending = await cache.pending(this.options.secretId);
      const current = await cache.refreshNow(this.options.secretId, { fresh: true });
      const candidates = [current, ...(pending && pending.versionId !== current.versionId ? [pending] : [])].filter(
        (c) => c.versionId !== failed.versionId,
      );
      return this.#switchTo(candidates, current.versionId, failed, true);
    })().finally(() => (this.#recovering = undefined));
    return this.#recovering;
  }

  /**
   * Checks each candidate with one connection and switches to the first that logs in (a pending candidate stands in
   * for `currentVersionId` until its rotation finishes); the old generation retires. Keeps `previous` when none
   * does, except after a refused login (`mustSwitch`), where the refusal is thrown.
   */
  async #switchTo(
    candidates: SecretSnapshot[],
    currentVersionId: string,
    previous: Generation<P> | undefined,
    mustSwitch = false,
  ): Promise<Generation<P>> {
    for (const candidate of candidates) {
      if (this.#paused(candidate.versionId)) continue;
      const next = this.#open(candidate, currentVersionId);
      try {
        await this.driver.probe(next.pool);
      } catch (error) {
        await this.driver.end(next.pool).catch(() => undefined);
        if (error instanceof LoginHeldBack) continue;
        if (this.driver.authErrorClass(error) === undefined) throw error;
        this.#refused(next, error);
        continue;
      }
      this.#install(next, previous);
      return next;
    }
    if (previous && !mustSwitch) return previous;
    throw this.#lastAuthError ?? new Error(`secret ${this.options.secretId}: no credential to connect with`);
  }

  #open(snapshot: SecretSnapshot, currentVersionId: string): Generation<P> {
    const login = databaseFields(this.options.secretId, snapshot);
    const { secretId, reporter } = this.options;
    const versionId = snapshot.versionId;
    const pool = this.driver.open(
      login,
      () => {
        this.#refusals.delete(versionId);
        reporter?.record({ secretId, versionId, outcome: 'success' });
      },
      () => this.#loginTurn(versionId),
    );
    return {
      versionId,
      username: login.username,
      pool,
      busy: 0,
      retiring: false,
      ...(snapshot.stage === 'AWSPENDING' ? { replaces: currentVersionId } : {}),
    };
  }

  /**
   * A turn to log in with `versionId`: at most `maxFailedLogins` logins in flight for it, one once it has been refused,
   * so a burst of new connections after a password changed behind the pool costs at most the cap, never one refused
   * login per connection (which would trip the database's own lockout, MySQL's FAILED_LOGIN_ATTEMPTS or MariaDB's
   * max_password_errors). A connection still waiting when the version is refused or paused is held back.
   */
  async #loginTurn(versionId: string): Promise<LoginOver> {
    let gate = this.#logins.get(versionId);
    if (!gate) this.#logins.set(versionId, (gate = { inFlight: 0, waiting: [], refused: 0 }));
    const refusedBefore = gate.refused;
    for (;;) {
      if (this.#paused(versionId) || gate.refused > refusedBefore)
        throw new LoginHeldBack(this.options.secretId, versionId);
      const limit = this.#refusals.has(versionId) || gate.refused > 0 ? 1 : (this.options.maxFailedLogins ?? 3);
      if (gate.inFlight < limit) break;
      await new Promise<void>((resolve) => gate.waiting.push(resolve));
    }
    gate.inFlight++;
    let over = false;
    return (error?: unknown) => {
      if (over) return;
      over = true;
      gate.inFlight--;
      // Counted here, before anyone waiting looks again (the request's own count of it comes a few ticks later).
      if (error === undefined)
        gate.refused = 0; // it logged in: the version works, logins go at full width again
      else if (this.driver.authErrorClass(error) !== undefined) gate.refused++;
      const woken = gate.waiting.splice(0);
      for (const wake of woken) wake();
      // Forgotten only when nothing is in flight, nobody was waiting, and no refusal needs remembering.
      if (gate.inFlight === 0 && woken.length === 0 && gate.refused === 0 && this.#logins.get(versionId) === gate)
        this.#logins.delete(versionId);
    };
  }

  #install(next: Generation<P>, previous: Generation<P> | undefined): void {
    this.#generation = next;
    this.onSwitch(next);
    if (!previous || previous === next) return;
    previous.retiring = true;
    this.#retiring.add(previous);
    // pg's end() closes idle connections now and busy ones on release; mysql2's must wait until none is busy.
    if (this.driver.endWaitsForBusy || previous.busy === 0) this.#close(previous);
  }

  #close(generation: Generation<P>): void {
    if (!this.#retiring.delete(generation)) return;
    void this.driver.end(generation.pool).catch(() => undefined);
  }
}

/** The login fields of a database secret, checked: problems name the fields and the version, never a value. */
function databaseFields(secretId: string, snapshot: SecretSnapshot): DatabaseSecretFields {
  const json = parseJsonObject(secretId, snapshot.value, snapshot.versionId);
  const problems: string[] = [];
  for (const field of ['host', 'username', 'password'] as const)
    if (typeof json[field] !== 'string' || json[field] === '') problems.push(`${field}: must be a non-empty string`);
  const port = json.port;
  if (port !== undefined && !(typeof port === 'number' || (typeof port === 'string' && /^\d+$/.test(port))))
    problems.push('port: must be a number');
  if (json.dbname !== undefined && typeof json.dbname !== 'string') problems.push('dbname: must be a string');
  if (problems.length > 0)
    throw new InvalidSecretError(
      secretId,
      problems.map((p) => `version ${snapshot.versionId}: ${p}`),
    );
  return json as unknown as DatabaseSecretFields;
}

/**
 * Checks a rotating pool's options when it is made, naming each one that is wrong: a pool must not fail later, at its
 * first query, with an error about something else.
 */
export function checkGenerationOptions(options: GenerationOptions): void {
  const o = options as unknown as Record<string, unknown> | undefined;
  const problems: string[] = [];
  if (typeof o !== 'object' || o === null) throw new InvalidInputError('rotating pool: options must be an object');
  if (typeof o.secretId !== 'string' || o.secretId === '') problems.push('secretId: must be the id of the secret');
  const cache = o.cache as { get?: unknown; refreshNow?: unknown; pending?: unknown } | undefined;
  if (cache !== undefined && (typeof cache?.get !== 'function' || typeof cache.refreshNow !== 'function'))
    problems.push('cache: must be a SecretCache (or left out for one on AWS Secrets Manager)');
  const whole = (name: string, min: number) => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min))
      problems.push(`${name}: must be a whole number of at least ${min}`);
  };
  whole('maxFailedLogins', 1);
  whole('backoffMs', 0);
  whole('maxLifetimeMs', 1);
  const jitter = o.lifetimeJitter;
  if (jitter !== undefined && !(typeof jitter === 'number' && jitter >= 0 && jitter <= 0.5))
    problems.push('lifetimeJitter: must be a share from 0 to 0.5');
  const reporter = o.reporter as { record?: unknown } | undefined;
  if (reporter !== undefined && typeof reporter?.record !== 'function')
    problems.push('reporter: must have record(event) (a ConsumerReporter)');
  if (problems.length > 0) throw new InvalidInputError(`rotating pool: ${problems.join('; ')}`);
}
