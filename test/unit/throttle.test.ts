import { describe, expect, it, vi } from 'vitest';
import { Stage } from '../../packages/rotor/src/shared/constants';
import { ErrorType, InvalidInputError } from 'rotor-consumers/core';
import type { SecretDescription, SecretStore, StoredValue } from 'rotor-consumers/stores';
import { KeyedSemaphore, RateLimiter, throttledStore } from '../../packages/rotor/src/worker/throttle';

/** The most timestamps found in any half-open window [t, t + windowMs). */
function busiestWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  return Math.max(...sorted.map((t, i) => sorted.slice(i).filter((u) => u < t + windowMs).length));
}

/** A clock that only moves when the limiter sleeps. */
function fakeClock() {
  const clock = { now: 0 };
  return { clock, now: () => clock.now, sleep: async (ms: number) => void (clock.now += ms) };
}

describe('RateLimiter', () => {
  it('never lets more than perSecond acquisitions complete in any 1-second window', async () => {
    const limiter = new RateLimiter(20);
    const start = performance.now();
    const completedAt: number[] = [];
    await Promise.all(
      Array.from({ length: 60 }, () => limiter.acquire().then(() => completedAt.push(performance.now()))),
    );
    expect(completedAt).toHaveLength(60);
    expect(busiestWindow(completedAt, 1000)).toBeLessThanOrEqual(20);
    expect(performance.now() - start).toBeLessThan(4000);
  });

  it('serves waiters in the order they asked, evenly spaced', async () => {
    const { clock, now, sleep } = fakeClock();
    const limiter = new RateLimiter(10, now, sleep);
    const served: Array<[number, number]> = [];
    await Promise.all([0, 1, 2, 3, 4].map((i) => limiter.acquire().then(() => served.push([i, clock.now]))));
    expect(served).toEqual([
      [0, 0],
      [1, 100],
      [2, 200],
      [3, 300],
      [4, 400],
    ]);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new RateLimiter(0)).toThrow(InvalidInputError);
    expect(() => new RateLimiter(Number.NaN)).toThrow(InvalidInputError);
  });
});

describe('KeyedSemaphore', () => {
  it('holds each key to its limit while other keys run alongside', async () => {
    const semaphore = new KeyedSemaphore(2);
    const running = { A: 0, B: 0 };
    const peak = { A: 0, B: 0 };
    const task = (key: 'A' | 'B') =>
      semaphore.run(key, async () => {
        running[key]++;
        peak[key] = Math.max(peak[key], running[key]);
        expect(semaphore.inFlight(key)).toBeLessThanOrEqual(2);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running[key]--;
      });
    await Promise.all([...Array.from({ length: 10 }, () => task('A')), ...Array.from({ length: 10 }, () => task('B'))]);
    expect(peak).toEqual({ A: 2, B: 2 });
    expect([semaphore.inFlight('A'), semaphore.inFlight('B')]).toEqual([0, 0]);
  });

  it('does not make a key wait for another key that is full', async () => {
    const semaphore = new KeyedSemaphore(1);
    let releaseA!: () => void;
    const holdingA = semaphore.run('A', () => new Promise<void>((resolve) => (releaseA = resolve)));
    await expect(semaphore.run('B', async () => 'done')).resolves.toBe('done');
    releaseA();
    await holdingA;
  });

  it('serves each key in FIFO order', async () => {
    const semaphore = new KeyedSemaphore(1);
    const order: number[] = [];
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        semaphore.run('A', async () => {
          await new Promise((resolve) => setTimeout(resolve, 3 - i));
          order.push(i);
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3]);
  });

  it('releases the slot when the work throws', async () => {
    const semaphore = new KeyedSemaphore(1);
    await expect(semaphore.run('A', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(semaphore.inFlight('A')).toBe(0);
    await expect(semaphore.run('A', async () => 42)).resolves.toBe(42);
  });
});

describe('throttledStore', () => {
  const version: StoredValue = { versionId: 'v1', stages: [Stage.current], value: 'not-for-logs' };
  const description: SecretDescription = {
    secretId: 's',
    versions: [{ versionId: 'v1', stages: [Stage.current] }],
    tags: {},
  };

  function fakeStore() {
    const calls: string[] = [];
    const store: SecretStore = {
      description: 'in-memory store',
      describe: async () => (calls.push('describe'), description),
      getByStage: async () => (calls.push('getByStage'), version),
      getByVersion: async () => (calls.push('getByVersion'), version),
      putPending: async () => void calls.push('putPending'),
      moveStage: async () => void calls.push('moveStage'),
      removeStage: async () => void calls.push('removeStage'),
    };
    return { store, calls };
  }

  it('passes reads through without waiting for the limiter', async () => {
    const { store, calls } = fakeStore();
    const limiter = new RateLimiter(1);
    const acquire = vi.spyOn(limiter, 'acquire');
    const throttled = throttledStore(store, limiter);
    expect(throttled.description).toBe('in-memory store');
    expect(await throttled.describe('s')).toBe(description);
    expect(await throttled.getByStage('s', Stage.current)).toBe(version);
    expect(await throttled.getByVersion('s', 'v1')).toBe(version);
    expect(calls).toEqual(['describe', 'getByStage', 'getByVersion']);
    expect(acquire).not.toHaveBeenCalled();
  });

  it('makes each write wait for the limiter before it reaches the store', async () => {
    const { store, calls } = fakeStore();
    const limiter = new RateLimiter(1);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const acquire = vi.spyOn(limiter, 'acquire').mockImplementation(() => gate);
    const throttled = throttledStore(store, limiter);
    const writes = Promise.all([
      throttled.putPending('s', 'v2', 'new-value'),
      throttled.moveStage('s', Stage.current, 'v2'),
      throttled.removeStage('s', Stage.pending, 'v2'),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(calls).toEqual([]);
    open();
    await writes;
    expect(calls).toEqual(['putPending', 'moveStage', 'removeStage']);
    expect(acquire).toHaveBeenCalledTimes(3);
  });
});

describe('guards give up when the attempt runs out of time', () => {
  it('a rate-limit waiter that gives up rejects as retryable and takes no slot from those behind it', async () => {
    const limiter = new RateLimiter(10);
    const t0 = performance.now();
    await limiter.acquire();
    await expect(limiter.acquire(AbortSignal.timeout(20))).rejects.toMatchObject({
      type: ErrorType.Unavailable,
      nonRetryable: false,
    });
    await limiter.acquire();
    // The next acquisition comes one interval (100 ms) after the first, not two: the waiter that gave up took none.
    expect(performance.now() - t0).toBeLessThan(180);
  });

  it('a semaphore waiter that gives up leaves the queue, and the slot goes to the next one', async () => {
    const semaphore = new KeyedSemaphore(1);
    let release!: () => void;
    const holding = semaphore.run('db', () => new Promise<void>((r) => (release = r)));
    const gaveUp = semaphore.run('db', async () => 'never', AbortSignal.timeout(20));
    await expect(gaveUp).rejects.toMatchObject({
      type: ErrorType.Unavailable,
      message: expect.stringMatching(/a slot on db/),
    });
    const next = semaphore.run('db', async () => 'next');
    release();
    await holding;
    expect(await next).toBe('next');
    expect(semaphore.inFlight('db')).toBe(0);
  });
});
