import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InMemorySecretStore, Keyring, SecretCache, Stage } from 'rotor-consumers';
import {
  decryptWithKey,
  encryptWithKey,
  generateKeyringKey,
  KeyringError,
  parseCiphertext,
  type KeyringKey,
} from 'rotor-consumers/credentials';

const keyring = (keys: KeyringKey[]) =>
  JSON.stringify({ engine: 'encryption-keyring', readers: { refresh: '1m' }, keys });

function setUp(keys: KeyringKey[]) {
  const store = new InMemorySecretStore();
  store.create('app/keyring', keyring(keys));
  const put = (next: KeyringKey[]) => store.putVersion('app/keyring', randomUUID(), keyring(next), [Stage.current]);
  /** An application's keyring, its cache checking the store every `refreshMs`. */
  const reader = (refreshMs: number) =>
    new Keyring({ cache: new SecretCache({ store, refreshIntervalMs: refreshMs }), secretId: 'app/keyring' });
  return { store, put, reader };
}

const refusal = (work: () => unknown) => {
  try {
    work();
  } catch (error) {
    return error instanceof KeyringError ? error.reason : `not a KeyringError: ${String(error)}`;
  }
  return 'no error';
};

describe('the rk1 ciphertext format', () => {
  const key = generateKeyringKey('k1', 'primary');

  it('round-trips any plaintext with its associated data; every ciphertext has its own nonce', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.string(), (plaintext, aad) => {
        const a = encryptWithKey(key, plaintext, aad);
        const b = encryptWithKey(key, plaintext, aad);
        expect(a).not.toBe(b);
        expect(parseCiphertext(a).nonce.equals(parseCiphertext(b).nonce)).toBe(false);
        expect(decryptWithKey(key, parseCiphertext(a), aad).equals(Buffer.from(plaintext))).toBe(true);
      }),
    );
  });

  it('names its version, algorithm, key and nonce', () => {
    const [version, algorithm, keyId, nonce] = encryptWithKey(key, 'a webhook secret', 'webhooks/42/secret').split('.');
    expect([version, algorithm, keyId]).toEqual(['rk1', 'a256gcm', 'k1']);
    expect(Buffer.from(nonce!, 'base64url')).toHaveLength(12);
  });

  it('refuses any changed byte, another row’s associated data, truncation and a swapped key id, naming no value', () => {
    const plaintext = 'tok_live_5ecret';
    const ciphertext = encryptWithKey(key, plaintext, 'users/1/token');
    const other = { ...generateKeyringKey('k2', 'decrypt-only') };
    fc.assert(
      fc.property(
        fc.nat({ max: ciphertext.length - 1 }),
        fc.constantFrom('A', 'z', '0', '_', '-', 'B', 'w'),
        (i, c) => {
          fc.pre(ciphertext[i] !== c && ciphertext[i] !== '.');
          const flipped = ciphertext.slice(0, i) + c + ciphertext.slice(i + 1);
          const reason = refusal(() => decryptWithKey(key, parseCiphertext(flipped), 'users/1/token'));
          expect(['tampered', 'malformed', 'unsupported']).toContain(reason);
        },
      ),
    );
    expect(refusal(() => decryptWithKey(key, parseCiphertext(ciphertext), 'users/2/token'))).toBe('tampered');
    // Truncated: shorter than a tag, or a tag cut off.
    expect(refusal(() => parseCiphertext(ciphertext.slice(0, ciphertext.lastIndexOf('.') + 8)))).toBe('malformed');
    const [head, body] = [ciphertext.slice(0, ciphertext.lastIndexOf('.')), ciphertext.split('.')[4]!];
    const shortened = `${head}.${Buffer.from(body, 'base64url').subarray(0, -3).toString('base64url')}`;
    expect(refusal(() => decryptWithKey(key, parseCiphertext(shortened), 'users/1/token'))).toBe('tampered');
    expect(refusal(() => parseCiphertext(ciphertext.slice(0, -1)))).toBe('malformed');
    expect(refusal(() => parseCiphertext(ciphertext.split('.').slice(0, 4).join('.')))).toBe('malformed');
    const swapped = ciphertext.replace('.k1.', '.k2.');
    expect(refusal(() => decryptWithKey(other, parseCiphertext(swapped), 'users/1/token'))).toBe('tampered');
    expect(refusal(() => parseCiphertext(`rk9${ciphertext.slice(3)}`))).toBe('unsupported');
    try {
      decryptWithKey(key, parseCiphertext(ciphertext), 'users/2/token');
    } catch (error) {
      expect((error as Error).message).not.toContain(plaintext);
      expect((error as Error).message).not.toContain(key.material);
      expect((error as Error).message).not.toContain(ciphertext);
    }
  });
});

describe('Keyring', () => {
  it('encrypts with the primary key and decrypts with the key a ciphertext names, through a rotation', async () => {
    const k1 = generateKeyringKey('k1', 'primary');
    const { store, put, reader } = setUp([k1]);
    const slow = reader(3_600_000);
    const old = await slow.encrypt('personal data', 'users/7/email');
    // A rotation: k2 joins (decrypt-only), then becomes primary and k1 decrypt-only.
    const k2 = generateKeyringKey('k2', 'decrypt-only');
    put([k1, k2]);
    put([
      { ...k1, state: 'decrypt-only' },
      { ...k2, state: 'primary' },
    ]);
    const writer = reader(1);
    const made = await writer.encrypt('personal data', 'users/8/email');
    expect(made.split('.')[2]).toBe('k2');
    expect(await writer.primaryKeyId()).toBe('k2');
    // A reader whose cache has not looked yet meets k2: one fresh read of the keyring, and it decrypts.
    const reads = store.calls.read;
    expect((await slow.decrypt(made, 'users/8/email')).toString()).toBe('personal data');
    expect(store.calls.read).toBe(reads + 1);
    expect((await slow.decrypt(old, 'users/7/email')).toString()).toBe('personal data');
    expect((await writer.decrypt(old, 'users/7/email')).toString()).toBe('personal data');
  });

  it('names the key it does not have, and a disabled key, never key material', async () => {
    const k1 = generateKeyringKey('k1', 'primary');
    const stranger = generateKeyringKey('k9', 'primary');
    const { put, reader } = setUp([k1]);
    const ring = reader(1);
    const foreign = encryptWithKey(stranger, 'x', 'a');
    await expect(ring.decrypt(foreign, 'a')).rejects.toThrow(
      'keyring: unknown-key: key k9 is not in app/keyring (removed, or from another keyring)',
    );
    const mine = await ring.encrypt('x', 'a');
    put([{ ...k1, state: 'disabled' }]);
    await new Promise((r) => setTimeout(r, 5));
    const error = await ring.decrypt(mine, 'a').then(
      () => undefined,
      (e: unknown) => e as KeyringError,
    );
    expect(error).toMatchObject({ reason: 'disabled-key', keyId: 'k1' });
    expect(error!.message).not.toContain(k1.material);
    await expect(reader(1).encrypt('x', 'a')).rejects.toThrow(
      'keyring: no-primary: secret app/keyring has no primary key yet',
    );
  });

  it('reads the keyring afresh for unknown keys at most once a second, however many ciphertexts name them', async () => {
    const k1 = generateKeyringKey('k1', 'primary');
    const { store, reader } = setUp([k1]);
    const ring = reader(3_600_000);
    await ring.encrypt('x', 'a');
    const lookups = () => store.calls.read + store.calls.describe;
    const before = lookups();
    const forged = Array.from({ length: 200 }, (_, i) =>
      encryptWithKey(generateKeyringKey(`f${i}`, 'primary'), 'x', 'a'),
    );
    const reasons = await Promise.all(
      forged.map((c) =>
        ring.decrypt(c, 'a').then(
          () => 'ok',
          (e: KeyringError) => e.reason,
        ),
      ),
    );
    expect(new Set(reasons)).toEqual(new Set(['unknown-key']));
    expect(lookups() - before).toBeGreaterThan(0);
    expect(lookups() - before).toBeLessThanOrEqual(2);
  });

  it('refuses a keyring with two primary keys or a key of the wrong size, naming the field', async () => {
    const { reader, put } = setUp([generateKeyringKey('k1', 'primary')]);
    put([generateKeyringKey('k1', 'primary'), generateKeyringKey('k2', 'primary')]);
    await expect(reader(1).encrypt('x', 'a')).rejects.toThrow(/keys: has 2 primary keys, not one/);
    put([{ ...generateKeyringKey('k1', 'primary'), material: Buffer.alloc(16).toString('base64') }]);
    await expect(reader(1).encrypt('x', 'a')).rejects.toThrow(/keys.0.material: must be 32 bytes, base64/);
  });
});
