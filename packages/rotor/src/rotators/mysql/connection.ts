import { compact } from '../../shared/compact';
import { isMysqlAuthError } from 'rotor-consumers/core';
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';
import {
  CredentialsRejectedError,
  InvalidSecretError,
  RotorError,
  TargetRejectedError,
  UnavailableError,
} from 'rotor-consumers/core';

/** What rotor needs to log in to MySQL or MariaDB, from a secret in AWS's JSON shape. */
export interface MysqlLogin {
  host: string;
  port: number;
  username: string;
  password: string;
  dbname: string | undefined;
  /** As AWS's functions read `ssl`: true requires verified TLS, false never uses it, absent tries TLS first. */
  ssl: boolean | undefined;
}

const REFUSED_STATEMENT_CODES = new Set([
  'ER_NOT_VALID_PASSWORD',
  'ER_CREDENTIALS_CONTRADICT_TO_HISTORY',
  'ER_PASSWORD_FORMAT',
  'ER_NONEXISTING_GRANT',
]);

function options(login: MysqlLogin, ssl: ConnectionOptions['ssl']): ConnectionOptions {
  return {
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    ...compact({ database: login.dbname }),
    ...compact({ ssl }),
    connectTimeout: 5000,
    // One statement per query: a hostile value can never smuggle a second one.
    multipleStatements: false,
  };
}

async function connect(login: MysqlLogin): Promise<Connection> {
  if (login.ssl === true) return createConnection(options(login, { rejectUnauthorized: true }));
  if (login.ssl === false) return createConnection(options(login, undefined));
  try {
    return await createConnection(options(login, { rejectUnauthorized: false }));
  } catch (error) {
    if (!/does not support secure connection/i.test((error as Error).message ?? '')) throw error;
    return createConnection(options(login, undefined));
  }
}

/**
 * Runs `work` on a connection logged in as `login`. Returns `{ rejected: true }` when the server refuses the
 * credential; throws UnavailableError when it cannot be reached, InvalidSecretError when the database named by
 * the secret does not exist or is not open to the user.
 */
export async function withMysqlLogin<T>(
  secretId: string,
  login: MysqlLogin,
  work: (connection: Connection) => Promise<T>,
): Promise<{ rejected: true } | { rejected: false; result: T }> {
  let connection: Connection;
  try {
    connection = await connect(login);
  } catch (error) {
    // A refused login (isMysqlAuthError, one list with the consumers'). ER_USER_LOCK_WRONG_PASSWORD (a temporary lock
    // after failed logins) is not one: it passes, so it is retried.
    if (isMysqlAuthError(error)) return { rejected: true };
    const { code } = error as { code?: string };
    if (code === 'ER_BAD_DB_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
      throw new InvalidSecretError(secretId, [
        `dbname: database ${JSON.stringify(login.dbname)} is missing or not open to ${JSON.stringify(login.username)} on ${login.host}:${login.port}`,
      ]);
    }
    if (code === 'ENOTFOUND')
      throw new InvalidSecretError(secretId, [`host: ${JSON.stringify(login.host)} does not resolve`]);
    if (code === 'HANDSHAKE_UNKNOWN_ERROR' || code === 'PROTOCOL_PACKETS_OUT_OF_ORDER') {
      throw new InvalidSecretError(secretId, [
        `port: ${login.host}:${login.port} does not speak the MySQL protocol (another server on that port?)`,
      ]);
    }
    throw new UnavailableError(
      secretId,
      `MySQL at ${login.host}:${login.port} did not accept a connection (${describe(error)})`,
    );
  }
  connection.on('error', () => undefined);
  try {
    return { rejected: false, result: await work(connection) };
  } catch (error) {
    if (error instanceof RotorError) throw error;
    const code = (error as { code?: string }).code;
    if (code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' || code === 'ER_CANNOT_USER' || code === 'ER_PASSWORD_NO_MATCH') {
      throw new CredentialsRejectedError(
        secretId,
        `user ${JSON.stringify(login.username)} may not do this on ${login.host}:${login.port} (${describe(error)})`,
      );
    }
    if (code && REFUSED_STATEMENT_CODES.has(code)) {
      throw new TargetRejectedError(
        secretId,
        `MySQL at ${login.host}:${login.port} refused a statement (${describe(error)})`,
      );
    }
    throw new UnavailableError(
      secretId,
      `MySQL at ${login.host}:${login.port} failed a statement (${describe(error)})`,
    );
  } finally {
    await connection.end().catch(() => undefined);
  }
}

/**
 * The account the session runs as, from `CURRENT_USER()`: the server's own answer for the user and host parts,
 * which may differ from what the client asked for (`app`@`10.%`, say). Never assumed from the secret.
 */
/** True when `login` authenticates; throws UnavailableError when the server cannot be reached. */
export async function canMysqlLogIn(secretId: string, login: MysqlLogin): Promise<boolean> {
  return !(await withMysqlLogin(secretId, login, (c) => c.query('SELECT 1'))).rejected;
}

export async function currentAccount(connection: Connection): Promise<{ user: string; host: string }> {
  const [rows] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT CURRENT_USER() AS account');
  const account = String(rows[0]?.account ?? '');
  const at = account.lastIndexOf('@');
  return { user: account.slice(0, at), host: account.slice(at + 1) };
}

/**
 * Sets the session's own password with `SET PASSWORD FOR ?@? = ...`, the account named as `CURRENT_USER()` reports
 * it and every value escaped by the driver (mysql2's placeholder formatting). Unlike `ALTER USER`, changing one's
 * own password this way needs no privilege on either engine. MariaDB hashes through PASSWORD(); MySQL 5.7.6+ and 8
 * take the plain string.
 */
export async function setOwnPassword(connection: Connection, password: string): Promise<void> {
  const { user, host } = await currentAccount(connection);
  const [rows] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT VERSION() AS version');
  const mariadb = /mariadb/i.test(String(rows[0]?.version ?? ''));
  // mysql2 escapes with backslashes on the client: make sure the session reads them as escapes.
  await connection.query("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')");
  await connection.query(mariadb ? 'SET PASSWORD FOR ?@? = PASSWORD(?)' : 'SET PASSWORD FOR ?@? = ?', [
    user,
    host,
    password,
  ]);
}

/** The error's code and message; MySQL messages quote user and host names, never passwords. */
function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return [e.code, e.message].filter(Boolean).join(': ') || String(error);
}
