import { describe, expect, it } from 'vitest';
import { SecretCache, SecretCacheStaleError, type SecretReader } from '../src';
import { SecretNotFoundError, UnavailableError } from '../src/errors';
import { InMemorySecretStore } from '../src/stores/in-memory';

/** An in-memory store that can go down, a clock the test moves, and a cache over them. */
function setup(
  options: {
    refreshIntervalMs?: number;
    maxStaleMs?: number;
    jitter?: number;
    random?: () => number;
    maxEntries?: number;
  } = {},
) {
  const store = new InMemorySecretStore();
  let down = false;
  let now = 1_000_000;
  const asked = { describe: 0 };
  let missing = false;
  const reader: SecretReader = {
    describe: (id) => {
      asked.describe++;
      if (missing) return Promise.reject(new SecretNotFoundError(id, 'the store'));
      return down ? Promise.reject(new UnavailableError(id, 'the store is down')) : store.describe(id);
    },
    getByVersion: (id, v) =>
      down ? Promise.reject(new UnavailableError(id, 'the store is down')) : store.getByVersion(id, v),
    getByStage: (id, s) =>
      down ? Promise.reject(new UnavailableError(id, 'the store is down')) : store.getByStage(id, s),
  };
  const cache = new SecretCache({ store: reader, refreshIntervalMs: 60_000, jitter: 0, ...options, now: () => now });
  return {
    store,
    cache,
    asked,
    advance: (ms: number) => (now += ms),
    setDown: (value: boolean) => (down = value),
    /** The secret deleted from the store. */
    setMissing: (value: boolean) => (missing = value),
    /** A rotation as the engine makes it: a new version, AWSPENDING, then AWSCURRENT. */
    async rotate(id: string, value: string, finish = true): Promise<string> {
      const token = `v-${Math.random().toString(36).slice(2)}`;
      await store.putPending(id, token, value);
      if (finish) {
        await store.moveStage(id, 'AWSCURRENT', token);
        await store.removeStage(id, 'AWSPENDING', token);
      }
      return token;
    },
  };
}

const login = (password: string) => JSON.stringify({ username: 'app', password });

describe('SecretCache', () => {
  it('reads the value once, then only checks the version id until it changes', async () => {
    const { store, cache, advance, rotate } = setup();
    const first = store.create('db', login('one'));
    expect(await cache.get('db')).toMatchObject({ versionId: first, stage: 'AWSCURRENT', value: login('one') });
    await cache.get('db');
    expect(store.calls).toMatchObject({ describe: 1, read: 1 });

    advance(61_000);
    await cache.get('db');
    expect(store.calls).toMatchObject({ describe: 2, read: 1 });

    const second = await rotate('db', login('two'));
    expect((await cache.get('db')).versionId).toBe(first); // still fresh: no call
    advance(61_000);
    expect(await cache.get('db')).toMatchObject({ versionId: second, value: login('two') });
    expect(store.calls).toMatchObject({ describe: 3, read: 2 });
  });

  it('refreshNow with fresh answers from a check begun after the call, not one already in flight', async () => {
    const { store, rotate } = setup();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // The first describe reads the store at once but answers only when the test opens the gate.
    let held = true;
    const reader: SecretReader = {
      describe: async (id) => {
        const answer = await store.describe(id);
        if (held) {
          held = false;
          await gate;
        }
        return answer;
      },
      getByVersion: (id, v) => store.getByVersion(id, v),
      getByStage: (id, s) => store.getByStage(id, s),
    };
    const cache = new SecretCache({ store: reader, refreshIntervalMs: 60_000 });
    const first = store.create('db', login('one'));
    const early = cache.refreshNow('db'); // in flight: its describe has read the store but not answered yet
    const second = await rotate('db', login('two'));
    const joined = cache.refreshNow('db');
    const [fresh, alsoFresh] = [cache.refreshNow('db', { fresh: true }), cache.refreshNow('db', { fresh: true })];
    open();
    expect((await early).versionId).toBe(first);
    expect((await joined).versionId).toBe(first);
    expect((await fresh).versionId).toBe(second);
    expect((await alsoFresh).versionId).toBe(second);
    expect(store.calls.describe).toBe(2); // the one in flight, and one more for both fresh callers
    expect((await cache.refreshNow('db', { fresh: true })).versionId).toBe(second); // none in flight: checks at once
    expect(store.calls.describe).toBe(3);
  });

  it('refreshNow checks at once, and concurrent reads share one check', async () => {
    const { store, cache, rotate } = setup();
    store.create('db', login('one'));
    await cache.get('db');
    const second = await rotate('db', login('two'));
    const snapshots = await Promise.all(Array.from({ length: 20 }, () => cache.refreshNow('db')));
    expect(new Set(snapshots.map((s) => s.versionId))).toEqual(new Set([second]));
    expect(store.calls.describe).toBe(2);
  });

  it('every snapshot is one version: the username and the password come together', async () => {
    const { store, cache, advance, rotate } = setup({ refreshIntervalMs: 10 });
    store.create('pair', JSON.stringify({ username: 'app', password: 'p0' }));
    for (let i = 1; i <= 20; i++) {
      await rotate('pair', JSON.stringify({ username: i % 2 ? 'app_clone' : 'app', password: `p${i}` }));
      advance(11);
      const { versionId, value } = await cache.get('pair');
      expect(JSON.parse((await store.getByVersion('pair', versionId))!.value)).toEqual(JSON.parse(value));
    }
  });

  it('reads AWSPENDING on demand, between set and finish only', async () => {
    const { store, cache, rotate } = setup();
    store.create('db', login('one'));
    expect(await cache.pending('db')).toBeUndefined();
    const token = await rotate('db', login('two'), false);
    expect(await cache.pending('db')).toMatchObject({ versionId: token, stage: 'AWSPENDING', value: login('two') });
    await store.moveStage('db', 'AWSCURRENT', token);
    expect(await cache.pending('db')).toBeUndefined(); // AWSPENDING on the current version is not pending
  });

  it('serves the last good value while the store is down, for maxStaleMs, then fails loudly', async () => {
    const { store, cache, advance, setDown } = setup({ maxStaleMs: 120_000 });
    const first = store.create('db', login('one'));
    await cache.get('db');
    setDown(true);
    advance(61_000);
    expect((await cache.get('db')).versionId).toBe(first);
    advance(50_000);
    expect((await cache.get('db')).versionId).toBe(first);
    advance(20_000);
    await expect(cache.get('db')).rejects.toBeInstanceOf(SecretCacheStaleError);
    setDown(false);
    // The store is asked again once the backoff after the last error has passed (seconds, not the interval).
    advance(5_000);
    expect((await cache.get('db')).versionId).toBe(first);
  });

  it('backs off after store errors: callers meanwhile get the last answer, the store is asked at doubling intervals', async () => {
    const t = setup({ random: () => 0.5 });
    const { store, cache, advance, setDown } = t;
    store.create('db', login('one'));
    setDown(true);
    const asked = () => t.asked.describe;
    await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
    expect(asked()).toBe(1);
    for (let i = 0; i < 50; i++) await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
    expect(asked()).toBe(1); // within the first second: no call
    advance(1000);
    await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
    expect(asked()).toBe(2);
    advance(1000); // the second wait is 2 s
    await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
    expect(asked()).toBe(2);
    advance(1000);
    await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
    expect(asked()).toBe(3);
    setDown(false);
    advance(4000);
    await cache.get('db');
    expect(asked()).toBe(4);
  });

  it('asks the store at once for a fresh answer, backoff or not; a secret that is gone is not served stale', async () => {
    const t = setup({ random: () => 0.5 });
    const { store, cache, setDown } = t;
    store.create('db', login('one'));
    await cache.get('db');
    setDown(true);
    await expect(cache.refreshNow('db')).resolves.toBeDefined(); // served stale, backing off now
    const before = t.asked.describe;
    await cache.refreshNow('db', { fresh: true }).catch(() => undefined);
    expect(t.asked.describe).toBe(before + 1);
    setDown(false);
    t.setMissing(true);
    await expect(cache.refreshNow('db', { fresh: true })).rejects.toBeInstanceOf(SecretNotFoundError);
    await expect(cache.get('db')).rejects.toBeInstanceOf(SecretNotFoundError);
  });

  it('keeps at most maxEntries secrets, forgetting the least recently read', async () => {
    const { store, cache, asked } = setup({ maxEntries: 2 });
    for (const id of ['a', 'b', 'c']) store.create(id, login(id));
    await cache.get('a');
    await cache.get('b');
    await cache.get('a'); // b is now the least recently read
    await cache.get('c');
    const before = asked.describe;
    await cache.get('a');
    expect(asked.describe).toBe(before); // still cached
    await cache.get('b');
    expect(asked.describe).toBe(before + 1); // forgotten, read again
  });

  it('refuses options that are missing or wrong when it is made, naming them', () => {
    expect(() => new SecretCache(undefined as never)).toThrow('SecretCache: options must be an object');
    expect(() => new SecretCache({} as never)).toThrow(
      'SecretCache: store: is required (new AwsSecretsManagerStore(), or any SecretStore)',
    );
    expect(() => new SecretCache({ store: {} as never, refreshIntervalMs: 0 })).toThrow(
      /store: has no describe\(\).*refreshIntervalMs: must be a number of at least 1/,
    );
  });

  it('a secret that does not exist fails at once, and a cold cache does not hide an outage', async () => {
    const { cache, setDown, store } = setup();
    await expect(cache.get('nope')).rejects.toBeInstanceOf(SecretNotFoundError);
    store.create('db', login('one'));
    setDown(true);
    await expect(cache.get('db')).rejects.toBeInstanceOf(UnavailableError);
  });

  it('spreads refreshes with jitter around the interval', async () => {
    const rolls = [0, 1];
    const { store, cache, advance } = setup({ jitter: 0.1, random: () => rolls.shift() ?? 0.5 });
    store.create('db', login('one'));
    await cache.get('db'); // due in 54 s (random 0: -10 %)
    advance(55_000);
    await cache.get('db'); // checked again; next due in 66 s (random 1: +10 %)
    expect(store.calls.describe).toBe(2);
    advance(60_000);
    await cache.get('db');
    expect(store.calls.describe).toBe(2);
    advance(7_000);
    await cache.get('db');
    expect(store.calls.describe).toBe(3);
  });
});
