/**
 * rotor-consumers: what applications import to pick up every new credential without a restart. Importing it loads
 * only this package and Node's built-ins: nothing of Temporal, no native module, and each of the AWS SDK, `pg`,
 * `mysql2` (optional peer dependencies), jose and zod loads when first used.
 */
export {
  SecretCache,
  SecretCacheStaleError,
  type SecretCacheOptions,
  type SecretReader,
  type SecretSnapshot,
} from './secret-cache';
export { createRotatingPgPool, isPgAuthError, RotatingPgPool, type RotatingPgPoolOptions } from './pg-pool';
export {
  createRotatingMysqlPool,
  isMysqlAuthError,
  RotatingMysqlPool,
  type RotatingMysqlPoolOptions,
} from './mysql-pool';
export {
  ConsumerReporter,
  type ConsumerReporterOptions,
  type LoginEvent,
  type LoginReporter,
  type ReportBatch,
  type ReportEntry,
} from './reporter';
export { AwsSecretsManagerStore, type AwsSecretsManagerStoreOptions } from './stores/aws-secrets-manager';
export { InMemorySecretStore } from './stores/in-memory';
export { OpenBaoKvStore, type OpenBaoKvStoreOptions } from './stores/openbao-kv';
export type { OpenBaoAuth } from './stores/openbao-client';
export { StoreRouter } from './stores/store-router';
export { LeasedCredentials, type LeasedCredentialsOptions } from './stores/leased-credentials';
export type { SecretStore, SecretDescription, StoredValue } from './stores/secret-store';
export { Stage } from './stages';
export { ErrorType, RotorError } from './errors';
export {
  ApiKeyVerifier,
  apiKeyMiddleware,
  presentedApiKey,
  type ApiKeyRefusal,
  type ApiKeyVerdict,
  type ApiKeyVerifierOptions,
  type RegistryQuery,
} from './api-key-verifier';
export { generateApiKey, parseApiKey, MAX_API_KEY_LENGTH, type ApiKeyShapeProblem } from './credentials/api-key';
export { JwtSigner, type JwtSignerOptions } from './jwt-signer';
export { jwksHandler, type JwksHandlerOptions } from './jwks-handler';
export { Keyring, type KeyringOptions } from './keyring';
export { RotatingTls, type RotatingTlsOptions, type RotatingTlsStats, type TlsRefusalEvent } from './tls-context';
export {
  JwtVerifier,
  JwksUnavailableError,
  type JwtRefusal,
  type JwtVerdict,
  type JwtVerifierOptions,
} from './jwt-verifier';
