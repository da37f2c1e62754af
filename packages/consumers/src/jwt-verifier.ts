import type { CryptoKey, JSONWebKeySet, JWTPayload, JWTVerifyResult } from 'jose';
import { JWT_ALGORITHMS, type JwtAlgorithm } from './credentials/jwt';
import { ErrorType, RotorError } from './errors';
import { loadJose } from './lazy';

type Jose = Awaited<ReturnType<typeof loadJose>>;
type LocalKeySet = ReturnType<Jose['createLocalJWKSet']>;
type JoseErrors = Jose['errors'];

/** The JWKS could not be fetched and the last copy is older than its stale bound: verification cannot be decided. */
export class JwksUnavailableError extends RotorError {
  constructor(detail: string, cause?: unknown) {
    super(ErrorType.Unavailable, `JWKS unavailable: ${detail}`, undefined, { cause });
  }
}

export interface JwtVerifierOptions {
  /** A local key set, or the URL of a JWKS (rotor's jwksHandler or any other). */
  jwks:
    | JSONWebKeySet
    | { url: string | URL; cooldownMs?: number; maxStaleMs?: number; timeoutMs?: number; defaultMaxAgeMs?: number };
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
  resolve: LocalKeySet;
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
  #local?: LocalKeySet;
  #remote?: RemoteState;
  #lastFetchAt = Number.NEGATIVE_INFINITY;
  #inFlight?: Promise<void>;
  /** JWKS fetches made (tests and metrics). */
  fetches = 0;

  constructor(options: JwtVerifierOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async verify(token: string): Promise<JwtVerdict> {
    const jose = await loadJose();
    let result: JWTVerifyResult;
    try {
      result = await jose.jwtVerify(token, (header, jws) => this.#key(header, jws), {
        algorithms: [...(this.#options.algorithms ?? JWT_ALGORITHMS)],
        clockTolerance: Math.round((this.#options.clockToleranceMs ?? 60_000) / 1000),
        currentDate: new Date(this.#now()),
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
        ...(this.#options.audience ? { audience: this.#options.audience } : {}),
      });
    } catch (error) {
      if (error instanceof JwksUnavailableError) throw error;
      return { ok: false, reason: refusal(error, jose.errors) };
    }
    return { ok: true, kid: result.protectedHeader.kid ?? '', payload: result.payload };
  }

  async #key(header: Parameters<LocalKeySet>[0], jws: Parameters<LocalKeySet>[1]): Promise<CryptoKey> {
    const { jwks } = this.#options;
    if ('keys' in jwks) {
      this.#local ??= (await loadJose()).createLocalJWKSet(jwks);
      return this.#local(header, jws);
    }
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
    const { cooldownMs = 30_000, maxStaleMs = 600_000 } = this.#options.jwks as {
      cooldownMs?: number;
      maxStaleMs?: number;
    };
    const now = this.#now();
    if (!this.#inFlight && now - this.#lastFetchAt < cooldownMs) {
      if (!this.#remote)
        throw new JwksUnavailableError(
          `no JWKS yet, and the last fetch failed ${Math.round((now - this.#lastFetchAt) / 1000)}s ago`,
        );
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
    const {
      url,
      timeoutMs = 5000,
      defaultMaxAgeMs = 300_000,
    } = this.#options.jwks as { url: string | URL; timeoutMs?: number; defaultMaxAgeMs?: number };
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
      resolve: (await loadJose()).createLocalJWKSet(set),
      kids: new Set(set.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string')),
      freshUntil,
      fetchedAt: this.#lastFetchAt,
      ...(response.headers.get('etag') ? { etag: response.headers.get('etag')! } : {}),
    };
  }
}

function refusal(error: unknown, errors: JoseErrors): JwtRefusal {
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return 'claim-mismatch';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'algorithm';
  return 'malformed';
}
