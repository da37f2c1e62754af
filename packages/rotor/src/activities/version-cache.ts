import type { SecretStore, StoredValue } from 'rotor-consumers/stores';

/** How long a version read stays in the worker's memory, and how many are kept. */
const TTL_MS = 120_000;
const MAX_ENTRIES = 1000;

/**
 * The store with the versions it has read (or written) kept for a short while. A version's value never changes
 * once written (the store refuses a second value for the same version id), so steps of one rotation read each
 * version once instead of once per step. Only values found are kept; labels are always read fresh (`describe`,
 * `getByStage`). The `stages` of a cached version are those of its first read: steps take labels from `describe`.
 * Entries leave after TTL_MS, oldest first past MAX_ENTRIES.
 */
export function withVersionCache(store: SecretStore, now: () => number = Date.now): SecretStore {
  const entries = new Map<string, { version: StoredValue; until: number }>();
  const key = (secretId: string, versionId: string) => `${secretId}\0${versionId}`;
  const keep = (secretId: string, version: StoredValue) => {
    const k = key(secretId, version.versionId);
    entries.delete(k);
    entries.set(k, { version, until: now() + TTL_MS });
    while (entries.size > MAX_ENTRIES) entries.delete(entries.keys().next().value!);
  };
  return {
    description: store.description,
    describe: (secretId) => store.describe(secretId),
    async getByVersion(secretId, versionId) {
      const k = key(secretId, versionId);
      const hit = entries.get(k);
      if (hit && hit.until > now()) return hit.version;
      entries.delete(k);
      const version = await store.getByVersion(secretId, versionId);
      if (version) keep(secretId, version);
      return version;
    },
    async getByStage(secretId, stage) {
      const version = await store.getByStage(secretId, stage);
      if (version) keep(secretId, version);
      return version;
    },
    async putPending(secretId, token, value) {
      await store.putPending(secretId, token, value);
      keep(secretId, { versionId: token, stages: ['AWSPENDING'], value });
    },
    moveStage: (secretId, stage, versionId) => store.moveStage(secretId, stage, versionId),
    removeStage: (secretId, stage, versionId) => store.removeStage(secretId, stage, versionId),
  };
}
