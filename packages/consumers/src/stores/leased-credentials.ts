import { InvalidInputError, StoreRejectedError, UnavailableError } from '../errors';
import { Stage } from '../stages';
import type { SecretDescription, SecretStore, StoredValue } from './secret-store';

export interface LeasedCredentialsOptions {
  /** The rotor worker's report endpoint, e.g. `https://rotor-worker:9466` (its `reports` section). */
  url: string;
  /** A report token whose scopes cover the templates this application leases from. */
  token: string;
  /** Per-request timeout in milliseconds (default 5000). */
  requestTimeoutMs?: number;
  /** For tests: the fetch to use. */
  fetch?: typeof fetch;
}

/**
 * What the worker's lease endpoint answers (POST /v1/leases, POST /v1/leases/<id>/renew): where to log in, as whom,
 * until when. The password stays with the application and its pools: never logged.
 */
export interface LeaseCredential {
  leaseId: string;
  secretId: string;
  generation: number;
  engine: 'postgres' | 'mysql';
  host: string;
  port: number;
  dbname?: string;
  username: string;
  password: string;
  expiresAtMs: number;
  renewEveryMs: number;
}

interface Held {
  current: LeaseCredential;
  previous?: LeaseCredential;
  renewedAt: number;
  timer: NodeJS.Timeout;
}

/**
 * Short-lived database credentials as a read-only SecretStore: the first read of a template's id opens a lease at
 * the worker's endpoint, a timer renews it (which tells the worker this instance is alive), and a new login the
 * worker issued before the old one's maximum lifetime becomes AWSCURRENT, the old one AWSPREVIOUS. So the rotating
 * pools follow dynamic credentials as they follow rotations.
 *
 * @example
 *   const leased = new LeasedCredentials({ url: process.env.ROTOR_URL!, token: process.env.ROTOR_TOKEN! });
 *   const pool = createRotatingPgPool({ cache: new SecretCache({ store: leased }), secretId: 'prod/db/orders-leased' });
 *   // at shutdown: await pool.end(); await leased.close();  (releases the lease: its logins are revoked at once)
 */
export class LeasedCredentials implements SecretStore {
  readonly description: string;
  readonly #options: LeasedCredentialsOptions;
  readonly #held = new Map<string, Held>();
  readonly #opening = new Map<string, Promise<Held>>();
  #closed = false;

  constructor(options: LeasedCredentialsOptions) {
    if (!options.token) throw new InvalidInputError('LeasedCredentials: token is empty');
    new URL(options.url);
    this.#options = options;
    this.description = `leases from rotor at ${new URL(options.url).origin}`;
  }

  async describe(secretId: string): Promise<SecretDescription> {
    const held = await this.#hold(secretId, { fresh: true });
    return {
      secretId,
      versions: [
        { versionId: versionIdOf(held.current), stages: [Stage.current] },
        ...(held.previous ? [{ versionId: versionIdOf(held.previous), stages: [Stage.previous] }] : []),
      ],
      tags: {},
    };
  }

  async getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined> {
    const held = await this.#hold(secretId);
    const credential = stage === Stage.current ? held.current : stage === Stage.previous ? held.previous : undefined;
    return credential && stored(credential, stage);
  }

  async getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined> {
    const held = await this.#hold(secretId);
    if (versionIdOf(held.current) === versionId) return stored(held.current, Stage.current);
    if (held.previous && versionIdOf(held.previous) === versionId) return stored(held.previous, Stage.previous);
    return undefined;
  }

  putPending(secretId: string): Promise<void> {
    return Promise.reject(new InvalidInputError(`secret ${secretId}: leased credentials are read-only`));
  }

  moveStage(secretId: string): Promise<void> {
    return this.putPending(secretId);
  }

  removeStage(secretId: string): Promise<void> {
    return this.putPending(secretId);
  }

  /** Releases every lease (the worker revokes their logins now) and stops renewing. */
  async close(): Promise<void> {
    this.#closed = true;
    const held = [...this.#held.values()];
    this.#held.clear();
    for (const h of held) clearInterval(h.timer);
    await Promise.all(
      held.map((h) => this.#call('DELETE', `/v1/leases/${h.current.leaseId}`, 'release').catch(() => undefined)),
    );
  }

  async #hold(secretId: string, { fresh = false } = {}): Promise<Held> {
    if (this.#closed) throw new InvalidInputError('LeasedCredentials is closed');
    const held = this.#held.get(secretId);
    if (held) {
      if (fresh && Date.now() - held.renewedAt > 1000) await this.#renew(secretId, held).catch(() => undefined);
      return this.#held.get(secretId) ?? held;
    }
    return this.#openOnce(secretId);
  }

  /** Opens a lease for `secretId` unless one is being opened already (one at a time per secret). */
  #openOnce(secretId: string, previous?: LeaseCredential): Promise<Held> {
    let opening = this.#opening.get(secretId);
    if (!opening) {
      opening = this.#open(secretId, previous).finally(() => this.#opening.delete(secretId));
      this.#opening.set(secretId, opening);
    }
    return opening;
  }

  async #open(secretId: string, previous?: LeaseCredential): Promise<Held> {
    const current = leaseOf(secretId, await this.#call('POST', '/v1/leases', secretId, { secretId }));
    if (this.#closed) {
      // Closed while it opened: give it back at once rather than renew it forever.
      await this.#call('DELETE', `/v1/leases/${current.leaseId}`, secretId).catch(() => undefined);
      throw new InvalidInputError('LeasedCredentials is closed');
    }
    const timer = setInterval(() => {
      const held = this.#held.get(secretId);
      if (held) void this.#renew(secretId, held).catch(() => undefined);
    }, current.renewEveryMs);
    timer.unref();
    const held: Held = { current, ...(previous ? { previous } : {}), renewedAt: Date.now(), timer };
    const before = this.#held.get(secretId);
    if (before) clearInterval(before.timer);
    this.#held.set(secretId, held);
    return held;
  }

  /** Renews the lease; a new generation becomes current. A lease that ended is replaced by a new one. */
  async #renew(secretId: string, held: Held): Promise<void> {
    let answer: LeaseCredential | undefined;
    try {
      answer = leaseOf(secretId, await this.#call('POST', `/v1/leases/${held.current.leaseId}/renew`, secretId));
    } catch (error) {
      if (!(error instanceof LeaseEnded) || this.#held.get(secretId) !== held) throw error;
      clearInterval(held.timer);
      this.#held.delete(secretId);
      await this.#openOnce(secretId, held.current);
      return;
    }
    held.renewedAt = Date.now();
    if (answer.generation !== held.current.generation) {
      held.previous = held.current;
      held.current = answer;
    } else if (answer.username !== held.current.username || answer.password !== held.current.password) {
      // The same generation answered differently (the worker re-read a template whose key changed): the answer wins.
      held.current = answer;
    } else held.current.expiresAtMs = answer.expiresAtMs;
  }

  async #call(method: string, path: string, subject: string, body?: object): Promise<unknown> {
    const fetchImpl = this.#options.fetch ?? fetch;
    let response: Response;
    try {
      response = await fetchImpl(new URL(path, this.#options.url), {
        method,
        headers: { authorization: `Bearer ${this.#options.token}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 5000),
      });
    } catch (error) {
      throw new UnavailableError(subject, `${this.description} did not answer (${(error as Error).name})`);
    }
    const text = await response.text();
    if (response.status === 410) throw new LeaseEnded();
    if (response.status === 204) return undefined;
    let parsed: { error?: string } | undefined;
    try {
      parsed = text ? (JSON.parse(text) as { error?: string }) : undefined;
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed;
    const why = typeof parsed?.error === 'string' ? `: ${parsed.error.slice(0, 300)}` : '';
    if (response.status === 429 || response.status >= 500)
      throw new UnavailableError(subject, `${this.description} answered HTTP ${response.status}${why}`);
    throw new StoreRejectedError(subject, `${this.description} refused the lease (HTTP ${response.status}${why})`);
  }
}

class LeaseEnded extends Error {}

/** The shortest renewal interval an answer may ask for: a broken or hostile answer must not spin the timer. */
const MIN_RENEW_EVERY_MS = 100;

/**
 * The endpoint's answer, checked before anything uses it: a lease with every field of its type, or a StoreRejectedError
 * naming the fields that are wrong (never their values: the answer holds a password).
 */
function leaseOf(secretId: string, answer: unknown): LeaseCredential {
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer))
    throw new StoreRejectedError(secretId, 'the lease endpoint answered something other than a JSON object');
  const a = answer as Record<string, unknown>;
  const problems: string[] = [];
  const text = (field: string, optional = false) => {
    if (optional && a[field] === undefined) return;
    if (typeof a[field] !== 'string' || a[field] === '' || (a[field] as string).length > 4096)
      problems.push(`${field}: must be a non-empty string`);
  };
  const whole = (field: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = a[field];
    if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max))
      problems.push(`${field}: must be a whole number from ${min} to ${max}`);
  };
  for (const field of ['leaseId', 'secretId', 'host', 'username', 'password']) text(field);
  text('dbname', true);
  if (a.engine !== 'postgres' && a.engine !== 'mysql') problems.push('engine: must be postgres or mysql');
  whole('generation', 0);
  whole('port', 1);
  whole('expiresAtMs', 0);
  // setInterval takes at most 2^31-1 ms: more would fire every millisecond.
  whole('renewEveryMs', MIN_RENEW_EVERY_MS, 2 ** 31 - 1);
  if (problems.length > 0)
    throw new StoreRejectedError(secretId, `the lease endpoint's answer is not a lease: ${problems.join('; ')}`);
  return a as unknown as LeaseCredential;
}

function versionIdOf(credential: LeaseCredential): string {
  return `${credential.leaseId}.${credential.generation}`;
}

function stored(credential: LeaseCredential, stage: Stage): StoredValue {
  const { engine, host, port, dbname, username, password } = credential;
  return {
    versionId: versionIdOf(credential),
    stages: [stage],
    value: JSON.stringify({ engine, host, port, ...(dbname ? { dbname } : {}), username, password }),
  };
}
