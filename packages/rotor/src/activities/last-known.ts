import { UnavailableError } from 'rotor-consumers/core';
import type { SecretStore, StoredValue } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';

/** How old a value kept for an outage may be. */
const STALE_FOR_MS = 24 * 3_600_000;
/** Secrets kept at most (templates and their admin logins): the oldest read leaves first. */
const MAX_ENTRIES = 1000;

/**
 * The AWSCURRENT versions leases read last, kept in the worker's memory, so a store outage cannot let the logins of
 * live leases lapse: through `over(store)`, a current version the store cannot give (`UnavailableError`) is the one
 * read last, a day old at most. One per worker, shared by the lease endpoint and the lease steps: a lease the endpoint
 * opened renews through an outage that began before any of its steps read its template. For leases only: a
 * rotation reads labels fresh, always.
 */
export class LastKnownCurrent {
  readonly #known = new Map<string, { at: number; version: StoredValue }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** `store`, its current versions kept here as they are read and given back while it does not answer. */
  over(store: SecretStore): SecretStore {
    return {
      description: store.description,
      describe: (secretId) => store.describe(secretId),
      getByVersion: (secretId, versionId) => store.getByVersion(secretId, versionId),
      getByStage: async (secretId, stage) => {
        if (stage !== Stage.current) return store.getByStage(secretId, stage);
        try {
          const version = await store.getByStage(secretId, stage);
          // A secret gone (or without a current version) is forgotten: a later outage does not bring it back.
          if (version) this.#keep(secretId, version);
          else this.#known.delete(secretId);
          return version;
        } catch (error) {
          const known = this.#known.get(secretId);
          if (error instanceof UnavailableError && known && this.now() - known.at < STALE_FOR_MS) return known.version;
          // A refusal (a policy revoked, a secret deleted) forgets it too.
          if (!(error instanceof UnavailableError)) this.#known.delete(secretId);
          throw error;
        }
      },
      putPending: (secretId, token, value) => store.putPending(secretId, token, value),
      moveStage: (secretId, stage, versionId) => store.moveStage(secretId, stage, versionId),
      removeStage: (secretId, stage, versionId) => store.removeStage(secretId, stage, versionId),
    };
  }

  /**
   * When the value `over` gave last for `secretId` was read from the store (ms): earlier than now when it came from
   * memory. Undefined for a secret never read.
   */
  readAt(secretId: string): number | undefined {
    return this.#known.get(secretId)?.at;
  }

  #keep(secretId: string, version: StoredValue): void {
    this.#known.delete(secretId);
    this.#known.set(secretId, { at: this.now(), version });
    while (this.#known.size > MAX_ENTRIES) this.#known.delete(this.#known.keys().next().value!);
  }
}
