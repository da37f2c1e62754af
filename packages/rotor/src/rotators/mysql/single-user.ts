import type { Rotator } from '../rotator';
import { databaseSecretSchema, loginFields } from '../database-secret';
import { canMysqlLogIn, currentAccount, setOwnPassword, withMysqlLogin, type MysqlLogin } from './connection';
import { parseJsonObject, validateShape } from '../secret-json';
import { singleUserRotator, tryReadOnly } from '../single-user';

/** MariaDB's limit on user names (MySQL 8 allows 32; the server refuses longer names itself). */
const MAX_USER_CHARS = 80;

export const MYSQL_ENGINES = ['mysql', 'mariadb', 'aurora-mysql', 'aurora'] as const;

/** AWS's documented JSON for a MySQL or MariaDB secret. Other fields are kept untouched through rotation. */
const mysqlSecretSchema = databaseSecretSchema(MYSQL_ENGINES, {
  fits: (u) => [...u].length <= MAX_USER_CHARS,
  limit: `must be at most ${MAX_USER_CHARS} characters`,
});

/** A parsed MySQL/MariaDB secret: the login and the JSON it came from. */
export interface MysqlSecret extends MysqlLogin {
  json: Record<string, unknown>;
}

export function parseMysqlSecret(secretId: string, raw: string): MysqlSecret {
  const json = parseJsonObject(secretId, raw);
  const shape = validateShape(secretId, mysqlSecretSchema, json);
  return { json, ...loginFields(shape, 3306), dbname: shape.dbname };
}

/**
 * Single-user MySQL/MariaDB: the account changes its own password with `ALTER USER`, naming itself by the
 * user and host that `CURRENT_USER()` reports.
 */
export const mysqlSingleUser: Rotator<MysqlSecret> = singleUserRotator<MysqlSecret>({
  kind: 'mysql-single-user',
  parse: parseMysqlSecret,
  canLogIn: canMysqlLogIn,
  async changeOwnPassword(secretId, login, password) {
    return !(await withMysqlLogin(secretId, login, (c) => setOwnPassword(c, password))).rejected;
  },
  async whoAmI(secretId, login) {
    const outcome = await withMysqlLogin(secretId, login, currentAccount);
    return outcome.rejected ? undefined : outcome.result.user;
  },
  tryQuery: tryMysqlQuery,
});

/** Runs `query` as `login` in a read-only transaction, rolled back: undefined when it ran, else why not. */
export async function tryMysqlQuery(secretId: string, login: MysqlSecret, query: string): Promise<string | undefined> {
  const outcome = await withMysqlLogin(secretId, login, (connection) =>
    tryReadOnly((sql) => connection.query(sql), 'START TRANSACTION READ ONLY', query),
  );
  return outcome.rejected ? 'the login was refused' : outcome.result;
}
