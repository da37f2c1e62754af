import { escapeIdentifier, escapeLiteral, type Client } from 'pg';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CredentialsRejectedError } from 'rotor-consumers/core';
import { withLogin, type PgLogin } from '../postgres/connection';
import { withMysqlLogin, type MysqlLogin } from '../mysql/connection';
import { parseMysqlSecret } from '../mysql/single-user';
import { parsePostgresSecret } from '../postgres/single-user';
import { renderStatements, type DynamicTemplate } from './template';

/** What revocation found and did: nothing is left of the login afterwards. */
export interface RevokeReport {
  /** Whether the login still existed (false: revoked before, or never created). */
  existed: boolean;
  /** Sessions the server ended. */
  sessionsEnded: number;
}

/** One engine's lease operations, each idempotent, as the admin login. */
export interface DynamicEngine {
  /**
   * Creates the login (after dropping a half-made one of the same name) with its statements and a backstop that ends
   * it without rotor: at `expiresAt` on PostgreSQL (VALID UNTIL, moved by each renewal), within a day after
   * `maxExpiresAt` on MySQL and MariaDB (whose password expiry counts whole days).
   */
  create(username: string, password: string, expiresAt: Date, maxExpiresAt: Date): Promise<void>;
  /** Moves the backstop to `expiresAt`; false when the login is gone (dropped behind rotor's back). */
  renew(username: string, expiresAt: Date): Promise<boolean>;
  /** Disables the login, ends its sessions, reassigns or drops what it owns, drops it. */
  revoke(username: string): Promise<RevokeReport>;
  /** How many of the template's logins (by prefix) exist on the server. */
  liveLogins(prefix: string): Promise<number>;
}

/** The template's admin login, from the value of its `admin` secret (AWS's JSON for the template's engine). */
export function adminLoginOf(template: DynamicTemplate, raw: string): PgLogin | MysqlLogin {
  return template.engine === 'postgres'
    ? parsePostgresSecret(template.admin, raw)
    : parseMysqlSecret(template.admin, raw);
}

export function dynamicEngine(secretId: string, template: DynamicTemplate, admin: PgLogin | MysqlLogin): DynamicEngine {
  return template.engine === 'postgres'
    ? postgresEngine(secretId, template, {
        ...(admin as PgLogin),
        dbname: template.dbname ?? admin.dbname ?? 'postgres',
      })
    : mysqlEngine(secretId, template, admin as MysqlLogin);
}

function postgresEngine(secretId: string, template: DynamicTemplate, admin: PgLogin): DynamicEngine {
  const asAdmin = async <T>(work: (client: Client) => Promise<T>): Promise<T> => {
    const outcome = await withLogin(secretId, admin, work);
    if (outcome.rejected)
      throw new CredentialsRejectedError(secretId, `the admin secret ${template.admin} does not log in`);
    return outcome.result;
  };
  const exists = async (client: Client, name: string) =>
    (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount === 1;
  const revokeWith = async (client: Client, name: string): Promise<RevokeReport> => {
    if (!(await exists(client, name))) return { existed: false, sessionsEnded: 0 };
    const role = escapeIdentifier(name);
    await client.query(`ALTER ROLE ${role} NOLOGIN`);
    const ended = await client.query(
      'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    const heir = escapeIdentifier(template.reassignTo ?? admin.username);
    await client.query('BEGIN');
    try {
      await client.query(`REASSIGN OWNED BY ${role} TO ${heir}`);
      await client.query(`DROP OWNED BY ${role}`);
      await client.query(`DROP ROLE ${role}`);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    return { existed: true, sessionsEnded: ended.rows.filter((r: { ended: boolean }) => r.ended).length };
  };
  return {
    create: (username, password, expiresAt) =>
      asAdmin(async (client) => {
        await revokeWith(client, username);
        const statements = renderStatements(template, {
          name: escapeIdentifier(username),
          password: escapeLiteral(password),
          expiration: escapeLiteral(expiresAt.toISOString()),
        });
        await client.query('BEGIN');
        try {
          for (const statement of statements) await client.query(statement);
          // The backstop, whatever the statements say: the login stops working at its expiry without rotor.
          await client.query(
            `ALTER ROLE ${escapeIdentifier(username)} VALID UNTIL ${escapeLiteral(expiresAt.toISOString())}`,
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      }),
    renew: (username, expiresAt) =>
      asAdmin(async (client) => {
        if (!(await exists(client, username))) return false;
        await client.query(
          `ALTER ROLE ${escapeIdentifier(username)} VALID UNTIL ${escapeLiteral(expiresAt.toISOString())}`,
        );
        return true;
      }),
    revoke: (username) => asAdmin((client) => revokeWith(client, username)),
    liveLogins: (prefix) =>
      asAdmin(async (client) => {
        const { rows } = await client.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_roles WHERE rolname ~ ('^v_' || $1 || '_[0-9a-f]{10}_[0-9]+$')",
          [prefix],
        );
        return Number(rows[0]?.n ?? 0);
      }),
  };
}

function mysqlEngine(secretId: string, template: DynamicTemplate, admin: MysqlLogin): DynamicEngine {
  const asAdmin = async <T>(work: (connection: Connection) => Promise<T>): Promise<T> => {
    const outcome = await withMysqlLogin(secretId, admin, work);
    if (outcome.rejected)
      throw new CredentialsRejectedError(secretId, `the admin secret ${template.admin} does not log in`);
    return outcome.result;
  };
  const accounts = async (connection: Connection, name: string) => {
    const [rows] = await connection.query<RowDataPacket[]>('SELECT Host AS host FROM mysql.user WHERE User = ?', [
      name,
    ]);
    return rows.map((r) => String(r.host));
  };
  const revokeWith = async (connection: Connection, name: string): Promise<RevokeReport> => {
    const hosts = await accounts(connection, name);
    if (hosts.length === 0) return { existed: false, sessionsEnded: 0 };
    for (const host of hosts) await connection.query('ALTER USER ?@? ACCOUNT LOCK', [name, host]);
    const [sessions] = await connection.query<RowDataPacket[]>(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
      [name],
    );
    let ended = 0;
    for (const { id } of sessions) {
      try {
        await connection.query('KILL ?', [Number(id)]);
        ended++;
      } catch (error) {
        // Ended on its own meanwhile.
        if ((error as { code?: string }).code !== 'ER_NO_SUCH_THREAD') throw error;
      }
    }
    // MySQL accounts own no objects: dropping the account is all that is left.
    for (const host of hosts) await connection.query('DROP USER IF EXISTS ?@?', [name, host]);
    return { existed: true, sessionsEnded: ended };
  };
  return {
    create: (username, password, expiresAt, maxExpiresAt) =>
      asAdmin(async (connection) => {
        await revokeWith(connection, username);
        const statements = renderStatements(template, {
          name: connection.escape(username),
          password: connection.escape(password),
          expiration: connection.escape(expiresAt.toISOString()),
        });
        try {
          for (const statement of statements) await connection.query(statement);
        } catch (error) {
          // MySQL's statements are not transactional: take back what the ones that ran made.
          await revokeWith(connection, username).catch(() => undefined);
          throw error;
        }
        // The backstop: MySQL and MariaDB expire passwords by whole days only, so a login whose revocation never
        // ran stops logging in at most a day past its maximum lifetime (the lease's revocation ends it on time).
        const days = Math.max(1, Math.ceil((maxExpiresAt.getTime() - Date.now()) / 86_400_000));
        for (const host of await accounts(connection, username))
          await connection.query(`ALTER USER ?@? PASSWORD EXPIRE INTERVAL ${days} DAY`, [username, host]);
      }),
    renew: (username) => asAdmin(async (connection) => (await accounts(connection, username)).length > 0),
    revoke: (username) => asAdmin((connection) => revokeWith(connection, username)),
    liveLogins: (prefix) =>
      asAdmin(async (connection) => {
        const [rows] = await connection.query<RowDataPacket[]>(
          'SELECT count(DISTINCT User) AS n FROM mysql.user WHERE User REGEXP ?',
          [`^v_${prefix}_[0-9a-f]{10}_[0-9]+$`],
        );
        return Number(rows[0]?.n ?? 0);
      }),
  };
}
