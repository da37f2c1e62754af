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
    | {
        url: string | URL;
        cooldownMs?: number;
        maxStaleMs?: number;
        timeoutMs?: number;
        defaultMaxAgeMs?: number;
        /**
         * The longest a fetched JWKS is trusted before it is fetched again (default 15 min), whatever `max-age` it
         * came with: a key removed from the JWKS stops verifying within it (`max-age=1y` would keep it for a year).
         */
        maxCacheMs?: number;
      };
  issuer?: string;
  audience?: string | string[];
  /** Default: ES256, RS256 and EdDSA. */
  algorithms?: readonly JwtAlgorithm[];
  /** Clock skew tolerated on exp/nbf/iat (default 60 s). */
  clockToleranceMs?: number;
  /**
   * The longest a token may still have to live (default 24 h): a token whose `exp` is further out is refused
   * (`lifetime`), as is one without `exp` (`claim-mismatch`): a leaked token must expire, and soon.
   */
  maxTokenLifetimeMs?: number;
  /** With `iat`: the oldest a token may be (jose's maxTokenAge); off by default. */
  maxTokenAgeMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** Why a token was refused. */
export type JwtRefusal =
  'malformed' | 'unknown-kid' | 'bad-signature' | 'expired' | 'claim-mismatch' | 'algorithm' | 'lifetime';
export type JwtVerdict = { ok: true; kid: string; payload: JWTPayload } | { ok: false; reason: JwtRefusal };

interface RemoteState {
  resolve: LocalKeySet;
  kids: Set<string>;
  freshUntil: number;
  fetchedAt: number;
  etag?: string;
}

/**
 * Verifies JWTs against a local key set or a remote JWKS, with jose's jwtVerify. A token must carry `exp`, and no
 * more than `maxTokenLifetimeMs` of life. Remote sets are kept for the response's max-age (at most `maxCacheMs`); an
 * unknown kid triggers one refetch (single-flight) at most once per `cooldownMs` (default 30 s), so a flood of made-up
 * kids costs at most one fetch per cooldown. When the JWKS cannot be fetched, the last set keeps verifying for
 * `maxStaleMs` past its max-age (default 10 min), so a JWKS outage is not an authentication outage; after that,
 * `verify` throws JwksUnavailableError.
 *
 * Why not jose's createRemoteJWKSet (its cooldown and single-flight are the same idea): it does not serve the last
 * set through a JWKS outage, revalidate with ETag, or follow the server's max-age; what is kept here is only that.
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
        requiredClaims: ['exp'],
        ...(this.#options.maxTokenAgeMs !== undefined
          ? { maxTokenAge: Math.round(this.#options.maxTokenAgeMs / 1000) }
          : {}),
        ...(this.#options.issuer ? { issuer: this.#options.issuer } : {}),
        ...(this.#options.audience ? { audience: this.#options.audience } : {}),
      });
    } catch (error) {
      if (error instanceof JwksUnavailableError) throw error;
      return { ok: false, reason: refusal(error, jose.errors) };
    }
    const maxLifetimeMs = this.#options.maxTokenLifetimeMs ?? 24 * 3600_000;
    if (result.payload.exp! * 1000 - this.#now() > maxLifetimeMs) return { ok: false, reason: 'lifetime' };
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
      maxCacheMs = 900_000,
    } = this.#options.jwks as { url: string | URL; timeoutMs?: number; defaultMaxAgeMs?: number; maxCacheMs?: number };
    this.#lastFetchAt = this.#now();
    this.fetches++;
    const signal = AbortSignal.timeout(timeoutMs);
    const response = await (this.#options.fetch ?? fetch)(url, {
      headers: {
        accept: 'application/jwk-set+json, application/json',
        ...(this.#remote?.etag ? { 'if-none-match': this.#remote.etag } : {}),
      },
      signal,
    }).catch((error: unknown) => {
      throw new JwksUnavailableError(`${String(url)} did not answer`, error);
    });
    const maxAge = /max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1];
    const freshUntil =
      this.#now() + Math.min(maxCacheMs, maxAge !== undefined ? Number(maxAge) * 1000 : defaultMaxAgeMs);
    if (response.status === 304 && this.#remote) {
      this.#remote.freshUntil = freshUntil;
      return;
    }
    if (!response.ok) throw new JwksUnavailableError(`${String(url)} answered ${response.status}`);
    const body = await boundedText(response, MAX_JWKS_BYTES).catch((error: unknown) => {
      throw new JwksUnavailableError(`${String(url)}: ${(error as Error).message}`, error);
    });
    let set: JSONWebKeySet | undefined;
    try {
      set = JSON.parse(body) as JSONWebKeySet;
    } catch {
      set = undefined;
    }
    if (!set || !Array.isArray(set.keys)) throw new JwksUnavailableError(`${String(url)} did not answer a JWKS`);
    if (set.keys.length > MAX_JWKS_KEYS)
      throw new JwksUnavailableError(`${String(url)} answered ${set.keys.length} keys; at most ${MAX_JWKS_KEYS}`);
    this.#remote = {
      resolve: (await loadJose()).createLocalJWKSet(set),
      kids: new Set(set.keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string')),
      freshUntil,
      fetchedAt: this.#lastFetchAt,
      ...(response.headers.get('etag') ? { etag: response.headers.get('etag')! } : {}),
    };
  }
}

/**
 * The largest JWKS body read (256 KiB: a hundred RSA-4096 public keys take about 80 KiB) and the most keys kept: a
 * JWKS endpoint that answers more (broken, or hostile) costs a bounded read, never the verifier's memory or CPU.
 */
const MAX_JWKS_BYTES = 256 * 1024;
const MAX_JWKS_KEYS = 100;

/** The body as text, refused once it is larger than `limit` bytes (the declared length first, then as it streams). */
async function boundedText(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) throw new Error(`the JWKS is larger than ${limit / 1024} KiB (${declared} bytes)`);
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`the JWKS is larger than ${limit / 1024} KiB`);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks)); // as response.json() reads it: a BOM is dropped
}

function refusal(error: unknown, errors: JoseErrors): JwtRefusal {
  if (error instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return 'claim-mismatch';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'algorithm';
  return 'malformed';
}
