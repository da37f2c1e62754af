import { InvalidInputError } from '../errors';
import { storeNameOf } from '../secret-ids';
import type { Stage } from '../stages';
import type { SecretDescription, SecretStore, StoredValue } from './secret-store';

/**
 * Several stores behind one SecretStore: an id that starts with a store's name and a colon
 * (`bao:secret/prod/db/orders`) goes to that store, every other id (a plain id, an ARN) to the default store.
 * An id naming a store that is not here is refused, naming the stores there are.
 *
 * @example
 *   const store = new StoreRouter({ aws: new AwsSecretsManagerStore(), bao: new OpenBaoKvStore({ ... }) }, 'aws');
 */
export class StoreRouter implements SecretStore {
  readonly description: string;
  readonly #stores: ReadonlyMap<string, SecretStore>;
  readonly #fallback: SecretStore;

  constructor(stores: Record<string, SecretStore>, defaultStore: string) {
    this.#stores = new Map(Object.entries(stores));
    const fallback = this.#stores.get(defaultStore);
    if (!fallback)
      throw new InvalidInputError(`default store ${JSON.stringify(defaultStore)} is not one of ${this.#names()}`);
    this.#fallback = fallback;
    this.description = [...this.#stores.values()].map((s) => s.description).join(' and ');
  }

  /** The store that keeps `secretId`. */
  storeFor(secretId: string): SecretStore {
    const name = storeNameOf(secretId);
    if (name === undefined) return this.#fallback;
    const store = this.#stores.get(name);
    if (!store)
      throw new InvalidInputError(`secret ${secretId} names the store ${name}, which is not one of ${this.#names()}`);
    return store;
  }

  describe(secretId: string): Promise<SecretDescription> {
    return this.storeFor(secretId).describe(secretId);
  }

  getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined> {
    return this.storeFor(secretId).getByStage(secretId, stage);
  }

  getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined> {
    return this.storeFor(secretId).getByVersion(secretId, versionId);
  }

  putPending(secretId: string, token: string, value: string): Promise<void> {
    return this.storeFor(secretId).putPending(secretId, token, value);
  }

  moveStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    return this.storeFor(secretId).moveStage(secretId, stage, versionId);
  }

  removeStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    return this.storeFor(secretId).removeStage(secretId, stage, versionId);
  }

  #names(): string {
    return [...this.#stores.keys()].join(', ');
  }
}
