import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier, generateApiKey, parseApiKey, SecretCache, type RegistryQuery } from 'rotor-consumers';
import {
  apiKeyDigest,
  formatApiKey,
  LOOKUP_SQL,
  MAX_API_KEY_LENGTH,
  parsePepperSet,
} from 'rotor-consumers/credentials';
import { parseApiKeySecret } from '../../packages/rotor/src/rotators/api-key';
import { selectRotatorKind, withRotators } from '../../packages/rotor/src/rotators/registry';
import { InvalidSecretError } from 'rotor-consumers/core';
import { InMemorySecretStore } from 'rotor-consumers/stores';

const pepper = randomBytes(32);

/** A registry in a Map behind the verifier's query function, counting lookups; a clock the test moves. */
function setup(
  ttl = 1000,
  maxEntries = 10_000,
  limits: { maxLookupsInFlight?: number; maxQueuedLookups?: number; delayMs?: number } = {},
) {
  const rows = new Map<string, { pepper_id: string; digest: Buffer }>();
  let lookups = 0;
  let running = 0;
  let most = 0;
  let now = 0;
  let hold: Promise<void> | undefined;
  const query: RegistryQuery = async (sql, params) => {
    expect(sql).toBe(LOOKUP_SQL);
    lookups++;
    running++;
    most = Math.max(most, running);
    await hold;
    if (limits.delayMs) await new Promise((resolve) => setTimeout(resolve, limits.delayMs));
    running--;
    const row = params[0] === 'billing' ? rows.get(String(params[1])) : undefined;
    return { rows: row ? [{ ...row }] : [] };
  };
  const store = new InMemorySecretStore();
  store.create('pepper', JSON.stringify({ current: 'p1', peppers: { p1: pepper.toString('base64') } }));
  const verifier = new ApiKeyVerifier({
    service: 'billing',
    prefix: 'bill',
    query,
    pepper: { cache: new SecretCache({ store }), secretId: 'pepper' },
    cacheTtlMs: ttl,
    maxEntries,
    ...(limits.maxLookupsInFlight ? { maxLookupsInFlight: limits.maxLookupsInFlight } : {}),
    ...(limits.maxQueuedLookups ? { maxQueuedLookups: limits.maxQueuedLookups } : {}),
    now: () => now,
  });
  const register = (key: { keyId: string; key: string }, pepperId = 'p1', with_ = pepper) =>
    rows.set(key.keyId, { pepper_id: pepperId, digest: apiKeyDigest(with_, key.key) });
  return {
    verifier,
    store,
    register,
    revoke: (keyId: string) => rows.delete(keyId),
    lookups: () => lookups,
    /** The most lookups that ran at once. */
    most: () => most,
    advance: (ms: number) => (now += ms),
    holdLookups: () => {
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      return () => {
        hold = undefined;
        release();
      };
    },
  };
}

describe('rotor API key format', () => {
  it('makes keys that parse back to their id, and recognises its own prefix only', () => {
    for (let i = 0; i < 200; i++) {
      const { keyId, key } = generateApiKey('bill');
      expect(key).toMatch(/^bill_[0-9A-Za-z]{48}$/);
      expect(parseApiKey(key, 'bill')).toEqual({ ok: true, keyId });
      expect(parseApiKey(key, 'acme')).toEqual({ ok: false, problem: 'wrong-prefix' });
    }
    expect(() => generateApiKey('Bad_Prefix')).toThrow(/prefix "Bad_Prefix" is not 2 to 12/);
  });

  it('detects single-character typos with its checksum', () => {
    const { key } = generateApiKey('bill');
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    fc.assert(
      fc.property(fc.integer({ min: 5, max: key.length - 1 }), fc.constantFrom(...alphabet), (at, c) => {
        fc.pre(key[at] !== c);
        return !parseApiKey(key.slice(0, at) + c + key.slice(at + 1), 'bill').ok;
      }),
    );
  });

  it('refuses arbitrary text, empty, huge and non-ASCII input', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => !parseApiKey(text, 'bill').ok));
    expect(parseApiKey('', 'bill')).toEqual({ ok: false, problem: 'missing' });
    expect(parseApiKey(undefined, 'bill')).toEqual({ ok: false, problem: 'missing' });
    expect(parseApiKey('b'.repeat(MAX_API_KEY_LENGTH + 1), 'bill')).toEqual({ ok: false, problem: 'too-long' });
    const { key } = generateApiKey('bill');
    expect(parseApiKey(key.slice(0, 10) + 'é' + key.slice(11), 'bill')).toEqual({ ok: false, problem: 'malformed' });
  });

  it('reads a pepper set and names what is wrong with one, never quoting a pepper', () => {
    const good = parsePepperSet(
      JSON.stringify({
        current: 'p2',
        peppers: { p1: pepper.toString('base64'), p2: randomBytes(48).toString('base64') },
      }),
    );
    expect(good.ok && good.set.current).toBe('p2');
    const short = randomBytes(8).toString('base64');
    const bad = parsePepperSet(JSON.stringify({ current: 'p9', peppers: { p1: short } }));
    expect(bad).toEqual({ ok: false, problems: ['peppers.p1: must be at least 32 bytes of base64 (has 8)'] });
    expect(parsePepperSet(JSON.stringify({ current: 'p9', peppers: { p1: pepper.toString('base64') } }))).toEqual({
      ok: false,
      problems: ['current: does not name one of peppers (p1)'],
    });
    expect(JSON.stringify(bad)).not.toContain(short);
    expect(parsePepperSet('{nope')).toEqual({ ok: false, problems: ['is not JSON'] });
  });
});

describe('API key secrets', () => {
  const base = { engine: 'api-key', service: 'billing', prefix: 'bill', registry: 'reg', pepper: 'pep' };
  it('go to the api-key rotator by engine, and a team cannot claim that engine', () => {
    expect(selectRotatorKind('k', JSON.stringify(base))).toBe('api-key');
    expect(() => withRotators({ ...parseless, kind: 'mine', engines: ['api-key'] })).toThrow(
      /engine api-key belongs to a built-in rotator/,
    );
  });

  it('are refused with every problem named, never the key', () => {
    const { key } = generateApiKey('acme');
    const error = (() => {
      try {
        parseApiKeySecret('k', JSON.stringify({ ...base, service: 'Robert"); DROP', prefix: 'x', keyId: 'abc', key }));
      } catch (e) {
        return e as InvalidSecretError;
      }
    })();
    expect(error).toBeInstanceOf(InvalidSecretError);
    expect(error!.problems.map((p) => p.split(':')[0])).toEqual(['service', 'prefix']);
    expect(error!.message).not.toContain(key);
    expect(() => parseApiKeySecret('k', JSON.stringify({ ...base, keyId: 'abc', key }))).toThrow(
      /key: is not a bill_ key of rotor's format \(wrong-prefix\)/,
    );
    const own = generateApiKey('bill');
    expect(() => parseApiKeySecret('k', JSON.stringify({ ...base, keyId: 'abc', key: own.key }))).toThrow(
      /keyId: does not match the key/,
    );
    expect(parseApiKeySecret('k', JSON.stringify({ ...base, ...own })).current).toEqual(own);
    expect(parseApiKeySecret('k', JSON.stringify(base)).current).toBeUndefined();
  });
});

const parseless = {
  parse: () => ({}),
  target: () => 't',
  check: async () => 'ok',
  nextValue: () => '{}',
  set: async () => 'ok',
  test: async () => undefined,
  restore: async () => 'ok',
  retire: async () => 'ok',
};

describe('ApiKeyVerifier', () => {
  it('accepts a registered key and refuses a key with the right id and another secret part', async () => {
    const { verifier, register } = setup();
    const key = generateApiKey('bill');
    register(key);
    expect(await verifier.verify(key.key)).toEqual({ ok: true, keyId: key.keyId });
    // Same id, another secret part, a valid checksum (anyone can compute it): only the digest can tell.
    const forged = formatApiKey('bill', key.keyId, 'Z'.repeat(32));
    expect(parseApiKey(forged, 'bill')).toEqual({ ok: true, keyId: key.keyId });
    expect(await verifier.verify(forged)).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('refuses mistyped, empty, huge, non-ASCII and made-up keys without a lookup', async () => {
    const { verifier, register, lookups } = setup();
    const key = generateApiKey('bill');
    register(key);
    const typo = key.key.slice(0, -1) + (key.key.endsWith('a') ? 'b' : 'a');
    for (const presented of [
      typo,
      '',
      'x'.repeat(10_000),
      `bill_${'ü'.repeat(48)}`,
      `bill_${'A'.repeat(48)}`,
      null,
      42,
    ]) {
      expect((await verifier.verify(presented)).ok).toBe(false);
    }
    expect(lookups()).toBe(0);
    expect(await verifier.verify(generateApiKey('bill').key)).toEqual({ ok: false, reason: 'unknown-key' });
    expect(lookups()).toBe(1);
  });

  it('keeps an answer for its TTL: a revoked key is refused once the TTL has passed, not before', async () => {
    const { verifier, register, revoke, advance, lookups } = setup(1000);
    const key = generateApiKey('bill');
    register(key);
    expect((await verifier.verify(key.key)).ok).toBe(true);
    revoke(key.keyId);
    advance(999);
    expect((await verifier.verify(key.key)).ok).toBe(true);
    advance(2);
    expect(await verifier.verify(key.key)).toEqual({ ok: false, reason: 'unknown-key' });
    expect(lookups()).toBe(2);
  });

  it('asks the registry once for concurrent checks of one key id', async () => {
    const { verifier, register, lookups, holdLookups } = setup();
    const key = generateApiKey('bill');
    register(key);
    const release = holdLookups();
    const checks = Array.from({ length: 50 }, () => verifier.verify(key.key));
    release();
    expect((await Promise.all(checks)).every((v) => v.ok)).toBe(true);
    expect(lookups()).toBe(1);
  });

  it('runs at most maxLookupsInFlight registry lookups at once under a flood of 2,000 forged keys, and refuses past the queue', async () => {
    const { verifier, register, lookups, most } = setup(1000, 10_000, {
      maxLookupsInFlight: 4,
      maxQueuedLookups: 1500,
      delayMs: 1,
    });
    const real = generateApiKey('bill');
    register(real);
    const forged = Array.from({ length: 2000 }, () => verifier.verify(generateApiKey('bill').key));
    const outcomes = await Promise.allSettled([...forged, verifier.verify(real.key)]);
    expect(most()).toBe(4);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    // 4 running and 1,500 waiting: the rest fail as Unavailable at once, without a lookup.
    expect(refused.length).toBeGreaterThanOrEqual(2001 - 4 - 1500);
    expect(lookups()).toBe(2001 - refused.length);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ type: 'RotorUnavailable' });
    expect(outcomes.filter((o) => o.status === 'fulfilled' && !o.value.ok).length).toBe(
      lookups() - (outcomes.at(-1)!.status === 'fulfilled' ? 1 : 0),
    );
    expect((await verifier.verify(real.key)).ok).toBe(true);
  });

  it('keeps unknown key ids apart: a flood of made-up keys with valid checksums does not evict a known key', async () => {
    const { verifier, register, lookups } = setup(60_000, 3);
    const key = generateApiKey('bill');
    register(key);
    expect((await verifier.verify(key.key)).ok).toBe(true);
    for (let i = 0; i < 10; i++) expect((await verifier.verify(generateApiKey('bill').key)).ok).toBe(false);
    expect(lookups()).toBe(11);
    expect((await verifier.verify(key.key)).ok).toBe(true);
    expect(lookups()).toBe(11);
  });

  it('reads the pepper secret again when a key names a pepper it has not seen (the pepper just rotated)', async () => {
    const { verifier, register, store, advance } = setup();
    const first = generateApiKey('bill');
    register(first);
    expect((await verifier.verify(first.key)).ok).toBe(true);
    const next = randomBytes(32);
    const token = 'pepper-v2';
    await store.putPending(
      'pepper',
      token,
      JSON.stringify({ current: 'p2', peppers: { p1: pepper.toString('base64'), p2: next.toString('base64') } }),
    );
    await store.moveStage('pepper', 'AWSCURRENT', token);
    const second = generateApiKey('bill');
    register(second, 'p2', next);
    advance(1000);
    expect(await verifier.verify(second.key)).toEqual({ ok: true, keyId: second.keyId });
    expect((await verifier.verify(first.key)).ok).toBe(true);
  });
});
