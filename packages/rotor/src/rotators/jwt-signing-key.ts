import { compact } from '../shared/compact';
import { importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import type { Client } from 'pg';
import {
  generateSigningKey,
  JWKS_DDL,
  JWKS_TABLE,
  JWT_SIGNING_KEY_ENGINE,
  jwtSecretSchema,
  overlapMs,
  prePublicationMs,
  publicPart,
  type JwtSecretShape,
  type SigningKey,
} from 'rotor-consumers/credentials';
import { formatDuration } from 'rotor-consumers/core';
import { InvalidInputError, TargetRejectedError, TestFailedError } from 'rotor-consumers/core';
import { ensureTable, onRegistry, tableExists } from './registry-database';
import type { Rotator } from './rotator';
import { parseJsonObject, validateShape } from './secret-json';

/** A JWT signing key secret: its settings, its key set, and the JSON it came from. */
export interface JwtSigningSecret extends JwtSecretShape {
  json: Record<string, unknown>;
}

export function parseJwtSigningSecret(secretId: string, raw: string): JwtSigningSecret {
  const json = parseJsonObject(secretId, raw);
  return { ...validateShape(secretId, jwtSecretSchema(), json), json };
}

const keysOf = (s: JwtSigningSecret, ...roles: ('next' | 'current' | 'previous')[]) =>
  roles.map((r) => s.keys[r]).filter((k): k is SigningKey => k !== undefined);

/** Publishes `keys` (their public halves) unless their kid is published; returns how many were added. */
async function publish(client: Client, service: string, keys: SigningKey[]): Promise<number> {
  let added = 0;
  for (const key of keys) {
    const { rows } = await client.query<{ jwk: JWK }>(`SELECT jwk FROM ${JWKS_TABLE} WHERE service = $1 AND kid = $2`, [
      service,
      key.kid,
    ]);
    if (rows[0]) {
      if (rows[0].jwk.x !== key.publicJwk.x || rows[0].jwk.n !== key.publicJwk.n)
        throw new TargetRejectedError(service, `kid ${key.kid} is published with another key`);
      continue;
    }
    const { rowCount } = await client.query(
      `INSERT INTO ${JWKS_TABLE} (service, kid, jwk) VALUES ($1, $2, $3) ON CONFLICT (service, kid) DO NOTHING`,
      [service, key.kid, JSON.stringify(publicPart(key.publicJwk))],
    );
    added += rowCount ?? 0;
  }
  return added;
}

/**
 * JWT signing keys (kind `jwt-signing-key`): a key set of `next`, `current` and `previous` made with jose (ES256 by
 * default; RS256 and EdDSA), its public keys published in a PostgreSQL JWKS table that rotor's `jwksHandler`
 * serves. A rotation makes the old `next` current, the old `current` previous, and a new `next`:
 * - `set` publishes the new set's keys (nothing signs with the new `next`);
 * - after `test`, the rotation waits until the key about to sign has been published for `prePublication` (the JWKS
 *   cache lifetime plus the verifiers' refetch cooldown): usually long ago, since it was published as `next` by the
 *   rotation before; always on a secret's first rotation;
 * - `finish` switches signers (they read AWSCURRENT); the previous key stays published through grace, which
 *   `prepare` refuses shorter than the longest token's life plus clock skew;
 * - `retire` unpublishes this secret's other keys (the previous set's), keeping `current` and `next`.
 * Rollback makes the old key set current again and unpublishes only keys that never signed (a `next` given up).
 */
export const jwtSigningKeyRotator: Rotator<JwtSigningSecret> = {
  kind: 'jwt-signing-key',
  engines: [JWT_SIGNING_KEY_ENGINE],

  parse: parseJwtSigningSecret,

  target: (secret) => `jwks-registry://${secret.registry}`,

  async check(secretId, { current }, context, rotation) {
    if (rotation && rotation.graceMs < overlapMs(current)) {
      throw new InvalidInputError(
        `secret ${secretId}: grace ${formatDuration(rotation.graceMs)} is shorter than tokens.maxLifetime ${formatDuration(current.tokens.maxLifetime)} + ` +
          `tokens.clockSkew ${formatDuration(current.tokens.clockSkew)} = ${formatDuration(overlapMs(current))}: tokens signed just before finish would stop verifying while still valid`,
      );
    }
    const published = await onRegistry(secretId, current.registry, context, async (client) => {
      if (!(await tableExists(client, JWKS_TABLE))) return 0;
      const kids = keysOf(current, 'current', 'next').map((k) => k.kid);
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${JWKS_TABLE} WHERE service = $1 AND kid = ANY($2)`,
        [current.service, kids],
      );
      return rows[0]?.n ?? 0;
    });
    return current.keys.current
      ? `registry-ready-${published}-of-${keysOf(current, 'current', 'next').length}-published`
      : 'registry-ready-no-key-yet';
  },

  async nextValue(_secretId, current) {
    const now = new Date();
    const signing = current.keys.next ?? (await generateSigningKey(current.alg, now));
    const keys = {
      ...compact({ previous: current.keys.current }),
      current: signing,
      next: await generateSigningKey(current.alg, now),
    };
    return JSON.stringify({ ...current.json, keys });
  },

  async set(secretId, { pending, current }, context) {
    return onRegistry(secretId, pending.registry, context, async (client) => {
      await ensureTable(client, JWKS_TABLE, JWKS_DDL);
      // A key set rotor adopts (its current key signing before rotor managed it) is published too.
      const added = await publish(client, pending.service, [
        ...keysOf(current, 'current', 'next'),
        ...keysOf(pending, 'previous', 'current', 'next'),
      ]);
      return added > 0 ? `published-${added}` : 'already-set';
    });
  },

  async test(secretId, value, context) {
    const signer = value.keys.current;
    // A key set without a key yet (before the first rotation, which compensation may restore) signs nothing.
    if (!signer) return;
    const published = await onRegistry(secretId, value.registry, context, async (client) => {
      const { rows } = await client.query<{ kid: string; jwk: JWK }>(
        `SELECT kid, jwk FROM ${JWKS_TABLE} WHERE service = $1 AND kid = ANY($2)`,
        [value.service, keysOf(value, 'current', 'next').map((k) => k.kid)],
      );
      return new Map(rows.map((r) => [r.kid, r.jwk]));
    });
    for (const key of keysOf(value, 'current', 'next'))
      if (!published.has(key.kid)) throw new TestFailedError(secretId, `kid ${key.kid} is not published`);
    // A token signed with the private key verifies with the published public one.
    const token = await new SignJWT({ probe: true })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid })
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(await importJWK(signer.privateJwk, signer.alg));
    try {
      await jwtVerify(token, await importJWK(published.get(signer.kid)!, signer.alg), { algorithms: [signer.alg] });
    } catch {
      throw new TestFailedError(secretId, `kid ${signer.kid}: a token it signs does not verify with the published key`);
    }
  },

  async holdBeforeFinish(secretId, pending, context) {
    const signer = pending.keys.current!;
    // The database's clock on both sides: when the key was published, and now.
    return onRegistry(secretId, pending.registry, context, async (client) => {
      const { rows } = await client.query<{ wait_ms: number }>(
        `SELECT GREATEST(0, $3::float8 - EXTRACT(EPOCH FROM (now() - published_at)) * 1000)::float8 AS wait_ms FROM ${JWKS_TABLE} WHERE service = $1 AND kid = $2`,
        [pending.service, signer.kid, prePublicationMs(pending)],
      );
      if (!rows[0]) throw new TestFailedError(secretId, `kid ${signer.kid} is not published`);
      return rows[0].wait_ms;
    });
  },

  async restore(secretId, { want, via }, context) {
    return onRegistry(secretId, want.registry, context, async (client) => {
      await ensureTable(client, JWKS_TABLE, JWKS_DDL);
      const added = await publish(client, want.service, keysOf(want, 'current', 'next'));
      // Only a key that never signed may go: one that was `next` only, in the versions given up, and not wanted.
      const signed = new Set([
        ...(want.keys.current ? [want.keys.current.kid] : []),
        ...via.flatMap((v) => keysOf(v, 'current', 'previous').map((k) => k.kid)),
      ]);
      const keep = new Set(keysOf(want, 'previous', 'current', 'next').map((k) => k.kid));
      const unused = via
        .flatMap((v) => keysOf(v, 'next').map((k) => k.kid))
        .filter((kid) => !signed.has(kid) && !keep.has(kid));
      const { rowCount } =
        unused.length > 0
          ? await client.query(`DELETE FROM ${JWKS_TABLE} WHERE service = $1 AND kid = ANY($2)`, [want.service, unused])
          : { rowCount: 0 };
      return `restored-${added}-published-${rowCount ?? 0}-unused-removed`;
    });
  },

  async retire(secretId, { previous, current }, context) {
    // Only this secret's keys: the previous set's and the new set's `previous`, all but `current` and `next`.
    // Other secrets may publish under the same service.
    const keep = new Set(keysOf(current, 'current', 'next').map((k) => k.kid));
    const gone = [
      ...new Set(
        [...(previous ? keysOf(previous, 'previous', 'current', 'next') : []), ...keysOf(current, 'previous')].map(
          (k) => k.kid,
        ),
      ),
    ].filter((kid) => !keep.has(kid));
    if (gone.length === 0) return 'nothing-to-retire';
    const { rowCount } = await onRegistry(secretId, current.registry, context, (client) =>
      client.query(`DELETE FROM ${JWKS_TABLE} WHERE service = $1 AND kid = ANY($2)`, [current.service, gone]),
    );
    return rowCount ? 'previous-key-unpublished' : 'already-retired';
  },
};
