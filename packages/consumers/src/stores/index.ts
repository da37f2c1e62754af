/**
 * rotor-consumers/stores: the SecretStore contract (versions and AWS's staging labels) and its implementations.
 * Each store loads its SDK with its first request.
 */
export { AwsSecretsManagerStore, type AwsSecretsManagerStoreOptions } from './aws-secrets-manager';
export { InMemorySecretStore } from './in-memory';
export { OpenBaoKvStore, type OpenBaoKvStoreOptions } from './openbao-kv';
export type { OpenBaoAuth, OpenBaoConnectionOptions } from './openbao-client';
export { StoreRouter } from './store-router';
export { LeasedCredentials, type LeaseCredential, type LeasedCredentialsOptions } from './leased-credentials';
export {
  versionWithStage,
  type SecretDescription,
  type SecretStore,
  type SecretVersionInfo,
  type StoredValue,
} from './secret-store';
