import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  digestMatches,
  LOOKUP_SQL,
  parseApiKey,
  parsePepperSet,
  type ApiKeyShapeProblem,
  type PepperSet,
  type RegistryRow,
} from './credentials/api-key';
import { ErrorType, RotorError } from './errors';
import type { SecretCache } from './secret-cache';

/** Runs one parameterised query on the registry database: a `pg.Pool`'s or a rotating pool's `query` fits. */
export type RegistryQuery = (sql: string, params: unknown[]) => Promise<{ rows: unknown[] }>;

export interface ApiKeyVerifierOptions {
  /** The `service` of the API key secrets whose keys this verifier accepts. */
  service: string;
  /** Their `prefix`: keys with another prefix are refused before any lookup. */
  prefix: string;
  /** The registry lookup (read-only access to the `rotor_api_keys` table is all a verifier needs). */
  query: RegistryQuery;
  /** Where the pepper secret is read from: a SecretCache and the pepper secret's id. */
  pepper: { cache: SecretCache; secretId: string };
  /**
   * How long a lookup's answer is kept (default 30 s), found or not. This is the revocation bound: a key rotor
   * revokes stops verifying on every instance within it, and a new key verifies within it at the latest.
   */
  cacheTtlMs?: number;
  /** Most key ids kept (default 10,000) of each kind, found and not found; the oldest answers go first. */
  maxEntries?: number;
  /**
   * Registry lookups run at once (default 8); more wait their turn, up to `maxQueuedLookups` (default 1,000), past
   * which a check fails as Unavailable (503 from the middleware) without a lookup. A flood of forged keys with valid
   * checksums therefore costs the registry at most this many queries at a time.
   */
  maxLookupsInFlight?: number;
  maxQueuedLookups?: number;
  now?: () => number;
}

/** Why a key was refused: the shape problems need no lookup; `unknown-key` and `mismatch` came from the registry. */
export type ApiKeyRefusal = ApiKeyShapeProblem | 'unknown-key' | 'mismatch';
export type ApiKeyVerdict = { ok: true; keyId: string } | { ok: false; reason: ApiKeyRefusal };

interface Entry {
  row: RegistryRow | undefined;
  until: number;
}

/**
 * Verifies rotor's API keys without holding any: format and checksum first (a mistyped, forged-looking, empty,
 * oversized or non-ASCII key costs no lookup), then the registry row of the key id, whose HMAC-SHA256 digest under
 * the pepper it names is compared in constant time. Lookups are cached for `cacheTtlMs`, single-flight per key
 * id, and at most `maxLookupsInFlight` run at once. Both keys of a rotation in grace have rows, so both verify; retirement deletes the previous one's row.
 *
 * A registry or store that cannot be reached is an error (`RotorError` of type Unavailable), never a refusal.
 */
export class ApiKeyVerifier {
  readonly #options: Required<Omit<ApiKeyVerifierOptions, 'now'>> & { now: () => number };
  /** Keys found: a flood of made-up key ids (valid checksums are public) lands in `#unknown`, never evicts these. */
  readonly #entries = new Map<string, Entry>();
  readonly #unknown = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<RegistryRow | undefined>>();
  /** Lookups running, and the turns of those waiting (FIFO). */
  #running = 0;
  readonly #waiting: Array<() => void> = [];
  #peppers?: { versionId: string; set: PepperSet };
  #pepperReadAt = Number.NEGATIVE_INFINITY;

  constructor(options: ApiKeyVerifierOptions) {
    this.#options = {
      cacheTtlMs: 30_000,
      maxEntries: 10_000,
      maxLookupsInFlight: 8,
      maxQueuedLookups: 1000,
      now: Date.now,
      ...options,
    };
  }

  async verify(presented: unknown): Promise<ApiKeyVerdict> {
    const shape = parseApiKey(presented, this.#options.prefix);
    if (!shape.ok) return { ok: false, reason: shape.problem };
    const row = await this.#row(shape.keyId);
    if (!row) return { ok: false, reason: 'unknown-key' };
    let peppers = (await this.#pepperSet()).peppers;
    // A pepper id this instance has not seen yet: the pepper secret just rotated; read it again (at most once a second).
    if (!Object.hasOwn(peppers, row.pepper_id) && this.#options.now() - this.#pepperReadAt >= 1000) {
      this.#pepperReadAt = this.#options.now();
      peppers = (await this.#pepperSet(true)).peppers;
    }
    const pepper = Object.hasOwn(peppers, row.pepper_id) ? peppers[row.pepper_id] : undefined;
    if (!pepper || !digestMatches(pepper, presented as string, row.digest)) return { ok: false, reason: 'mismatch' };
    return { ok: true, keyId: shape.keyId };
  }

  async #row(keyId: string): Promise<RegistryRow | undefined> {
    const now = this.#options.now();
    const cached = this.#entries.get(keyId) ?? this.#unknown.get(keyId);
    if (cached && cached.until > now) return cached.row;
    const running = this.#inFlight.get(keyId);
    if (running) return running;
    const lookup = this.#lookup(keyId).finally(() => this.#inFlight.delete(keyId));
    this.#inFlight.set(keyId, lookup);
    return lookup;
  }

  /** Waits for a lookup slot (at most `maxLookupsInFlight` run); refuses when too many already wait. */
  async #slot(): Promise<() => void> {
    if (this.#running >= this.#options.maxLookupsInFlight) {
      if (this.#waiting.length >= this.#options.maxQueuedLookups)
        throw new RotorError(
          ErrorType.Unavailable,
          `API key registry lookups saturated: ${this.#waiting.length} waiting behind ${this.#running} running`,
        );
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else this.#running++;
    return () => {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    };
  }

  async #lookup(keyId: string): Promise<RegistryRow | undefined> {
    let rows: unknown[];
    const release = await this.#slot();
    try {
      ({ rows } = await this.#options.query(LOOKUP_SQL, [this.#options.service, keyId]));
    } catch (error) {
      throw new RotorError(
        ErrorType.Unavailable,
        `API key registry lookup failed (${(error as { code?: string }).code ?? 'no code'})`,
        undefined,
        { cause: error },
      );
    } finally {
      release();
    }
    const row = rows[0] as RegistryRow | undefined;
    this.#entries.delete(keyId);
    this.#unknown.delete(keyId);
    const into = row ? this.#entries : this.#unknown;
    into.set(keyId, { row, until: this.#options.now() + this.#options.cacheTtlMs });
    while (into.size > this.#options.maxEntries) into.delete(into.keys().next().value!);
    return row;
  }

  async #pepperSet(fresh = false): Promise<PepperSet> {
    const { cache, secretId } = this.#options.pepper;
    const snapshot = fresh ? await cache.refreshNow(secretId, { fresh: true }) : await cache.get(secretId);
    if (this.#peppers?.versionId !== snapshot.versionId) {
      const parsed = parsePepperSet(snapshot.value);
      if (!parsed.ok)
        throw new RotorError(
          ErrorType.InvalidSecret,
          `pepper secret ${secretId} is not valid: ${parsed.problems.join('; ')}`,
          secretId,
        );
      this.#peppers = { versionId: snapshot.versionId, set: parsed.set };
    }
    return this.#peppers.set;
  }
}

/** The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`. */
export function presentedApiKey(req: IncomingMessage): string | undefined {
  const authorization = req.headers.authorization;
  if (authorization?.startsWith('Bearer ')) return authorization.slice(7).trim();
  const header = req.headers['x-api-key'];
  return Array.isArray(header) ? header[0] : header;
}

/**
 * A middleware for Node's http and Express-style handlers: a request with a key that verifies gets
 * `req.apiKey = { keyId }` and goes on to `next()`; any other is answered 401 (`{"error":"invalid_api_key"}`,
 * the reason is not told), and 503 when the registry cannot be asked.
 *
 * @example
 *   const guard = apiKeyMiddleware(verifier);
 *   http.createServer((req, res) => guard(req, res, () => handle(req, res)));
 */
export function apiKeyMiddleware(verifier: ApiKeyVerifier) {
  return (req: IncomingMessage & { apiKey?: { keyId: string } }, res: ServerResponse, next: () => void): void => {
    verifier.verify(presentedApiKey(req)).then(
      (verdict) => {
        if (verdict.ok) {
          req.apiKey = { keyId: verdict.keyId };
          next();
          return;
        }
        res
          .writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' })
          .end('{"error":"invalid_api_key"}');
      },
      () => {
        res
          .writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' })
          .end('{"error":"api_key_registry_unavailable"}');
      },
    );
  };
}
