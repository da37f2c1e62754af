import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { z } from 'zod';
import { formatDuration, parseDuration } from '../shared/duration';

/** The signing algorithms rotor makes keys for (ES256 by default). */
export const JWT_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export const JWT_SIGNING_KEY_ENGINE = 'jwt-signing-key';

const jwk = z.looseObject({ kty: z.string() });
const signingKey = z.object({
  kid: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be 1 to 128 of A-Z, a-z, 0-9, _ and -'),
  alg: z.enum(JWT_ALGORITHMS),
  publicJwk: jwk,
  privateJwk: jwk.refine((k) => 'd' in k, 'must be a private key (with d)'),
  createdAt: z.string(),
});
/** One signing key of a key set: its id, algorithm, both halves as JWKs, and when rotor made it. */
export type SigningKey = z.output<typeof signingKey> & { publicJwk: JWK; privateJwk: JWK };

const duration = (what: string) =>
  z.string().transform((text, ctx) => {
    try {
      return parseDuration(text, what);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(`${what}: `, '') });
      return z.NEVER;
    }
  });

/**
 * A JWT signing key secret: the key set (`next` published ahead, `current` signing, `previous` still published for
 * tokens it signed), where its public keys are published, and the timings that make a rotation safe for every
 * verifier: how long verifiers may cache the JWKS (`jwks.maxAge`, the `Cache-Control` max-age the publisher serves),
 * how soon they may refetch it for an unknown kid (`jwks.cooldown`), and how long a token lives (`tokens`).
 */
export const jwtSecretSchema = z
  .looseObject({
    engine: z.literal(JWT_SIGNING_KEY_ENGINE),
    service: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1 to 63 of a-z, 0-9, ., _ and - starting with a letter or digit'),
    alg: z.enum(JWT_ALGORITHMS).default('ES256'),
    registry: z.string().min(1, 'must not be empty').max(2048),
    jwks: z.object({ maxAge: duration('jwks.maxAge'), cooldown: duration('jwks.cooldown') }),
    tokens: z.object({ maxLifetime: duration('tokens.maxLifetime'), clockSkew: duration('tokens.clockSkew').default(60_000) }),
    prePublication: duration('prePublication').optional(),
    keys: z.object({ next: signingKey.optional(), current: signingKey.optional(), previous: signingKey.optional() }).default({}),
  })
  .superRefine((s, ctx) => {
    const needed = s.jwks.maxAge + s.jwks.cooldown;
    if (s.prePublication !== undefined && s.prePublication < needed) {
      ctx.addIssue({
        code: 'custom',
        path: ['prePublication'],
        message:
          `${formatDuration(s.prePublication)} is shorter than jwks.maxAge ${formatDuration(s.jwks.maxAge)} + jwks.cooldown ${formatDuration(s.jwks.cooldown)} ` +
          `= ${formatDuration(needed)}: a verifier that cached the JWKS just before the key was published would refuse tokens signed with it`,
      });
    }
    if (s.tokens.maxLifetime <= 0) ctx.addIssue({ code: 'custom', path: ['tokens', 'maxLifetime'], message: 'must be more than 0s' });
  });

export type JwtSecretShape = z.output<typeof jwtSecretSchema>;

/** How long a key must be published before it signs: at least the JWKS cache lifetime plus the refetch cooldown. */
export const prePublicationMs = (s: Pick<JwtSecretShape, 'jwks' | 'prePublication'>) => s.prePublication ?? s.jwks.maxAge + s.jwks.cooldown;

/** How long the previous key must stay published after the switch: the longest token's life plus clock skew. */
export const overlapMs = (s: Pick<JwtSecretShape, 'tokens'>) => s.tokens.maxLifetime + s.tokens.clockSkew;

/** A new key pair made by jose, its kid the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(alg: JwtAlgorithm, now = new Date()): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const publicJwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { kid, alg, publicJwk: { ...publicJwk, kty: publicJwk.kty!, kid, alg, use: 'sig' }, privateJwk: { ...privateJwk, kty: privateJwk.kty!, kid, alg }, createdAt: now.toISOString() };
}

/** The JWKS table: one row per published public key of a service; rotor inserts on set, deletes on retire. */
export const JWKS_TABLE = 'rotor_jwks';
export const JWKS_DDL = `CREATE TABLE IF NOT EXISTS ${JWKS_TABLE} (service text NOT NULL, kid text NOT NULL, jwk jsonb NOT NULL, published_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, kid))`;
/** What a publisher serves: the public keys of a service, oldest first. */
export const JWKS_SQL = `SELECT jwk FROM ${JWKS_TABLE} WHERE service = $1 ORDER BY published_at, kid`;

/** The public fields of a JWK: what may be published (never `d`, `p`, `q`, `dp`, `dq`, `qi`, `k`). */
export function publicPart(key: JWK): JWK {
  const { kty, crv, x, y, n, e, kid, alg, use } = key;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined)) as JWK;
}
