/**
 * `rotor/rotators`: the Rotator contract and the strategies rotor ships, for teams that write their own.
 *
 * @example
 *   import type { Rotator } from 'rotor/rotators';
 *
 *   export const myRotator: Rotator<MySecret> = {
 *     kind: 'my-service-password',
 *     parse: (secretId, raw) => parseMySecret(secretId, raw),
 *     target: (secret) => `my-service://${secret.host}`,
 *     nextValue: (_secretId, current, policy) => JSON.stringify({ ...current, password: generatePassword(policy) }),
 *     set: async (secretId, { pending, current }) => ((await canLogIn(pending)) ? 'already-set' : changePassword(current, pending)),
 *     test: async (secretId, value) => { if (!(await canLogIn(value))) throw new TestFailedError(secretId, 'refused'); },
 *     restore: async (secretId, { want, via }) => restorePassword(want, via),
 *     retire: async () => 'nothing-to-retire',
 *   };
 */
export type { Rotator, RotatorContext } from './rotator';
export {
  ROTATOR_TAG,
  rotators,
  selectRotatorKind,
  STRATEGY_TAG,
  withRotators,
  type RotatorKind,
  type RotatorRegistry,
} from './registry';
export { postgresSingleUser, parsePostgresSecret, POSTGRES_ENGINES, type PostgresSecret } from './postgres/single-user';
export {
  postgresAlternatingUsers,
  parsePostgresAlternatingSecret,
  type PostgresAlternatingSecret,
} from './postgres/alternating-users';
export { mysqlSingleUser, parseMysqlSecret, MYSQL_ENGINES, type MysqlSecret } from './mysql/single-user';
export {
  mysqlAlternatingUsers,
  parseMysqlAlternatingSecret,
  type MysqlAlternatingSecret,
} from './mysql/alternating-users';
export { apiKeyRotator, parseApiKeySecret, API_KEY_ENGINE, type ApiKeySecret } from './api-key';
export { jwtSigningKeyRotator, parseJwtSigningSecret, type JwtSigningSecret } from './jwt-signing-key';
export { encryptionKeyringRotator, parseKeyringSecret, type KeyringSecret } from './keyring/encryption-keyring';
export { singleUserRotator, type DatabaseLogin, type SingleUserDriver } from './single-user';
export { generatePassword, resolvePasswordPolicy, DEFAULT_PASSWORD_POLICY } from './password-policy';
export { retirementFromTags, RetirementTag, DEFAULT_RETIREMENT } from './retirement';
export { parseJsonObject, validateShape } from './secret-json';
export {
  ErrorType,
  RotorError,
  CredentialsRejectedError,
  InvalidSecretError,
  StoreConflictError,
  TargetRejectedError,
  TestFailedError,
  UnavailableError,
} from 'rotor-consumers/core';
export type { PasswordPolicy, RetirementPolicy } from '../shared/rotation';
