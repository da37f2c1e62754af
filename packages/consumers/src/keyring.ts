import { decryptWithKey, encryptWithKey, KeyringError, parseCiphertext, type KeyringKey } from './credentials/keyring';
import { keyringSchema } from './credentials/keyring-schema';
import { parseJsonObject, validateShape } from './secret-json';
import type { SecretCache } from './secret-cache';

/** How often a ciphertext naming a key this reader does not hold may make it read the keyring afresh. */
const FRESH_READ_EVERY_MS = 1000;

export interface KeyringOptions {
  /** The cache the keyring secret is read through (its refresh interval is `readers.refresh` in the secret). */
  cache: SecretCache;
  /** The `encryption-keyring` secret. */
  secretId: string;
}

/**
 * An application's side of an encryption keyring: `encrypt` with the primary key, `decrypt` with whichever key a
 * ciphertext names, following the keyring through SecretCache. A rotation adds a key every reader can decrypt with
 * before it becomes primary, so a ciphertext made with a new key never meets a reader that lacks it; a key a
 * ciphertext names and this reader does not hold makes one fresh read of the keyring before it is refused.
 *
 * Errors (`KeyringError`) name the reason and the key id, never key material, plaintext or the ciphertext.
 */
export class Keyring {
  readonly #options: KeyringOptions;
  #freshAt = 0;
  #parsed?: { versionId: string; keys: Map<string, KeyringKey>; primary?: KeyringKey };

  constructor(options: KeyringOptions) {
    this.#options = options;
  }

  /** Encrypts with the primary key; `associatedData` (a row's id and the column, say) must be given again to decrypt. */
  async encrypt(
    plaintext: Buffer | Uint8Array | string,
    associatedData: Buffer | Uint8Array | string,
  ): Promise<string> {
    const { primary } = await this.#keys();
    if (!primary) throw new KeyringError('no-primary', `secret ${this.#options.secretId} has no primary key yet`);
    return encryptWithKey(primary, plaintext, associatedData);
  }

  /** Decrypts with the key the ciphertext names. */
  async decrypt(ciphertext: string, associatedData: Buffer | Uint8Array | string): Promise<Buffer> {
    const parsed = parseCiphertext(ciphertext);
    let key = (await this.#keys()).keys.get(parsed.keyId);
    // A key added since the last read: read the keyring once more, now (at most once a second: ciphertexts naming
    // made-up keys must not turn into a read of the store each).
    if (!key && Date.now() - this.#freshAt >= FRESH_READ_EVERY_MS) {
      this.#freshAt = Date.now();
      key = (await this.#keys(true)).keys.get(parsed.keyId);
    }
    if (!key)
      throw new KeyringError(
        'unknown-key',
        `key ${parsed.keyId} is not in ${this.#options.secretId} (removed, or from another keyring)`,
        parsed.keyId,
      );
    if (key.state === 'disabled')
      throw new KeyringError('disabled-key', `key ${parsed.keyId} of ${this.#options.secretId} is disabled`, key.id);
    return decryptWithKey(key, parsed, associatedData);
  }

  /** The primary key's id (for re-wrap checks and metrics), or undefined before the first rotation. */
  async primaryKeyId(): Promise<string | undefined> {
    return (await this.#keys()).primary?.id;
  }

  async #keys(fresh = false) {
    const { cache, secretId } = this.#options;
    const snapshot = fresh ? await cache.refreshNow(secretId, { fresh: true }) : await cache.get(secretId);
    if (this.#parsed?.versionId !== snapshot.versionId) {
      const shape = validateShape(
        secretId,
        keyringSchema(),
        parseJsonObject(secretId, snapshot.value, snapshot.versionId),
      );
      const keys = new Map(shape.keys.map((k) => [k.id, k]));
      this.#parsed = {
        versionId: snapshot.versionId,
        keys,
        ...(shape.keys.find((k) => k.state === 'primary')
          ? { primary: shape.keys.find((k) => k.state === 'primary')! }
          : {}),
      };
    }
    return this.#parsed;
  }
}
