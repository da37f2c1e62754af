import { z } from 'zod';
import type { Rotator } from './rotator';
import { currentAccount, setOwnPassword, withMysqlLogin, type MysqlLogin } from './mysql/connection';
import { parseJsonObject, validateShape } from './secret-json';
import { singleUserRotator } from './single-user';

/** MariaDB's limit on user names (MySQL 8 allows 32; the server refuses longer names itself). */
const MAX_USER_CHARS = 80;

export const MYSQL_ENGINES = ['mysql', 'mariadb', 'aurora-mysql', 'aurora'] as const;

/** AWS's documented JSON for a MySQL or MariaDB secret. Other fields are kept untouched through rotation. */
const mysqlSecretSchema = z.looseObject({
  engine: z.enum(MYSQL_ENGINES),
  host: z.string().min(1, 'must not be empty'),
  port: z.union([z.number().int().min(1).max(65535), z.string().regex(/^\d{1,5}$/, 'must be a port number')]).optional(),
  username: z
    .string()
    .min(1, 'must not be empty')
    .refine((u) => !u.includes('\0'), 'must not contain NUL')
    .refine((u) => [...u].length <= MAX_USER_CHARS, `must be at most ${MAX_USER_CHARS} characters`),
  password: z.string().min(1, 'must not be empty').refine((p) => !p.includes('\0'), 'must not contain NUL'),
  dbname: z.string().min(1, 'must not be empty').optional(),
  ssl: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
});

/** A parsed MySQL/MariaDB secret: the login and the JSON it came from. */
export interface MysqlSecret extends MysqlLogin {
  json: Record<string, unknown>;
}

export function parseMysqlSecret(secretId: string, raw: string): MysqlSecret {
  const json = parseJsonObject(secretId, raw);
  const shape = validateShape(secretId, mysqlSecretSchema, json);
  return {
    json,
    host: shape.host,
    port: shape.port === undefined ? 3306 : Number(shape.port),
    username: shape.username,
    password: shape.password,
    dbname: shape.dbname,
    ssl: shape.ssl === undefined ? undefined : shape.ssl === true || shape.ssl === 'true',
  };
}

/**
 * Single-user MySQL/MariaDB: the account changes its own password with `ALTER USER`, naming itself by the
 * user and host that `CURRENT_USER()` reports.
 */
export const mysqlSingleUser: Rotator<MysqlSecret> = singleUserRotator<MysqlSecret>({
  kind: 'mysql-single-user',
  parse: parseMysqlSecret,
  async canLogIn(secretId, login) {
    return !(await withMysqlLogin(secretId, login, (c) => c.query('SELECT 1'))).rejected;
  },
  async changeOwnPassword(secretId, login, password) {
    return !(await withMysqlLogin(secretId, login, (c) => setOwnPassword(c, password))).rejected;
  },
  async whoAmI(secretId, login) {
    const outcome = await withMysqlLogin(secretId, login, currentAccount);
    return outcome.rejected ? undefined : outcome.result.user;
  },
});
