import { attemptSignal } from '../activities/attempt';
import { InvalidInputError, UnavailableError } from 'rotor-consumers/core';
import type { SecretStore } from 'rotor-consumers/stores';

/** The error a guard gives up with: retryable, so the step's next attempt queues again. */
function gaveUp(what: string): UnavailableError {
  return new UnavailableError(
    undefined,
    `throttled: the step's attempt ran out of time waiting for ${what}; it will be retried`,
  );
}

/** Rejects when `signal` aborts; never settles otherwise. */
function aborted(signal: AbortSignal, what: string): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(gaveUp(what));
    else signal.addEventListener('abort', () => reject(gaveUp(what)), { once: true });
  });
}

/**
 * Paces calls to at most `perSecond` per second: acquisitions complete at least 1000/perSecond ms apart, so no
 * 1-second sliding window ever holds more than `perSecond` of them. There is no burst; waiters are served FIFO.
 * Each gap is measured from when the previous acquisition actually completed, so a late timer can only slow the
 * pace, never bunch acquisitions together.
 *
 * The limit is per process: every worker process has its own limiter. Operators size it as the fleet-wide ceiling
 * (e.g. the store's API quota) divided by the number of workers.
 */
export class RateLimiter {
  readonly #intervalMs: number;
  #nextAt = -Infinity;
  #queue: Promise<void> = Promise.resolve();

  /** `now` is a monotonic clock in ms (default `performance.now`); `sleep` waits (default `setTimeout`). */
  constructor(
    perSecond: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    if (!(perSecond > 0 && Number.isFinite(perSecond)))
      throw new InvalidInputError(`rate limit: ${perSecond} per second is not a positive number`);
    this.#intervalMs = 1000 / perSecond;
  }

  /**
   * Resolves when the caller may make one call. With `signal`, rejects once it aborts; a waiter that gave up keeps
   * its place in the queue but takes no slot when its turn comes.
   */
  acquire(signal?: AbortSignal): Promise<void> {
    const turn = this.#queue.then(() => this.#take(signal));
    this.#queue = turn.catch(() => undefined);
    return signal ? Promise.race([turn, aborted(signal, 'the store write ceiling')]) : turn;
  }

  async #take(signal?: AbortSignal): Promise<void> {
    let t = this.now();
    while (t < this.#nextAt) {
      if (signal?.aborted) return;
      await this.sleep(Math.ceil(this.#nextAt - t));
      t = this.now();
    }
    if (signal?.aborted) return;
    this.#nextAt = t + this.#intervalMs;
  }
}

/**
 * At most `limit` concurrent holders per key (e.g. per database host), served FIFO within each key. Keys do not
 * wait on each other.
 */
export class KeyedSemaphore {
  readonly #slots = new Map<string, { holders: number; waiters: Array<() => void> }>();

  constructor(private readonly limit: number) {
    if (!(Number.isInteger(limit) && limit > 0))
      throw new InvalidInputError(`concurrency limit: ${limit} is not a positive integer`);
  }

  /**
   * Runs `work` once a slot for `key` is free; the slot is released however `work` ends. With `signal`, gives up
   * waiting (UnavailableError) once it aborts.
   */
  async run<T>(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.#acquire(key, signal);
    try {
      return await work();
    } finally {
      this.#release(key);
    }
  }

  /** How many holders `key` has now. */
  inFlight(key: string): number {
    return this.#slots.get(key)?.holders ?? 0;
  }

  async #acquire(key: string, signal?: AbortSignal): Promise<void> {
    const slot = this.#slots.get(key) ?? { holders: 0, waiters: [] };
    this.#slots.set(key, slot);
    if (slot.holders < this.limit) {
      slot.holders++;
      return;
    }
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => slot.waiters.push((wake = resolve)));
    if (!signal) return woken;
    try {
      await Promise.race([woken, aborted(signal, `a slot on ${key}`)]);
    } catch (error) {
      const i = slot.waiters.indexOf(wake);
      if (i >= 0) slot.waiters.splice(i, 1);
      // Woken and aborted at once: the slot was handed over, give it on.
      else this.#release(key);
      throw error;
    }
  }

  /** Hands the slot straight to the next waiter, so a newcomer cannot overtake the queue. */
  #release(key: string): void {
    const slot = this.#slots.get(key);
    if (!slot) return;
    const next = slot.waiters.shift();
    if (next) next();
    else if (--slot.holders === 0) this.#slots.delete(key);
  }
}

/**
 * Wraps `store` so each write (putPending, moveStage, removeStage) first waits for `limiter` (giving up, inside an
 * activity, when its attempt runs out of time); reads and the description pass through untouched.
 */
export function throttledStore(store: SecretStore, limiter: RateLimiter): SecretStore {
  return {
    description: store.description,
    describe: (secretId) => store.describe(secretId),
    getByStage: (secretId, stage) => store.getByStage(secretId, stage),
    getByVersion: (secretId, versionId) => store.getByVersion(secretId, versionId),
    putPending: async (secretId, token, value) => {
      await limiter.acquire(attemptSignal());
      return store.putPending(secretId, token, value);
    },
    moveStage: async (secretId, stage, versionId) => {
      await limiter.acquire(attemptSignal());
      return store.moveStage(secretId, stage, versionId);
    },
    removeStage: async (secretId, stage, versionId) => {
      await limiter.acquire(attemptSignal());
      return store.removeStage(secretId, stage, versionId);
    },
  };
}
