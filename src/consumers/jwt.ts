import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLocalJWKSet, errors, importJWK, jwtVerify, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK, type JWTPayload, type JWTVerifyResult } from 'jose';
import { JWKS_SQL, JWT_ALGORITHMS, jwtSecretSchema, type JwtAlgorithm } from '../credentials/jwt';
import { ErrorType, RotorError } from '../shared/errors';
import type { RegistryQuery } from './api-key-verifier';
import type { SecretCache } from './secret-cache';

/** The JWKS could not be fetched and the last copy is older than its stale bound: verification cannot be decided. */
export class JwksUnavailableError extends RotorError {
  constructor(detail: string, cause?: unknown) {
    super(ErrorType.Unavailable, `JWKS unavailable: ${detail}`, undefined, { cause });
  }
}

export interface JwtSignerOptions {
  /** Where the signing key secret is read from (its AWSCURRENT `current` key signs). */
  cache: SecretCache;
  secretId: string;
  issuer?: string;
  audience?: string | string[];
}

interface Signing {
  versionId: string;
  kid: string;
  alg: JwtAlgorithm;
  key: CryptoKey | Uint8Array;
  maxLifetimeMs: number;
}

/**
 * Signs JWTs with the current key of a `jwt-signing-key` secret, its `kid` in the header. It follows rotations
 * through its SecretCache: after `finish`, the next token is signed with the new key. A token may not live longer
 * than the secret's `tokens.maxLifetime`, which is what rotor's overlap (grace) is sized to.
 */
export class JwtSigner {
  readonly #options: JwtSignerOptions;
  #signing?: Signing;

  constructor(options: JwtSignerOptions) {
    this.#options = options;
  }

  /** A signed token with `claims`, `iat` now and `exp` after `expiresInMs` (default and maximum: tokens.maxLifetime). */
  async sign(claims: JWTPayload = {}, options: { expiresInMs?: number } = {}): Promise<string> {
    const signing = await this.#current();
    const lifetime = options.expiresInMs ?? signing.maxLifetimeMs;
    if (!(lifetime > 0) || lifetime > signing.maxLifetimeMs) {
      throw new RangeError(`expiresInMs ${lifetime} is not within 1 to ${signing.maxLifetimeMs} (tokens.maxLifetime of ${this.#options.secretId})`);
    }
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'JWT' }).setIssuedAt(now).setExpirationTime(now + Math.floor(lifetime / 1000));
    if (this.#options.issuer) jwt.setIssuer(this.#options.issuer);
    if (this.#options.audience) jwt.setAudience(this.#options.audience);
    return jwt.sign(signing.key);
  }

  /** The kid new tokens are signed with. */
  async kid(): Promise<string> {
    return (await this.#current()).kid;
  }

  async #current(): Promise<Signing> {
    const snapshot = await this.#options.cache.get(this.#options.secretId);
    if (this.#signing?.versionId === snapshot.versionId) return this.#signing;
    let parsed;
    try {
      parsed = jwtSecretSchema.safeParse(JSON.parse(snapshot.value));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) throw new RotorError(ErrorType.InvalidSecret, `secret ${this.#options.secretId} is not a valid jwt-signing-key secret`, this.#options.secretId);
    const current = parsed.data.keys.current;
    if (!current) throw new RotorError(ErrorType.InvalidSecret, `secret ${this.#options.secretId} has no current key yet: rotate it once`, this.#options.secretId);
    this.#signing = { versionId: snapshot.versionId, kid: current.kid, alg: current.alg, key: await importJWK(current.privateJwk, current.alg), maxLifetimeMs: parsed.data.tokens.maxLifetime };
    return this.#signing;
  }
}

export interface JwksHandlerOptions {
  /** The `service` of the signing key secret. */
  service: string;
  /** The registry lookup (read access to `rotor_jwks`). */
  query: RegistryQuery;
  /** The secret's `jwks.maxAge`: served as `Cache-Control: max-age`, lowered by up to `jitter` so caches spread out. */
  maxAgeMs: number;
  /** Share of max-age taken off at random per response (default 0.1); never more than maxAgeMs is served. */
  jitter?: number;
  random?: () => number;
}

/**
 * An http/Express-style handler serving a service's public keys as a JWKS (`application/jwk-set+json`), with
 * `Cache-Control: public, max-age` (jittered down, never up), a strong ETag, and 304 for a matching If-None-Match.
 * Concurrent requests share one registry query; a registry that does not answer gets 503 and `no-store`.
 */
export function jwksHandler(options: JwksHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const random = options.random ?? Math.random;
  const jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5);
  let inFlight: Promise<string> | undefined;
  const body = () =>
    (inFlight ??= options
      .query(JWKS_SQL, [options.service])
      .then(({ rows }) => JSON.stringify({ keys: (rows as { jwk: JWK }[]).map((r) => r.jwk) }))
      .finally(() => (inFlight = undefined)));
  return (req, res) => {
    body().then(
      (text) => {
        const etag = `"${createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`;
        const maxAge = Math.max(0, Math.floor((options.maxAgeMs / 1000) * (1 - jitter * random())));
        const headers = { 'cache-control': `public, max-age=${maxAge}`, etag };
        if (req.headers['if-none-match'] === etag) res.writeHead(304, headers).end();
        else res.writeHead(200, { ...headers, 'content-type': 'application/jwk-set+json' }).end(text);
      },
      () => res.writeHead(503, { 'cache-control': 'no-store', 'retry-after': '1' }).end(),
    );
  };
}

export interface JwtVerifierOptions {
  /** A local key set, or the URL of a JWKS (rotor's jwksHandler or any other). */
  jwks: JSONWebKeySet | { url: string | URL; cooldownMs?: number; maxStaleMs?: number; timeoutMs?: number; defaultMaxAgeMs?: number };
  issuer?: string;
  audience?: string | string[];
  /** Default: ES256, RS256 and EdDSA. */
  algorithms?: readonly JwtAlgorithm[];
  /** Clock skew tolerated on exp/nbf/iat (default 60 s). */
  clockToleranceMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** Why a token was refused. */
export type JwtRefusal = 'malformed' | 'unknown-kid' | 'bad-signature' | 'expired' | 'claim-mismatch' | 'algorithm';
export type JwtVerdict = { ok: true; kid: string; payload: JWTPayload } | { ok: false; reason: JwtRefusal };

interface RemoteState {
  resolve: ReturnType<typeof createLocalJWKSet>;
  kids: Set<string>;
  freshUntil: number;
  fetchedAt: number;
  etag?: string;
}

/**
 * Verifies JWTs against a local key set or a remote JWKS. Remote sets are kept for the response's max-age; an
 * unknown kid triggers one refetch (single-flight) at most once per `cooldownMs` (default 30 s), so a flood of made-up
 * kids costs at most one fetch per cooldown. When the JWKS cannot be fetched, the last set keeps verifying for
 * `maxStaleMs` past its max-age (default 10 min), so a JWKS outage is not an authentication outage; after that,
 * `verify` throws JwksUnavailableError.
 */
export class JwtVerifier {
  readonly #options: JwtVerifierOptions;
  readonly #now: () => number;
  readonly #local?: ReturnType<typeof createLocalJWKSet>;
  #remote?: RemoteState;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  #inFlight?: Promise<void>;
  /** JWKS fetches made (tests and metrics). */
  fetches = 0;

  constructor(options: JwtVerifierOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    if ('keys' in options.jwks) this.#local = createLocalJWKSet(options.jwks);
  }

  async verify(token: string): Promise<JwtVerdict> {
    let result: JWTVerifyResult;
    try {
      result = await jwtVerify(token, (header, jws) => this.#key(header, jws), {
        algorithms: [...(this.#options.algorithms ?? JWT_ALGORITHMS)],
        clockTolerance: Math.round((this.#options.clockToleranceMs ?? 60_000) / 1000),
        currentDate: new Date(this.#now()),
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
        ...(this.#options.audience ? { audience: this.#options.audience } : {}),
      });
    } catch (error) {
      if (error instanceof JwksUnavailableError) throw error;
      return { ok: false, reason: refusal(error) };
    }
    return { ok: true, kid: result.protectedHeader.kid ?? '', payload: result.payload };
  }

  async #key(header: Parameters<ReturnType<typeof createLocalJWKSet>>[0], jws: Parameters<ReturnType<typeof createLocalJWKSet>>[1]): Promise<CryptoKey> {
    if (this.#local) return this.#local(header, jws);
    const remote = this.#remote;
    const now = this.#now();
    if (!remote || now >= remote.freshUntil) await this.#refresh(false);
    const kid = header?.kid;
    if (kid !== undefined && !this.#remote!.kids.has(kid)) await this.#refresh(true);
    return this.#remote!.resolve(header, jws);
  }

  /**
   * Refetches within the cooldown's limits (a fetch in flight is joined, never doubled; a failed fetch is not
   * retried before the cooldown either); keeps the last set while it is within its stale bound.
   */
  async #refresh(forUnknownKid: boolean): Promise<void> {
    const { cooldownMs = 30_000, maxStaleMs = 600_000 } = this.#options.jwks as { cooldownMs?: number; maxStaleMs?: number };
    const now = this.#now();
    if (!this.#inFlight && now - this.#lastFetchAt < cooldownMs) {
      if (!this.#remote) throw new JwksUnavailableError(`no JWKS yet, and the last fetch failed ${Math.round((now - this.#lastFetchAt) / 1000)}s ago`);
      if (forUnknownKid || now < this.#remote.freshUntil + maxStaleMs) return;
      throw new JwksUnavailableError(`the last JWKS is older than its max-age plus ${Math.round(maxStaleMs / 1000)}s`);
    }
    this.#inFlight ??= this.#fetch().finally(() => (this.#inFlight = undefined));
    try {
      await this.#inFlight;
    } catch (error) {
      if (this.#remote && this.#now() < this.#remote.freshUntil + maxStaleMs) return;
      throw error instanceof JwksUnavailableError ? error : new JwksUnavailableError('fetch failed', error);
    }
  }

  async #fetch(): Promise<void> {
    const { url, timeoutMs = 5000, defaultMaxAgeMs = 300_000 } = this.#options.jwks as { url: string | URL; timeoutMs?: number; defaultMaxAgeMs?: number };
    this.#lastFetchAt = this.#now();
    this.fetches++;
    const response = await (this.#options.fetch ?? fetch)(url, {
      headers: this.#remote?.etag ? { 'if-none-match': this.#remote.etag } : {},
      signal: AbortSignal.timeout(timeoutMs),
    }).catch((error: unknown) => {
      throw new JwksUnavailableError(`${String(url)} did not answer`, error);
    });
    const maxAge = /max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1];
    const freshUntil = this.#now() + (maxAge !== undefined ? Number(maxAge) * 1000 : defaultMaxAgeMs);
    if (response.status === 304 && this.#remote) {
      this.#remote.freshUntil = freshUntil;
      return;
    }
    if (!response.ok) throw new JwksUnavailableError(`${String(url)} answered ${response.status}`);
    const set = (await response.json().catch(() => undefined)) as JSONWebKeySet | undefined;
    if (!set || !Array.isArray(set.keys)) throw new JwksUnavailableError(`${String(url)} did not answer a JWKS`);
    this.#remote = {
      resolve: createLocalJWKSet(set),
      kids: new Set(set.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string')),
      freshUntil,
      fetchedAt: this.#lastFetchAt,
      ...(response.headers.get('etag') ? { etag: response.headers.get('etag')! } : {}),
    };
  }
}

function refusal(error: unknown): JwtRefusal {
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return 'claim-mismatch';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'algorithm';
  return 'malformed';
}
