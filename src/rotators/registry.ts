import { parseJsonObject } from './secret-json';
import { InvalidSecretError, UnsupportedEngineError } from '../shared/errors';
import { listOr, STRATEGIES, type Strategy } from '../shared/types';
import { POSTGRES_ENGINES, postgresSingleUser } from './postgres-single-user';
import type { Rotator } from './rotator';
import { postgresAlternatingUsers } from './postgres-alternating-users';
import { mysqlAlternatingUsers } from './mysql-alternating-users';
import { MYSQL_ENGINES, mysqlSingleUser } from './mysql-single-user';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each rotator has its own value type
type AnyRotator = Rotator<any>;

/** Every strategy rotor ships, by kind. */
export const rotators = {
  'postgres-single-user': postgresSingleUser,
  'mysql-single-user': mysqlSingleUser,
  'postgres-alternating-users': postgresAlternatingUsers,
  'mysql-alternating-users': mysqlAlternatingUsers,
} satisfies Record<string, AnyRotator>;

export type RotatorKind = keyof typeof rotators;
export type RotatorRegistry = Record<RotatorKind, AnyRotator>;

/** The tag that overrides the strategy AWS's convention would pick. */
export const STRATEGY_TAG = 'rotor:strategy';

/**
 * Picks the strategy for a secret, as AWS does: `engine` names the database; a `masterarn` field means alternating
 * users, its absence single-user. The tag `rotor:strategy` (`single-user` | `alternating-users`) overrides.
 * A choice that cannot work (alternating without `masterarn`, an engine without that strategy) is refused here,
 * before anything changes.
 */
export function selectRotatorKind(secretId: string, raw: string, tags: Record<string, string> = {}): RotatorKind {
  const json = parseJsonObject(secretId, raw);
  const engine = json.engine;
  if (engine === undefined) throw new InvalidSecretError(secretId, ['engine: is required']);
  if (typeof engine !== 'string') throw new InvalidSecretError(secretId, ['engine: must be a string']);
  const tag = tags[STRATEGY_TAG];
  if (tag !== undefined && !(STRATEGIES as readonly string[]).includes(tag)) {
    throw new InvalidSecretError(secretId, [`tag ${STRATEGY_TAG}: ${JSON.stringify(tag)} is not ${listOr(STRATEGIES)}`]);
  }
  const strategy: Strategy = (tag as Strategy | undefined) ?? (json.masterarn !== undefined ? 'alternating-users' : 'single-user');
  if (strategy === 'alternating-users' && json.masterarn === undefined) {
    throw new InvalidSecretError(secretId, ['masterarn: is required for alternating users (the id or ARN of the admin secret)']);
  }
  if ((POSTGRES_ENGINES as readonly string[]).includes(engine)) {
    return strategy === 'alternating-users' ? 'postgres-alternating-users' : 'postgres-single-user';
  }
  if ((MYSQL_ENGINES as readonly string[]).includes(engine)) {
    return strategy === 'alternating-users' ? 'mysql-alternating-users' : 'mysql-single-user';
  }
  throw new UnsupportedEngineError(secretId, engine);
}
