import { describe, expect, it } from 'vitest';
import { SecretCache, type LoginEvent, type SecretReader } from '../src';
import { Generations, jitteredLifetimeMs, type PoolDriver } from '../src/generations';
import { InMemorySecretStore } from '../src/stores/in-memory';

type FakePool = { password: string; login: () => void; turn: () => Promise<(error?: unknown) => void> };

/** A fake driver (unit test only): a "pool" is its password; the "database" accepts one password at a time. */
function setup() {
  const db = { accepts: 'p1', down: false, attempts: 0 };
  const ended: string[] = [];
  const driver: PoolDriver<FakePool> = {
    open: (login, onLogin, turn) => ({ password: login.password, login: onLogin, turn }),
    async probe(pool) {
      db.attempts++;
      if (db.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      if (pool.password !== db.accepts)
        throw Object.assign(new Error('password authentication failed'), { code: '28P01' });
      pool.login();
    },
    end: async (pool) => void ended.push(pool.password),
    authErrorClass: (error) => ((error as { code?: string }).code === '28P01' ? '28P01' : undefined),
    endWaitsForBusy: true,
  };
  const store = new InMemorySecretStore();
  /** Runs after each read the cache makes of the store (a rotation step landing between two reads, say). */
  const afterRead: Array<() => Promise<void>> = [];
  const then = async <T>(result: Promise<T>): Promise<T> => {
    const value = await result;
    await afterRead.shift()?.();
    return value;
  };
  const reader: SecretReader = {
    describe: (id) => then(store.describe(id)),
    getByVersion: (id, v) => then(store.getByVersion(id, v)),
    getByStage: (id, s) => then(store.getByStage(id, s)),
  };
  const events: LoginEvent[] = [];
  const cache = new SecretCache({ store: reader, refreshIntervalMs: 3_600_000 });
  const generations = new Generations(
    { cache, secretId: 's', maxFailedLogins: 2, backoffMs: 60_000, reporter: { record: (e) => events.push(e) } },
    driver,
    () => undefined,
  );
  const value = (password: string) => JSON.stringify({ host: 'h', username: 'u', password });
  /** A query: logs in (as the fake pool's every use does) with the generation's password. */
  const query = () => generations.run((pool) => driver.probe(pool).then(() => pool.password));
  return { db, ended, store, afterRead, events, generations, value, query };
}

describe('Generations (the rotating pools, driver-neutral)', () => {
  it('follows a rotation through AWSPENDING between set and finish, reporting logins by version id only', async () => {
    const t = setup();
    const first = await t.store.create('s', t.value('p1'));
    expect(await t.query()).toBe('p1');
    await t.store.putPending('s', 'v2', t.value('p2'));
    t.db.accepts = 'p2'; // set: the database now takes the new password; AWSCURRENT is still p1
    expect(await t.query()).toBe('p2');
    expect(t.generations.active).toMatchObject({ versionId: 'v2', replaces: first });
    expect(t.ended).toContain('p1');
    expect(t.events.map((e) => `${e.versionId}:${e.outcome}`)).toEqual([
      `${first}:success`,
      `${first}:success`,
      `${first}:auth-failure`,
      'v2:success',
      'v2:success',
    ]);
    expect(JSON.stringify(t.events)).not.toMatch(/p1|p2/);
  });

  it("finds the new credential after a refused login wherever the rotation's finish lands among its reads of the store", async () => {
    // The refusal comes after set; finish may land before, between or after the reads that look for the new version.
    for (let readsBeforeFinish = 0; readsBeforeFinish <= 3; readsBeforeFinish++) {
      const t = setup();
      await t.store.create('s', t.value('p1'));
      expect(await t.query()).toBe('p1');
      await t.store.putPending('s', 'v2', t.value('p2'));
      t.db.accepts = 'p2';
      const finish = async () => {
        await t.store.moveStage('s', 'AWSCURRENT', 'v2');
        await t.store.removeStage('s', 'AWSPENDING', 'v2');
      };
      if (readsBeforeFinish === 0) await finish();
      else t.afterRead.push(...Array.from({ length: readsBeforeFinish - 1 }, () => async () => undefined), finish);
      expect(await t.query(), `finish after ${readsBeforeFinish} reads`).toBe('p2');
      expect(t.generations.active?.versionId).toBe('v2');
    }
  });

  it('does not count or report network errors as refused logins', async () => {
    const t = setup();
    await t.store.create('s', t.value('p1'));
    await t.query();
    t.db.down = true;
    await expect(t.query()).rejects.toThrow(/ECONNREFUSED/);
    await expect(t.query()).rejects.toThrow(/ECONNREFUSED/);
    await expect(t.query()).rejects.toThrow(/ECONNREFUSED/);
    expect(t.events.filter((e) => e.outcome === 'auth-failure')).toEqual([]);
    t.db.down = false;
    expect(await t.query()).toBe('p1');
  });

  it('stops trying a refused credential after maxFailedLogins in a row: a stale secret never locks the account', async () => {
    const t = setup();
    await t.store.create('s', t.value('p1'));
    await t.query();
    t.db.accepts = 'changed-elsewhere';
    await expect(t.query()).rejects.toThrow(/password authentication failed/);
    await expect(t.query()).rejects.toThrow(/password authentication failed/);
    const attempts = t.db.attempts;
    for (let i = 0; i < 20; i++) await expect(t.query()).rejects.toThrow(/password authentication failed/);
    expect(t.db.attempts).toBe(attempts);
  });

  /** A database whose every login takes 5 ms, counting logins in flight; its pools log in on every use. */
  async function slowLogins(backoffMs: number) {
    const db = { accepts: 'p1', attempts: 0, inFlight: 0, most: 0 };
    const driver: PoolDriver<FakePool> = {
      open: (login, onLogin, turn) => ({ password: login.password, login: onLogin, turn }),
      async probe(pool) {
        const over = await pool.turn();
        try {
          db.attempts++;
          db.inFlight++;
          db.most = Math.max(db.most, db.inFlight);
          await new Promise((resolve) => setTimeout(resolve, 5));
          db.inFlight--;
          if (pool.password !== db.accepts)
            throw Object.assign(new Error('password authentication failed'), { code: '28P01' });
          pool.login();
          over();
        } catch (error) {
          over(error);
          throw error;
        }
      },
      end: async () => undefined,
      authErrorClass: (error) => ((error as { code?: string }).code === '28P01' ? '28P01' : undefined),
      endWaitsForBusy: true,
    };
    const store = new InMemorySecretStore();
    await store.create('s', JSON.stringify({ host: 'h', username: 'u', password: 'p1' }));
    const cache = new SecretCache({ store, refreshIntervalMs: 3_600_000 });
    const generations = new Generations({ cache, secretId: 's', maxFailedLogins: 3, backoffMs }, driver, () => {});
    const query = () => generations.run((pool) => driver.probe(pool));
    const burst = () => Promise.allSettled(Array.from({ length: 10 }, query));
    return { db, query, burst };
  }

  it('logs in at most maxFailedLogins at a time: the first burst after a password changed behind the pool costs 3 refused logins, not 10', async () => {
    const { db, query, burst } = await slowLogins(1000);
    db.most = 0;
    expect((await burst()).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(db.most).toBe(3); // ten requests, logins three at a time
    await query();
    db.accepts = 'changed-elsewhere';
    const before = db.attempts;
    const outcomes = await burst(); // all ten ask for a login before the first refusal comes back
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(db.attempts - before).toBe(3);
    for (const o of outcomes) expect(String((o as PromiseRejectedResult).reason)).toMatch(/password authentication/);
  });

  it('once a version was refused, tries it one request at a time: bursts of 10 cost one refused login each', async () => {
    // Pauses of 50 ms doubling (up to 400 ms here): longer than a burst however slow the machine, shorter than the waits.
    const { db, query, burst } = await slowLogins(50);
    await query();
    db.accepts = 'changed-elsewhere';
    await burst();
    for (let pause = 0; pause < 3; pause++) {
      await new Promise((resolve) => setTimeout(resolve, 1100)); // past the pause and the once-a-second check
      const before = db.attempts;
      db.most = 0;
      const outcomes = await burst();
      expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
      expect(db.most).toBe(1);
      expect(db.attempts - before).toBe(1);
    }
    // Accepted again: one request logs in, the others follow, concurrently again.
    db.accepts = 'p1';
    await new Promise((resolve) => setTimeout(resolve, 1100));
    db.most = 0;
    expect((await burst()).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(db.most).toBeGreaterThan(1);
  });

  it('switches at once to a different version even while the refused one is paused', async () => {
    const t = setup();
    await t.store.create('s', t.value('p1'));
    await t.query();
    t.db.accepts = 'p3';
    await expect(t.query()).rejects.toThrow();
    await expect(t.query()).rejects.toThrow();
    await t.store.putPending('s', 'v3', t.value('p3'));
    await t.store.moveStage('s', 'AWSCURRENT', 'v3');
    await t.store.removeStage('s', 'AWSPENDING', 'v3');
    expect(await t.query().catch(() => t.query())).toBe('p3');
  });
});

describe('jitteredLifetimeMs', () => {
  it('spreads a lifetime by at most the jitter, and is absent without one', () => {
    expect(jitteredLifetimeMs({})).toBeUndefined();
    expect(jitteredLifetimeMs({ maxLifetimeMs: 1000, lifetimeJitter: 0.2 }, () => 0)).toBe(800);
    expect(jitteredLifetimeMs({ maxLifetimeMs: 1000, lifetimeJitter: 0.2 }, () => 1)).toBe(1200);
    expect(jitteredLifetimeMs({ maxLifetimeMs: 1000 }, () => 0.5)).toBe(1000);
    expect(jitteredLifetimeMs({ maxLifetimeMs: 1000, lifetimeJitter: 5 }, () => 0)).toBe(500);
  });
});
