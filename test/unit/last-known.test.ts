import { StoreRejectedError, UnavailableError } from 'rotor-consumers/core';
import { InMemorySecretStore, type SecretStore } from 'rotor-consumers/stores';
import { describe, expect, it } from 'vitest';
import { LastKnownCurrent } from '../../packages/rotor/src/activities/last-known';

/** An in-memory store that fails every read with `failure()` while `down` holds. */
function flakyStore(failure: () => Error) {
  const inner = new InMemorySecretStore();
  const state = { down: false };
  const guard = <T>(read: () => Promise<T>) => (state.down ? Promise.reject(failure()) : read());
  const store: SecretStore = {
    description: inner.description,
    describe: (id) => guard(() => inner.describe(id)),
    getByStage: (id, stage) => guard(() => inner.getByStage(id, stage)),
    getByVersion: (id, version) => guard(() => inner.getByVersion(id, version)),
    putPending: (id, token, value) => inner.putPending(id, token, value),
    moveStage: (id, stage, version) => inner.moveStage(id, stage, version),
    removeStage: (id, stage, version) => inner.removeStage(id, stage, version),
  };
  return { inner, store, state };
}

const away = () => new UnavailableError('t', 'did not answer');

/** Secret `t` ('template-1') read once through a memory on `now`; `current()` reads it again through a new view. */
async function readOnce(failure: () => Error = away, now: () => number = Date.now) {
  const flaky = flakyStore(failure);
  flaky.inner.create('t', 'template-1');
  const reads = new LastKnownCurrent(now);
  const current = () => reads.over(flaky.store).getByStage('t', 'AWSCURRENT');
  await current();
  return { ...flaky, reads, current };
}

describe('LastKnownCurrent', () => {
  it('gives the current version read last, through any view of it, while the store does not answer', async () => {
    // The endpoint reads through one view, a lease step through another: one memory.
    const { store, state, reads, current } = await readOnce();
    state.down = true;
    expect((await current())?.value).toBe('template-1');
    // Only AWSCURRENT, and only what was read: other labels and other secrets still fail.
    await expect(reads.over(store).getByStage('t', 'AWSPREVIOUS')).rejects.toThrow(UnavailableError);
    await expect(reads.over(store).getByStage('other', 'AWSCURRENT')).rejects.toThrow(UnavailableError);
  });

  it('forgets a secret the store no longer has, and says when what it gives was read', async () => {
    let now = 1_000;
    const { store, state, reads, current } = await readOnce(away, () => now);
    now = 5_000;
    state.down = true;
    await current();
    expect(reads.readAt('t')).toBe(1_000); // from memory: read at 1 s, not now
    state.down = false;
    await current();
    expect(reads.readAt('t')).toBe(5_000);
    // Gone from the store (no current version): a later outage does not bring it back.
    const empty: SecretStore = { ...store, getByStage: async () => undefined };
    expect(await reads.over(empty).getByStage('t', 'AWSCURRENT')).toBeUndefined();
    state.down = true;
    await expect(current()).rejects.toThrow(UnavailableError);
    expect(reads.readAt('t')).toBeUndefined();
  });

  it('keeps a value a day at most, and never answers for a store that refuses', async () => {
    let now = 0;
    const { state, current } = await readOnce(away, () => now);
    state.down = true;
    now = 24 * 3_600_000 - 1;
    expect((await current())?.value).toBe('template-1');
    now = 24 * 3_600_000;
    await expect(current()).rejects.toThrow(UnavailableError);

    const refusing = await readOnce(() => new StoreRejectedError('t', 'permission denied'));
    refusing.state.down = true;
    await expect(refusing.current()).rejects.toThrow(StoreRejectedError);
    expect(refusing.reads.readAt('t')).toBeUndefined(); // forgotten: refused is not away
  });
});
