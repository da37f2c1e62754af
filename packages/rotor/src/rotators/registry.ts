import { parseJsonObject } from './secret-json';
import { InvalidInputError, InvalidSecretError, UnsupportedEngineError } from 'rotor-consumers/core';
import { listOr, STRATEGIES, type Strategy } from '../shared/vocabulary';
import { POSTGRES_ENGINES, postgresSingleUser } from './postgres/single-user';
import type { Rotator } from './rotator';
import { postgresAlternatingUsers } from './postgres/alternating-users';
import { mysqlAlternatingUsers } from './mysql/alternating-users';
import { apiKeyRotator } from './api-key';
import { jwtSigningKeyRotator } from './jwt-signing-key';
import { tlsCertificateRotator } from './tls/tls-certificate';
import { tlsCaRotator } from './tls/tls-ca';
import { encryptionKeyringRotator } from './keyring/encryption-keyring';
import { MYSQL_ENGINES, mysqlSingleUser } from './mysql/single-user';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each rotator has its own value type
type AnyRotator = Rotator<any>;

/** Every strategy rotor ships, by kind. */
export const rotators = {
  'postgres-single-user': postgresSingleUser,
  'mysql-single-user': mysqlSingleUser,
  'postgres-alternating-users': postgresAlternatingUsers,
  'mysql-alternating-users': mysqlAlternatingUsers,
  'api-key': apiKeyRotator,
  'jwt-signing-key': jwtSigningKeyRotator,
  'tls-certificate': tlsCertificateRotator,
  'tls-ca': tlsCaRotator,
  'encryption-keyring': encryptionKeyringRotator,
} satisfies Record<string, AnyRotator>;

/** A built-in kind, or the kind of a rotator a team registers with its worker. */
export type RotatorKind = keyof typeof rotators | (string & {});
/** The rotators a worker runs, by kind: the built-ins, and any a team adds (`withRotators`). */
export type RotatorRegistry = Readonly<Record<string, AnyRotator>>;

/** The tag that overrides the strategy AWS's convention would pick. */
export const STRATEGY_TAG = 'rotor:strategy';
/** The tag that names the rotator of a secret outright, for rotators a team registers. */
export const ROTATOR_TAG = 'rotor:rotator';

const KIND = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The built-in rotators plus a team's own, by their `kind`. Refuses a kind that is not 1 to 63 of a-z, 0-9 and -,
 * one that replaces a built-in, and two rotators claiming one `engines` value: the registry must say unambiguously
 * which rotator a secret gets.
 */
export function withRotators(...custom: AnyRotator[]): RotatorRegistry {
  const registry: Record<string, AnyRotator> = { ...rotators };
  const engines = new Map<string, string>();
  for (const rotator of custom) {
    if (!KIND.test(rotator.kind))
      throw new InvalidInputError(`rotator kind ${JSON.stringify(rotator.kind)} is not 1 to 63 of a-z, 0-9 and -`);
    if (registry[rotator.kind]) throw new InvalidInputError(`rotator kind ${rotator.kind} is already registered`);
    for (const engine of rotator.engines ?? []) {
      const builtIn = [
        ...POSTGRES_ENGINES,
        ...MYSQL_ENGINES,
        ...Object.values(rotators).flatMap((r: AnyRotator) => r.engines ?? []),
      ];
      if (builtIn.includes(engine))
        throw new InvalidInputError(`rotator ${rotator.kind}: engine ${engine} belongs to a built-in rotator`);
      const other = engines.get(engine);
      if (other) throw new InvalidInputError(`rotators ${other} and ${rotator.kind} both claim engine ${engine}`);
      engines.set(engine, rotator.kind);
    }
    registry[rotator.kind] = rotator;
  }
  return registry;
}

/**
 * Picks the rotator for a secret. The tag `rotor:rotator` names one of `registry` outright. Otherwise, as AWS does:
 * `engine` names the database; a `masterarn` field means alternating users, its absence single-user, and the tag
 * `rotor:strategy` (`single-user` | `alternating-users`) overrides; an engine no built-in handles goes to the
 * registered rotator whose `engines` lists it. A choice that cannot work (alternating without `masterarn`, an
 * engine without that strategy, an unknown kind) is refused here, before anything changes.
 */
export function selectRotatorKind(
  secretId: string,
  raw: string,
  tags: Record<string, string> = {},
  registry: RotatorRegistry = rotators,
): RotatorKind {
  const named = tags[ROTATOR_TAG];
  if (named !== undefined) {
    if (registry[named]) return named;
    throw new InvalidSecretError(secretId, [
      `tag ${ROTATOR_TAG}: ${JSON.stringify(named)} is not a rotator this worker runs (${listOr(Object.keys(registry))})`,
    ]);
  }
  const json = parseJsonObject(secretId, raw);
  const engine = json.engine;
  if (engine === undefined) throw new InvalidSecretError(secretId, ['engine: is required']);
  if (typeof engine !== 'string') throw new InvalidSecretError(secretId, ['engine: must be a string']);
  const claimed = Object.values(registry).find((r) => r.engines?.includes(engine));
  if (claimed) return claimed.kind;
  const tag = tags[STRATEGY_TAG];
  if (tag !== undefined && !(STRATEGIES as readonly string[]).includes(tag)) {
    throw new InvalidSecretError(secretId, [
      `tag ${STRATEGY_TAG}: ${JSON.stringify(tag)} is not ${listOr(STRATEGIES)}`,
    ]);
  }
  const strategy: Strategy =
    (tag as Strategy | undefined) ?? (json.masterarn !== undefined ? 'alternating-users' : 'single-user');
  if (strategy === 'alternating-users' && json.masterarn === undefined) {
    throw new InvalidSecretError(secretId, [
      'masterarn: is required for alternating users (the id or ARN of the admin secret)',
    ]);
  }
  if ((POSTGRES_ENGINES as readonly string[]).includes(engine)) {
    return strategy === 'alternating-users' ? 'postgres-alternating-users' : 'postgres-single-user';
  }
  if ((MYSQL_ENGINES as readonly string[]).includes(engine)) {
    return strategy === 'alternating-users' ? 'mysql-alternating-users' : 'mysql-single-user';
  }
  throw new UnsupportedEngineError(secretId, engine);
}
