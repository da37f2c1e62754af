import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorType, RotorError } from '../errors';

/*
 * rotor's ciphertext format, for application fields encrypted with a keyring's keys (AES-256-GCM from node:crypto):
 *
 *   rk1.a256gcm.<key id>.<nonce, base64url>.<ciphertext and tag, base64url>
 *
 * Self-describing: the format version, the algorithm, the key that decrypts it and its nonce. The header (everything
 * before the nonce) and the caller's associated data are authenticated: a ciphertext moved to another row or column
 * (other associated data), or given another key id, does not decrypt.
 *
 * Nonces are random, 96 bits, per message, as Tink's AES-GCM and Vault transit's aes256-gcm96 do. The bound that
 * keeps them from repeating is NIST SP 800-38D's: at most 2^32 messages per key (a collision chance under 2^-32);
 * a keyring rotated on a schedule stays far below it. Per-message data keys wrapped by the keyring key (an envelope)
 * would lift the bound at the cost of a second encryption per message; fields of rows do not need it.
 */

export const KEYRING_ENGINE = 'encryption-keyring';
export const CIPHERTEXT_VERSION = 'rk1';
export const KEYRING_ALGORITHMS = ['aes-256-gcm'] as const;
export type KeyringAlgorithm = (typeof KEYRING_ALGORITHMS)[number];
/** The algorithm's name in a ciphertext's header. */
const ALGORITHM_TAG: Record<KeyringAlgorithm, string> = { 'aes-256-gcm': 'a256gcm' };
export const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Messages per key before its nonces could repeat (NIST SP 800-38D, random 96-bit nonces). */
export const MESSAGES_PER_KEY = 2 ** 32;
/** The largest plaintext encrypted at once (fields of rows, not files). */
export const MAX_PLAINTEXT_BYTES = 16 * 1024 * 1024;
const MAX_CIPHERTEXT_LENGTH = Math.ceil((MAX_PLAINTEXT_BYTES + 16) / 3) * 4 + 128;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export type KeyState = 'primary' | 'decrypt-only' | 'disabled';

/** One key of a keyring: its id, algorithm, state, when rotor made it, and its 32 bytes (base64). */
export interface KeyringKey {
  id: string;
  algorithm: KeyringAlgorithm;
  state: KeyState;
  createdAt: string;
  /** When rotor disabled it (a final count found no row under it); it is removed after `retention.removeAfter`. */
  disabledAt?: string;
  material: string;
}

/** Why a ciphertext was not decrypted (or a plaintext not encrypted): never with key material or plaintext. */
export type KeyringRefusal =
  'malformed' | 'unsupported' | 'unknown-key' | 'disabled-key' | 'tampered' | 'no-primary' | 'too-large';

export class KeyringError extends RotorError {
  constructor(
    readonly reason: KeyringRefusal,
    detail: string,
    readonly keyId?: string,
  ) {
    super(ErrorType.InvalidInput, `keyring: ${reason}: ${detail}`);
  }
}

/** The parts of a ciphertext, read without trusting any of them. */
export interface ParsedCiphertext {
  version: string;
  algorithm: KeyringAlgorithm;
  keyId: string;
  header: string;
  nonce: Buffer;
  body: Buffer;
}

const bytes = (value: Buffer | Uint8Array | string) =>
  typeof value === 'string'
    ? Buffer.from(value, 'utf8')
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/** The GCM associated data: the header and the caller's, with the header's length first (no ambiguity at the seam). */
function additionalData(header: string, associatedData: Buffer | Uint8Array | string): Buffer {
  const h = Buffer.from(header, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(h.length);
  return Buffer.concat([length, h, bytes(associatedData)]);
}

function keyBytes(key: KeyringKey): Buffer {
  const material = Buffer.from(key.material, 'base64');
  if (material.length !== 32) throw new KeyringError('malformed', `key ${key.id} is not 32 bytes`, key.id);
  return material;
}

/** Encrypts `plaintext` with `key`, binding `associatedData` (the row's id and the column, say). */
export function encryptWithKey(
  key: KeyringKey,
  plaintext: Buffer | Uint8Array | string,
  associatedData: Buffer | Uint8Array | string,
): string {
  const data = bytes(plaintext);
  if (data.length > MAX_PLAINTEXT_BYTES)
    throw new KeyringError('too-large', `plaintext of ${data.length} bytes is over ${MAX_PLAINTEXT_BYTES}`);
  const header = `${CIPHERTEXT_VERSION}.${ALGORITHM_TAG[key.algorithm]}.${key.id}`;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keyBytes(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(header, associatedData));
  const body = Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
  return `${header}.${nonce.toString('base64url')}.${body.toString('base64url')}`;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** The parts of `ciphertext`, checked for shape only (nothing is decrypted). */
export function parseCiphertext(ciphertext: string): ParsedCiphertext {
  if (typeof ciphertext !== 'string' || ciphertext.length > MAX_CIPHERTEXT_LENGTH)
    throw new KeyringError('malformed', 'not a rotor ciphertext (not a string, or too long)');
  const parts = ciphertext.split('.');
  if (parts.length !== 5) throw new KeyringError('malformed', 'not a rotor ciphertext (expected 5 parts)');
  const [version, tag, keyId, nonceText, bodyText] = parts as [string, string, string, string, string];
  if (version !== CIPHERTEXT_VERSION)
    throw new KeyringError('unsupported', `format ${JSON.stringify(version.slice(0, 8))} is not ${CIPHERTEXT_VERSION}`);
  const algorithm = (Object.keys(ALGORITHM_TAG) as KeyringAlgorithm[]).find((a) => ALGORITHM_TAG[a] === tag);
  if (!algorithm) throw new KeyringError('unsupported', `algorithm ${JSON.stringify(tag.slice(0, 16))} is not known`);
  if (!KEY_ID.test(keyId)) throw new KeyringError('malformed', 'the key id is not 1 to 64 of A-Z, a-z, 0-9, _ and -');
  if (!BASE64URL.test(nonceText) || !BASE64URL.test(bodyText))
    throw new KeyringError('malformed', 'the nonce or the body is not base64url', keyId);
  const nonce = Buffer.from(nonceText, 'base64url');
  const body = Buffer.from(bodyText, 'base64url');
  // One text per ciphertext: base64url's last character can carry unused bits, and a decoder ignores them.
  if (nonce.toString('base64url') !== nonceText || body.toString('base64url') !== bodyText)
    throw new KeyringError('malformed', 'the nonce or the body is not canonical base64url', keyId);
  if (nonce.length !== NONCE_BYTES || body.length < TAG_BYTES)
    throw new KeyringError('malformed', 'the nonce or the body has the wrong length (truncated?)', keyId);
  return { version, algorithm, keyId, header: `${version}.${tag}.${keyId}`, nonce, body };
}

/** Decrypts a parsed ciphertext with `key` (the key it names). A wrong key, data or a changed byte: `tampered`. */
export function decryptWithKey(
  key: KeyringKey,
  parsed: ParsedCiphertext,
  associatedData: Buffer | Uint8Array | string,
): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', keyBytes(key), parsed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(additionalData(parsed.header, associatedData));
  decipher.setAuthTag(parsed.body.subarray(parsed.body.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(parsed.body.subarray(0, parsed.body.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new KeyringError(
      'tampered',
      `the ciphertext under key ${parsed.keyId} does not authenticate (changed, moved to other associated data, or not made with this key)`,
      parsed.keyId,
    );
  }
}

/** A new key (32 random bytes), in `state`. */
export function generateKeyringKey(id: string, state: KeyState, now = new Date()): KeyringKey {
  if (!KEY_ID.test(id)) throw new KeyringError('malformed', 'a key id is 1 to 64 of A-Z, a-z, 0-9, _ and -');
  return {
    id,
    algorithm: 'aes-256-gcm',
    state,
    createdAt: now.toISOString(),
    material: randomBytes(32).toString('base64'),
  };
}

/** `{column}` in an associated-data template (`users/{id}/token`): 1 to 63 of a-z, A-Z, 0-9 and _. */
const AD_PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]{0,62})\}/g;

/** The columns an associated-data template names, in order of first use. */
export function associatedDataColumns(template: string): string[] {
  return [...new Set([...template.matchAll(AD_PLACEHOLDER)].map((m) => m[1]!))];
}

/**
 * A row's associated data from a template the keyring secret declares (`users/{id}/token`): each `{column}` is the
 * row's value of that column as text. Applications and `rotor rewrap` build it with this one function, so a
 * re-wrapped field decrypts where the application reads it.
 */
export function associatedDataFor(template: string, row: Record<string, unknown>): string {
  return template.replace(AD_PLACEHOLDER, (_, column: string) => {
    const value = row[column];
    if (value === undefined || value === null)
      throw new KeyringError('malformed', `associated data: the row has no value for column ${column}`);
    return value instanceof Date ? value.toISOString() : String(value);
  });
}

/** The key id a ciphertext names, or undefined when the text is not a rotor ciphertext (for counts, not trust). */
export function keyIdOf(ciphertext: string): string | undefined {
  const parts = ciphertext.split('.', 4);
  return parts.length === 4 && parts[0] === CIPHERTEXT_VERSION && KEY_ID.test(parts[2]!) ? parts[2] : undefined;
}

/** A new key id: the time it was made and 24 random bits, sortable by age. */
export function newKeyId(now = new Date()): string {
  return `k${now
    .toISOString()
    .replace(/[-:TZ.]/g, '')
    .slice(0, 14)}${randomBytes(3).toString('hex')}`;
}
