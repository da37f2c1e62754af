import { createHash, createHmac, randomInt, timingSafeEqual } from 'node:crypto';

/**
 * rotor's API key format, shared by the rotator (which makes keys and registers their digests) and the verifier
 * (which checks them): `<prefix>_<key id><secret><checksum>`, for instance `bill_3kTqZ0pWfA…`.
 *
 * - `prefix`: 2 to 12 of a-z and 0-9 starting with a letter, chosen per service, so secret scanners can match
 *   leaked keys (`bill_[0-9A-Za-z]{48}`);
 * - key id: 10 base62 characters, the registry's lookup key (not secret: logs and audit rows may show it);
 * - secret: 32 base62 characters from the OS's CSPRNG (about 190 bits);
 * - checksum: the first 32 bits of SHA-256 over everything before it, as 6 base62 characters, so a verifier
 *   refuses a mistyped or made-up key before any lookup, and a scanner can tell a real key from lookalike text.
 *
 * The checksum is not a signature: anyone can compute it. What authenticates a key is its digest in the registry.
 */
export const API_KEY_PREFIX = /^[a-z][a-z0-9]{1,11}$/;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KEY_ID_LENGTH = 10;
const SECRET_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
const BODY_LENGTH = KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;
/** Longer input is refused unread: the longest valid key is 12 + 1 + 48 characters. */
export const MAX_API_KEY_LENGTH = 12 + 1 + BODY_LENGTH;
const SHAPE = new RegExp(`^([a-z][a-z0-9]{1,11})_([0-9A-Za-z]{${BODY_LENGTH}})$`);

function randomBase62(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += BASE62[randomInt(BASE62.length)];
  return out;
}

function checksum(text: string): string {
  let n = createHash('sha256').update(text).digest().readUInt32BE(0);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** A new key with `prefix` (API_KEY_PREFIX) and its key id. */
export function generateApiKey(prefix: string): { keyId: string; key: string } {
  if (!API_KEY_PREFIX.test(prefix))
    throw new RangeError(
      `API key prefix ${JSON.stringify(prefix)} is not 2 to 12 of a-z and 0-9 starting with a letter`,
    );
  const keyId = randomBase62(KEY_ID_LENGTH);
  return { keyId, key: formatApiKey(prefix, keyId, randomBase62(SECRET_LENGTH)) };
}

/** The key made of these parts with its checksum (tests build lookalike keys with it; rotor uses generateApiKey). */
export function formatApiKey(prefix: string, keyId: string, secretPart: string): string {
  const head = `${prefix}_${keyId}${secretPart}`;
  return head + checksum(head);
}

/** Why a presented key was refused before any lookup. */
export type ApiKeyShapeProblem = 'missing' | 'too-long' | 'malformed' | 'wrong-prefix' | 'bad-checksum';

/**
 * The key id of a well-formed key with `prefix`, or why it is not one. Cheap and constant in the key's length
 * bound: nothing longer than MAX_API_KEY_LENGTH is even matched.
 */
export function parseApiKey(
  presented: unknown,
  prefix: string,
): { ok: true; keyId: string } | { ok: false; problem: ApiKeyShapeProblem } {
  if (typeof presented !== 'string' || presented.length === 0) return { ok: false, problem: 'missing' };
  if (presented.length > MAX_API_KEY_LENGTH) return { ok: false, problem: 'too-long' };
  const match = SHAPE.exec(presented);
  if (!match) return { ok: false, problem: 'malformed' };
  if (match[1] !== prefix) return { ok: false, problem: 'wrong-prefix' };
  const head = presented.slice(0, -CHECKSUM_LENGTH);
  if (checksum(head) !== presented.slice(-CHECKSUM_LENGTH)) return { ok: false, problem: 'bad-checksum' };
  return { ok: true, keyId: match[2]!.slice(0, KEY_ID_LENGTH) };
}

/**
 * The peppers HMAC digests are keyed with, by id, as the pepper secret holds them:
 * `{"current": "p2", "peppers": {"p1": "<base64>", "p2": "<base64>"}}`. New digests use `current`; a digest
 * records its pepper's id, so a pepper rotates by adding one and making it current (old digests keep verifying
 * until their keys rotate), and an id no digest names can then be removed.
 */
export interface PepperSet {
  current: string;
  peppers: Record<string, Buffer>;
}

/** The pepper secret's JSON, or a list of what is wrong with it (never quoting a pepper). */
export function parsePepperSet(raw: string): { ok: true; set: PepperSet } | { ok: false; problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, problems: ['is not JSON'] };
  }
  const problems: string[] = [];
  const object =
    typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  if (!object) return { ok: false, problems: ['is not a JSON object'] };
  const peppers: Record<string, Buffer> = Object.create(null) as Record<string, Buffer>;
  const given = object.peppers;
  if (typeof given !== 'object' || given === null || Array.isArray(given))
    problems.push('peppers: must be an object of id to base64 pepper');
  else {
    for (const [id, value] of Object.entries(given)) {
      // Never quoted: a pepper pasted in the wrong place must not reach an error message.
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) problems.push('peppers: an id is not 1 to 32 of A-Z, a-z, 0-9, _ and -');
      else if (typeof value !== 'string') problems.push(`peppers.${id}: must be a base64 string`);
      else {
        const bytes = Buffer.from(value, 'base64');
        if (bytes.length < 32)
          problems.push(`peppers.${id}: must be at least 32 bytes of base64 (has ${bytes.length})`);
        else peppers[id] = bytes;
      }
    }
  }
  const current = object.current;
  if (typeof current !== 'string') problems.push('current: must name one of peppers');
  else if (problems.length === 0 && !Object.hasOwn(peppers, current))
    problems.push(`current: does not name one of peppers (${Object.keys(peppers).join(', ') || 'none'})`);
  return problems.length > 0 ? { ok: false, problems } : { ok: true, set: { current: current as string, peppers } };
}

/** HMAC-SHA256 of the whole key under `pepper`: what the registry stores instead of the key. */
export function apiKeyDigest(pepper: Buffer, key: string): Buffer {
  return createHmac('sha256', pepper).update(key, 'utf8').digest();
}

/** True when `key` hashes to `digest` under `pepper`, compared in constant time. */
export function digestMatches(pepper: Buffer, key: string, digest: Buffer): boolean {
  const actual = apiKeyDigest(pepper, key);
  return digest.length === actual.length && timingSafeEqual(actual, digest);
}

/**
 * The registry: one table of a fixed name in the registry's database (its schema is the login's `search_path`), so
 * no identifier ever comes from input. Rows exist for the keys that verify; revoking a key deletes its row.
 */
export const REGISTRY_TABLE = 'rotor_api_keys';
export const REGISTRY_DDL = `CREATE TABLE IF NOT EXISTS ${REGISTRY_TABLE} (service text NOT NULL, key_id text NOT NULL, pepper_id text NOT NULL, digest bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (service, key_id))`;
/** What a verifier reads for one key id: the pepper's id and the digest, or no row when the key is revoked. */
export const LOOKUP_SQL = `SELECT pepper_id, digest FROM ${REGISTRY_TABLE} WHERE service = $1 AND key_id = $2`;
/** API_KEY_SERVICE: the registry's namespace for one secret's keys. */
export const API_KEY_SERVICE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** One registry row as the verifier reads it. */
export interface RegistryRow {
  pepper_id: string;
  digest: Buffer;
}
