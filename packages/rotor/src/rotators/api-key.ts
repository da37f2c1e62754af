import type { Client } from 'pg';
import { z } from 'zod';
import {
  API_KEY_PREFIX,
  API_KEY_SERVICE,
  apiKeyDigest,
  digestMatches,
  generateApiKey,
  LOOKUP_SQL,
  parseApiKey,
  parsePepperSet,
  REGISTRY_DDL,
  REGISTRY_TABLE,
  type PepperSet,
  type RegistryRow,
} from 'rotor-consumers/credentials';
import { CredentialsRejectedError, InvalidSecretError, TestFailedError } from 'rotor-consumers/core';
import { ensureTable, onRegistry, tableExists } from './registry-database';
import type { Rotator, RotatorContext } from './rotator';
import { parseJsonObject, validateShape } from './secret-json';

export const API_KEY_ENGINE = 'api-key';

const secretId = z.string().min(1, 'must not be empty').max(2048);
const apiKeySecretSchema = z.looseObject({
  engine: z.literal(API_KEY_ENGINE),
  service: z.string().regex(API_KEY_SERVICE, 'must be 1 to 63 of a-z, 0-9, ., _ and - starting with a letter or digit'),
  prefix: z.string().regex(API_KEY_PREFIX, 'must be 2 to 12 of a-z and 0-9 starting with a letter'),
  registry: secretId.describe('the id or ARN of the PostgreSQL login secret of the registry database'),
  pepper: secretId.describe('the id or ARN of the pepper secret'),
  keyId: z.string().optional(),
  key: z.string().optional(),
});

/** An API key secret: where its digests live, and the key clients use (absent before the first rotation). */
export interface ApiKeySecret {
  json: Record<string, unknown>;
  service: string;
  prefix: string;
  registry: string;
  pepper: string;
  /** The key and its id; absent in a secret made only to be rotated the first time. */
  current?: { keyId: string; key: string };
}

export function parseApiKeySecret(id: string, raw: string): ApiKeySecret {
  const json = parseJsonObject(id, raw);
  const shape = validateShape(id, apiKeySecretSchema, json);
  const base = { json, service: shape.service, prefix: shape.prefix, registry: shape.registry, pepper: shape.pepper };
  if (shape.key === undefined && shape.keyId === undefined) return base;
  const parsed = parseApiKey(shape.key, shape.prefix);
  if (!parsed.ok)
    throw new InvalidSecretError(id, [`key: is not a ${shape.prefix}_ key of rotor's format (${parsed.problem})`]);
  if (parsed.keyId !== shape.keyId) throw new InvalidSecretError(id, ['keyId: does not match the key']);
  return { ...base, current: { keyId: parsed.keyId, key: shape.key! } };
}

async function pepperSet(id: string, secret: ApiKeySecret, context: RotatorContext): Promise<PepperSet> {
  const parsed = parsePepperSet(await context.readCurrent(secret.pepper));
  if (!parsed.ok)
    throw new InvalidSecretError(
      secret.pepper,
      parsed.problems.map((p) => `(pepper of ${id}) ${p}`),
    );
  return parsed.set;
}

async function lookup(client: Client, service: string, keyId: string): Promise<RegistryRow | undefined> {
  const { rows } = await client.query<RegistryRow>(LOOKUP_SQL, [service, keyId]);
  return rows[0];
}

/** Whether `key` verifies against the registry exactly as ApiKeyVerifier checks it. */
function verifies(row: RegistryRow | undefined, peppers: PepperSet, key: string): boolean {
  const pepper = row && Object.hasOwn(peppers.peppers, row.pepper_id) ? peppers.peppers[row.pepper_id] : undefined;
  return pepper !== undefined && digestMatches(pepper, key, row!.digest);
}

/** Registers `key` (its digest under the current pepper) unless a row for its id exists; true when it inserted. */
async function register(
  client: Client,
  service: string,
  peppers: PepperSet,
  key: { keyId: string; key: string },
): Promise<boolean> {
  const { rowCount } = await client.query(
    `INSERT INTO ${REGISTRY_TABLE} (service, key_id, pepper_id, digest) VALUES ($1, $2, $3, $4) ON CONFLICT (service, key_id) DO NOTHING`,
    [service, key.keyId, peppers.current, apiKeyDigest(peppers.peppers[peppers.current]!, key.key)],
  );
  return rowCount === 1;
}

async function revoke(client: Client, service: string, keyId: string): Promise<boolean> {
  const { rowCount } = await client.query(`DELETE FROM ${REGISTRY_TABLE} WHERE service = $1 AND key_id = $2`, [
    service,
    keyId,
  ]);
  return (rowCount ?? 0) > 0;
}

/**
 * API keys (kind `api-key`): one key per secret, which clients read as AWSCURRENT; verifiers hold only HMAC-SHA256
 * digests, keyed with a pepper from the store, in a PostgreSQL registry rotor writes. `set` registers the new key
 * beside the current one, so both verify through grace; `retire` deletes the previous key's row (revocation);
 * `restore` registers the wanted key again and revokes the ones given up. A secret without a key yet gets its
 * first one from its first rotation.
 */
export const apiKeyRotator: Rotator<ApiKeySecret> = {
  kind: 'api-key',
  engines: [API_KEY_ENGINE],

  parse: parseApiKeySecret,

  target: (secret) => `api-key-registry://${secret.registry}`,

  async check(id, { current }, context) {
    await pepperSet(id, current, context);
    const registered = await onRegistry(id, current.registry, context, async (client) =>
      (await tableExists(client, REGISTRY_TABLE)) && current.current
        ? (await lookup(client, current.service, current.current.keyId)) !== undefined
        : false,
    );
    return current.current
      ? registered
        ? 'registry-and-key-ready'
        : 'registry-ready-key-unregistered'
      : 'registry-ready-no-key-yet';
  },

  nextValue(_id, current) {
    const { keyId, key } = generateApiKey(current.prefix);
    return JSON.stringify({ ...current.json, keyId, key });
  },

  async set(id, { pending, current }, context) {
    const peppers = await pepperSet(id, current, context);
    return onRegistry(id, current.registry, context, async (client) => {
      await ensureTable(client, REGISTRY_TABLE, REGISTRY_DDL);
      // A key rotor adopts (made before rotor managed it) is registered too, so it keeps verifying through grace. The
      // store's AWSCURRENT is what clients use: revoke a key by rotating (docs/api-keys.md), not by deleting its row.
      if (current.current) await register(client, current.service, peppers, current.current);
      const row = await lookup(client, pending.service, pending.current!.keyId);
      if (row) {
        if (verifies(row, peppers, pending.current!.key)) return 'already-set';
        throw new CredentialsRejectedError(id, `key id ${pending.current!.keyId} is registered with another digest`);
      }
      await register(client, pending.service, peppers, pending.current!);
      return 'key-registered';
    });
  },

  async test(id, value, context) {
    // As a verifier checks it: the format and checksum, then the registry row's digest under its pepper. A version
    // without a key yet (before the first rotation, which compensation and rollback may restore) grants nothing.
    if (!value.current) return;
    const shape = parseApiKey(value.current.key, value.prefix);
    if (!shape.ok)
      throw new TestFailedError(id, `key ${value.current.keyId} is refused before lookup (${shape.problem})`);
    const peppers = await pepperSet(id, value, context);
    const row = await onRegistry(id, value.registry, context, (client) =>
      lookup(client, value.service, value.current!.keyId),
    );
    if (!verifies(row, peppers, value.current.key))
      throw new TestFailedError(id, `key ${value.current.keyId} does not verify against the registry`);
  },

  async restore(id, { want, via }, context) {
    const peppers = await pepperSet(id, want, context);
    return onRegistry(id, want.registry, context, async (client) => {
      await ensureTable(client, REGISTRY_TABLE, REGISTRY_DDL);
      if (want.current) await register(client, want.service, peppers, want.current);
      let revoked = 0;
      for (const other of via)
        if (
          other.current &&
          other.current.keyId !== want.current?.keyId &&
          (await revoke(client, other.service, other.current.keyId))
        )
          revoked++;
      return revoked > 0 ? `restored-and-revoked-${revoked}` : 'restored';
    });
  },

  async retire(id, { previous, current }, context) {
    if (!previous?.current || previous.current.keyId === current.current?.keyId) return 'nothing-to-retire';
    const revoked = await onRegistry(id, current.registry, context, (client) =>
      revoke(client, previous.service, previous.current!.keyId),
    );
    return revoked ? 'previous-key-revoked' : 'already-retired';
  },
};
