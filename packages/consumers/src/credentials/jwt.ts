import type { JWK } from 'jose';

/** The signing algorithms rotor makes keys for (ES256 by default). */
export const JWT_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export const JWT_SIGNING_KEY_ENGINE = 'jwt-signing-key';

/** One signing key of a key set: its id, algorithm, both halves as JWKs, and when rotor made it. */
export interface SigningKey {
  kid: string;
  alg: JwtAlgorithm;
  publicJwk: JWK;
  privateJwk: JWK;
  createdAt: string;
}

/** A new key pair made by jose, its kid the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(alg: JwtAlgorithm, now = new Date()): Promise<SigningKey> {
  const { calculateJwkThumbprint, exportJWK, generateKeyPair } = await import('jose');
  const { publicKey, privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
  });
  const publicJwk = await exportJWK(publicKey);
  const privateJwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg,
    publicJwk: { ...publicJwk, kty: publicJwk.kty!, kid, alg, use: 'sig' },
    privateJwk: { ...privateJwk, kty: privateJwk.kty!, kid, alg },
    createdAt: now.toISOString(),
  };
}

/** The JWKS table: one row per published public key of a service; rotor inserts on set, deletes on retire. */
export const JWKS_TABLE = 'rotor_jwks';
export const JWKS_DDL = `CREATE TABLE IF NOT EXISTS ${JWKS_TABLE} (service text NOT NULL, kid text NOT NULL, jwk jsonb NOT NULL, published_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, kid))`;
/** What a publisher serves: the public keys of a service, oldest first. */
export const JWKS_SQL = `SELECT jwk FROM ${JWKS_TABLE} WHERE service = $1 ORDER BY published_at, kid`;

/** The public fields of a JWK: what may be published (never `d`, `p`, `q`, `dp`, `dq`, `qi`, `k`). */
export function publicPart(key: JWK): JWK {
  const { kty, crv, x, y, n, e, kid, alg, use } = key;
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined),
  ) as JWK;
}
