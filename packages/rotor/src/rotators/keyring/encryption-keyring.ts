import {
  decryptWithKey,
  encryptWithKey,
  generateKeyringKey,
  KEYRING_ENGINE,
  keyringSchema,
  newKeyId,
  parseCiphertext,
  type KeyringDataTable,
  type KeyringKey,
  type KeyringShape,
} from 'rotor-consumers/credentials';
import { formatDuration, InvalidInputError, TestFailedError } from 'rotor-consumers/core';
import type { Client } from 'pg';
import { onRegistry } from '../registry-database';
import type { Rotator, RotatorContext } from '../rotator';
import { parseJsonObject, validateShape } from '../secret-json';
import { countByKey, prepareTable } from './data';

/** An encryption keyring secret: its keys, readers, data tables, and the JSON it came from. */
export interface KeyringSecret extends KeyringShape {
  json: Record<string, unknown>;
}

export function parseKeyringSecret(secretId: string, raw: string): KeyringSecret {
  const json = parseJsonObject(secretId, raw);
  return { ...validateShape(secretId, keyringSchema(), json), json };
}

/**
 * How long a new key is readable by every reader before it may encrypt: one refresh interval of the readers'
 * caches, and one more for a read in flight and clocks that differ.
 */
export const keyringPrePublicationMs = (s: KeyringSecret) => 2 * s.readers.refresh;

const serialize = (s: KeyringSecret, keys: KeyringKey[]) => JSON.stringify({ ...s.json, keys });
const primaryOf = (s: KeyringSecret) => s.keys.find((k) => k.state === 'primary');

/** The keys of `via` that `want` lacks, decrypt-only (or disabled, as they were): what a rollback must keep. */
function keptKeys(want: KeyringSecret, via: KeyringSecret[]): KeyringKey[] {
  const known = new Set(want.keys.map((k) => k.id));
  const kept: KeyringKey[] = [];
  for (const version of via)
    for (const k of version.keys)
      if (!known.has(k.id)) {
        known.add(k.id);
        kept.push(k.state === 'primary' ? { ...k, state: 'decrypt-only' } : k);
      }
  return kept;
}

/** Runs `work` on each data table's database, as the login its secret names. */
export async function onDataTable<T>(
  secretId: string,
  spec: KeyringDataTable,
  context: RotatorContext,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  return onRegistry(secretId, spec.database, context, work);
}

/** Rows per key id over every data table. */
export async function rowsPerKey(
  secretId: string,
  keyring: KeyringSecret,
  context: RotatorContext,
): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for (const spec of keyring.data) {
    const counts = await onDataTable(secretId, spec, context, async (client) =>
      countByKey(client, await prepareTable(client, secretId, spec)),
    );
    for (const [id, n] of Object.entries(counts)) totals[id] = (totals[id] ?? 0) + n;
  }
  return totals;
}

/** What a retirement of keys did, and the rows each remaining key still protects. */
export interface KeyRetirement {
  outcome: string;
  disabled: string[];
  removed: string[];
  rows: Record<string, number>;
}

/**
 * Retirement follows the data: each key that is neither primary nor disabled and that a count of every data table
 * finds under no row is disabled; a key disabled for `retention.removeAfter` is removed. A keyring without data
 * tables keeps every key (rotor cannot know what a key protects). The caller guarantees that no reader still
 * encrypts with a key that is not primary (grace, or the re-wrap's wait, of at least the pre-publication time).
 */
export async function retireKeys(
  secretId: string,
  context: RotatorContext,
  expectPrimary: string | undefined,
  now = new Date(),
): Promise<KeyRetirement> {
  const read = await context.readCurrent(secretId);
  const keyring = parseKeyringSecret(secretId, read);
  if (keyring.data.length === 0) return { outcome: 'no-data-tables-keys-kept', disabled: [], removed: [], rows: {} };
  const rows = await rowsPerKey(secretId, keyring, context);
  const kept = (outcome: string) => ({ outcome, disabled: [], removed: [], rows });
  if (primaryOf(keyring)?.id !== expectPrimary) return kept('primary-changed-keys-kept');
  // A key made after the primary is one a rotation is making readable, about to encrypt: never retired.
  const primary = primaryOf(keyring);
  const newer = (k: KeyringKey) => primary !== undefined && Date.parse(k.createdAt) > Date.parse(primary.createdAt);
  const disabled: string[] = [];
  const removed: string[] = [];
  const keys: KeyringKey[] = [];
  for (const key of keyring.keys) {
    if (key.state === 'decrypt-only' && !(rows[key.id] ?? 0) && !newer(key)) {
      disabled.push(key.id);
      keys.push({ ...key, state: 'disabled', disabledAt: now.toISOString() });
    } else if (
      key.state === 'disabled' &&
      !(rows[key.id] ?? 0) &&
      key.disabledAt !== undefined &&
      now.getTime() - Date.parse(key.disabledAt) >= keyring.retention.removeAfter
    ) {
      removed.push(key.id);
    } else keys.push(key);
  }
  if (disabled.length + removed.length > 0) {
    // The keyring as read before the count, or nothing: a rotation that finished meanwhile is not undone.
    if ((await context.readCurrent(secretId)) !== read) return kept('keyring-changed-during-count-keys-kept');
    await context.writeCurrent!(secretId, serialize(keyring, keys));
  }
  const still = keyring.keys.filter((k) => k.state === 'decrypt-only' && (rows[k.id] ?? 0) > 0);
  const outcome =
    disabled.length + removed.length === 0
      ? still.length > 0
        ? `kept-${still.length}-keys-with-rows`
        : 'nothing-to-retire'
      : `disabled-${disabled.length}-removed-${removed.length}`;
  return { outcome, disabled, removed, rows };
}

/**
 * Encryption keyrings (kind `encryption-keyring`): keys applications encrypt fields with (rotor-consumers' Keyring).
 * A rotation makes a new key and:
 * - `set` makes it readable first: AWSCURRENT becomes the keyring with the new key added as decrypt-only (a version
 *   rotor writes, its id derived from its content); the primary is unchanged, so nothing encrypts with it yet;
 * - after `test`, the rotation waits the pre-publication time (twice `readers.refresh`), so every reader holds it;
 * - `finish` makes it primary; the previous primary becomes decrypt-only (readers still decrypt what it made);
 * - `retire` (after grace, which `prepare` refuses shorter than the pre-publication time) disables the keys no row
 *   uses any more, and removes those disabled for `retention.removeAfter`; `rotor rewrap` moves the rows.
 * Compensation and rollback keep every key the rotation made, decrypt-only: a row encrypted with the new key while
 * it was primary still decrypts after a rollback.
 */
export const encryptionKeyringRotator: Rotator<KeyringSecret> = {
  kind: 'encryption-keyring',
  engines: [KEYRING_ENGINE],

  parse: parseKeyringSecret,

  target: (secret) => `keyring://${secret.data.map((d) => `${d.database}/${d.table}`).join(',') || 'readers'}`,

  async check(secretId, { current }, context, rotation) {
    if (rotation && rotation.graceMs < keyringPrePublicationMs(current)) {
      throw new InvalidInputError(
        `secret ${secretId}: grace ${formatDuration(rotation.graceMs)} is shorter than twice readers.refresh ` +
          `(${formatDuration(keyringPrePublicationMs(current))}): a reader that has not seen the new key yet could still encrypt with the previous one when retirement counts its rows`,
      );
    }
    for (const spec of current.data)
      await onDataTable(secretId, spec, context, (client) => prepareTable(client, secretId, spec));
    return `keyring-${current.keys.length}-keys-${current.data.length}-tables-ready`;
  },

  nextValue(_secretId, current) {
    const key = generateKeyringKey(newKeyId(), 'primary');
    const keys = current.keys.map((k): KeyringKey => (k.state === 'primary' ? { ...k, state: 'decrypt-only' } : k));
    return serialize(current, [...keys, key]);
  },

  async set(secretId, { pending, current }, context) {
    const known = new Set(current.keys.map((k) => k.id));
    const added = pending.keys
      .filter((k) => !known.has(k.id))
      .map((k): KeyringKey => ({ ...k, state: 'decrypt-only' }));
    if (added.length === 0) return 'already-set';
    const moved = await context.writeCurrent!(secretId, serialize(current, [...current.keys, ...added]));
    return moved ? `staged-${added.length}-keys-decrypt-only` : 'already-staged';
  },

  async test(secretId, value, context) {
    const primary = primaryOf(value);
    if (!primary) return;
    // The key encrypts and decrypts (its material is whole), and every reader's keyring holds it.
    const probe = encryptWithKey(primary, 'rotor keyring probe', secretId);
    if (decryptWithKey(primary, parseCiphertext(probe), secretId).toString() !== 'rotor keyring probe')
      throw new TestFailedError(secretId, `key ${primary.id} does not decrypt what it encrypts`);
    const readers = parseKeyringSecret(secretId, await context.readCurrent(secretId));
    const held = readers.keys.find((k) => k.id === primary.id);
    if (!held || held.material !== primary.material || held.state === 'disabled')
      throw new TestFailedError(secretId, `readers do not hold key ${primary.id} yet (AWSCURRENT lacks it)`);
  },

  async holdBeforeFinish(_secretId, pending) {
    return keyringPrePublicationMs(pending);
  },

  reinstatedValue(_secretId, { want, via }) {
    const kept = keptKeys(want, via);
    return kept.length === 0 ? undefined : serialize(want, [...want.keys, ...kept]);
  },

  async restore(secretId, { want, via }, context) {
    // Every key of the versions given up stays readable: rows may have been encrypted with them meanwhile (the
    // rollback made this value current at once; a compensation, or a re-run, makes sure of it here).
    const kept = keptKeys(want, via);
    if (kept.length === 0) return 'restored';
    const moved = await context.writeCurrent!(secretId, serialize(want, [...want.keys, ...kept]));
    return `restored-keeping-${kept.length}-keys-decrypt-only${moved ? '' : '-already'}`;
  },

  async retire(secretId, { current }, context) {
    // The keyring as it is now (a re-wrap may have retired keys since finish), while it is still this rotation's.
    return (await retireKeys(secretId, context, primaryOf(current)?.id)).outcome;
  },
};
