import type { CryptoKey, JWTPayload } from 'jose';
import type { JwtAlgorithm } from './credentials/jwt';
import { ErrorType, RotorError } from './errors';
import { jwtSecretSchema } from './credentials/jwt-schema';
import { loadJose } from './lazy';
import type { SecretCache } from './secret-cache';

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
      throw new RangeError(
        `expiresInMs ${lifetime} is not within 1 to ${signing.maxLifetimeMs} (tokens.maxLifetime of ${this.#options.secretId})`,
      );
    }
    const { SignJWT } = await loadJose();
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'JWT' })
      .setIssuedAt(now)
      .setExpirationTime(now + Math.floor(lifetime / 1000));
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
      parsed = jwtSecretSchema().safeParse(JSON.parse(snapshot.value));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success)
      throw new RotorError(
        ErrorType.InvalidSecret,
        `secret ${this.#options.secretId} is not a valid jwt-signing-key secret`,
        this.#options.secretId,
      );
    const current = parsed.data.keys.current;
    if (!current)
      throw new RotorError(
        ErrorType.InvalidSecret,
        `secret ${this.#options.secretId} has no current key yet: rotate it once`,
        this.#options.secretId,
      );
    this.#signing = {
      versionId: snapshot.versionId,
      kid: current.kid,
      alg: current.alg,
      key: await (await loadJose()).importJWK(current.privateJwk, current.alg),
      maxLifetimeMs: parsed.data.tokens.maxLifetime,
    };
    return this.#signing;
  }
}
