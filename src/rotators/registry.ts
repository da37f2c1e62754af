import { parseJsonObject } from './secret-json';
import { InvalidSecretError, UnsupportedEngineError } from '../shared/errors';
import { POSTGRES_ENGINES, postgresSingleUser } from './postgres-single-user';
import type { Rotator } from './rotator';
import { MYSQL_ENGINES, mysqlSingleUser } from './mysql-single-user';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each rotator has its own value type
type AnyRotator = Rotator<any>;

/** Every strategy rotor ships, by kind. */
export const rotators = {
  'postgres-single-user': postgresSingleUser,
  'mysql-single-user': mysqlSingleUser,
} satisfies Record<string, AnyRotator>;

export type RotatorKind = keyof typeof rotators;
export type RotatorRegistry = Record<RotatorKind, AnyRotator>;

/** Picks the strategy for a secret from its JSON, as AWS does: `engine` names the database. */
export function selectRotatorKind(secretId: string, raw: string): RotatorKind {
  const json = parseJsonObject(secretId, raw);
  const engine = json.engine;
  if (engine === undefined) throw new InvalidSecretError(secretId, ['engine: is required']);
  if (typeof engine !== 'string') throw new InvalidSecretError(secretId, ['engine: must be a string']);
  if ((POSTGRES_ENGINES as readonly string[]).includes(engine)) return 'postgres-single-user';
  if ((MYSQL_ENGINES as readonly string[]).includes(engine)) return 'mysql-single-user';
  throw new UnsupportedEngineError(secretId, engine);
}
