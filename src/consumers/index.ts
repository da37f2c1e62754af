/**
 * rotor/consumers: what applications import to pick up every new credential without a restart. It loads the AWS
 * SDK and nothing of Temporal, and no native module; `pg` and `mysql2` (peer dependencies) load with the first pool
 * that needs them.
 */
export { SecretCache, SecretCacheStaleError, type SecretCacheOptions, type SecretReader, type SecretSnapshot } from './secret-cache';
export { createRotatingPgPool, isPgAuthError, RotatingPgPool, type RotatingPgPoolOptions } from './pg-pool';
export { createRotatingMysqlPool, isMysqlAuthError, RotatingMysqlPool, type RotatingMysqlPoolOptions } from './mysql-pool';
export { ConsumerReporter, type ConsumerReporterOptions, type LoginEvent, type LoginReporter, type ReportBatch, type ReportEntry } from './reporter';
export { AwsSecretsManagerStore, type AwsSecretsManagerStoreOptions } from '../stores/aws-secrets-manager';
export { InMemorySecretStore } from '../stores/in-memory';
export type { SecretStore, SecretDescription, StoredValue } from '../stores/secret-store';
export { Stage } from '../shared/stages';
export { ErrorType, RotorError } from '../shared/errors';
export {
  ApiKeyVerifier,
  apiKeyMiddleware,
  presentedApiKey,
  type ApiKeyRefusal,
  type ApiKeyVerdict,
  type ApiKeyVerifierOptions,
  type RegistryQuery,
} from './api-key-verifier';
export { generateApiKey, parseApiKey, MAX_API_KEY_LENGTH, type ApiKeyShapeProblem } from '../credentials/api-key';
export {
  JwtSigner,
  JwtVerifier,
  jwksHandler,
  JwksUnavailableError,
  type JwksHandlerOptions,
  type JwtRefusal,
  type JwtSignerOptions,
  type JwtVerdict,
  type JwtVerifierOptions,
} from './jwt';
