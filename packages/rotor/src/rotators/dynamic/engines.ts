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
   * it without rotor: at `expiresAt` on PostgreSQL (VALID UNTIL, moved by each renewal); on MySQL and MariaDB an event
   * that drops it at `maxExpiresAt` when the server's event scheduler runs, and a password expiry of whole days after
   * it in any case. With `beforeCommit`, the login exists only once it has resolved (and not at all when it throws):
   * PostgreSQL makes the login in a transaction committed after it, MySQL (whose DDL commits at once) only after it.
   */
  create(
    username: string,
    password: string,
    expiresAt: Date,
    maxExpiresAt: Date,
    beforeCommit?: () => Promise<unknown>,
  ): Promise<void>;
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
    // Pooled: a lease endpoint makes a login per request, and each connection would cost a TLS try and a login.
    const outcome = await withLogin(secretId, admin, work, { pooled: true });
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
    create: (username, password, expiresAt, _maxExpiresAt, beforeCommit) =>
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
          if (beforeCommit) await beforeCommit();
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

/**
 * Makes the admin login (`CURRENT_USER()`) the DEFINER of every view, routine, trigger and event `name`@`host` defined,
 * recreating each from the server's own SHOW CREATE with only the DEFINER clause changed (events: ALTER DEFINER).
 * Idempotent: a second run finds nothing defined by the account.
 */
/** What a DEFINER names, besides events, and the column of SHOW CREATE that holds each one's statement. */
type Definition = 'VIEW' | 'PROCEDURE' | 'FUNCTION' | 'TRIGGER';
const CREATE_COLUMN: Record<Definition, string> = {
  VIEW: 'Create View',
  PROCEDURE: 'Create Procedure',
  FUNCTION: 'Create Function',
  TRIGGER: 'SQL Original Statement',
};

async function reassignDefinitions(connection: Connection, name: string, host: string): Promise<void> {
  const definer = `${name}@${host}`;
  const [[heirRow]] = await connection.query<RowDataPacket[]>('SELECT CURRENT_USER() AS heir');
  const at = String(heirRow!.heir).lastIndexOf('@');
  const heir = connection.format('?@?', [String(heirRow!.heir).slice(0, at), String(heirRow!.heir).slice(at + 1)]);
  const quoted = `DEFINER=${connection.escapeId(name)}@${connection.escapeId(host)}`;
  const [[session]] = await connection.query<RowDataPacket[]>(
    'SELECT VERSION() AS v, @@SESSION.sql_mode AS mode, @@character_set_client AS cs, @@collation_connection AS co',
  );
  const mariadb = /mariadb/i.test(String(session?.v));
  const id = (schema: unknown, object: unknown) =>
    `${connection.escapeId(String(schema))}.${connection.escapeId(String(object))}`;
  /** The server's CREATE statement of an object, with its DEFINER clause naming the heir (nothing else changed). */
  const redefined = (create: string, kind: string) => {
    if (!create.includes(quoted))
      throw new Error(`the CREATE of a ${kind} defined by the lease's login names no DEFINER`);
    return create.replace(quoted, () => `DEFINER=${heir}`);
  };
  /** Sets the session as the object was made: its sql_mode (routines, triggers) and its character set. */
  const asMade = async (row: RowDataPacket, schema: unknown) => {
    await connection.query(`USE ${connection.escapeId(String(schema))}`);
    if (row.sql_mode !== undefined) await connection.query('SET SESSION sql_mode = ?', [String(row.sql_mode)]);
    if (row.character_set_client && row.collation_connection)
      await connection.query('SET NAMES ? COLLATE ?', [
        String(row.character_set_client),
        String(row.collation_connection),
      ]);
  };
  /**
   * Makes the object again with the heir as definer: a view, or anything on MariaDB, is replaced in one statement;
   * MySQL drops a routine or trigger and creates it, and if the create fails makes it again as it was (the login still
   * exists then), so nothing is lost.
   */
  const replace = async (kind: Definition, object: string, original: string) => {
    const create = redefined(original, kind);
    if (kind === 'VIEW' || mariadb)
      return void (await connection.query(create.replace(/^CREATE /, () => 'CREATE OR REPLACE ')));
    await connection.query(`DROP ${kind} IF EXISTS ${object}`);
    try {
      await connection.query(create);
    } catch (error) {
      await connection.query(original);
      throw error;
    }
  };
  try {
    const [defined] = await connection.query<RowDataPacket[]>(
      `SELECT TABLE_SCHEMA AS s, TABLE_NAME AS n, 'VIEW' AS k FROM information_schema.VIEWS WHERE DEFINER = ?
       UNION ALL SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE DEFINER = ?
       UNION ALL SELECT TRIGGER_SCHEMA, TRIGGER_NAME, 'TRIGGER' FROM information_schema.TRIGGERS WHERE DEFINER = ?`,
      [definer, definer, definer],
    );
    for (const d of defined) {
      const kind = String(d.k) as Definition;
      const object = id(d.s, d.n);
      const [[row]] = await connection.query<RowDataPacket[]>(`SHOW CREATE ${kind} ${object}`);
      await asMade(row!, d.s);
      await replace(kind, object, String(row![CREATE_COLUMN[kind]]));
    }
    const [events] = await connection.query<RowDataPacket[]>(
      'SELECT EVENT_SCHEMA AS s, EVENT_NAME AS n, EVENT_COMMENT AS c FROM information_schema.EVENTS WHERE DEFINER = ?',
      [definer],
    );
    // ALTER EVENT needs a clause besides DEFINER: the event's own comment, set again, changes nothing else.
    for (const e of events)
      await connection.query(`ALTER DEFINER = ${heir} EVENT ${id(e.s, e.n)} COMMENT ?`, [String(e.c ?? '')]);
  } finally {
    // The session as it was, for the statements that follow on this connection.
    await connection.query('SET SESSION sql_mode = ?', [String(session?.mode ?? '')]);
    if (session?.cs && session.co)
      await connection.query('SET NAMES ? COLLATE ?', [String(session.cs), String(session.co)]);
  }
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
  /** Where a login's backstop event lives: the template's database, else the server's own `mysql` schema. */
  const eventSchema = template.dbname ?? 'mysql';
  const backstopEvent = (connection: Connection, name: string) =>
    `${connection.escapeId(eventSchema)}.${connection.escapeId(`rotor_end_${name}`)}`;
  const revokeWith = async (connection: Connection, name: string): Promise<RevokeReport> => {
    // Only an event that is there (and that this admin may see): DROP EVENT IF EXISTS needs the EVENT privilege even
    // when there is nothing to drop, and an admin without it (no event scheduler in use) must still revoke.
    const [backstops] = await connection.query<RowDataPacket[]>(
      'SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? AND EVENT_NAME = ?',
      [eventSchema, `rotor_end_${name}`],
    );
    if (backstops.length > 0) await connection.query(`DROP EVENT IF EXISTS ${backstopEvent(connection, name)}`);
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
    // MySQL accounts own no objects, but views, routines, triggers and events name a DEFINER: they go to the admin
    // login, or they would fail once the account is gone.
    for (const host of hosts) await reassignDefinitions(connection, name, host);
    for (const host of hosts) await connection.query('DROP USER IF EXISTS ?@?', [name, host]);
    return { existed: true, sessionsEnded: ended };
  };
  return {
    create: (username, password, expiresAt, maxExpiresAt, beforeCommit) =>
      asAdmin(async (connection) => {
        if (beforeCommit) await beforeCommit();
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
        const hosts = await accounts(connection, username);
        for (const host of hosts)
          await connection.query(`ALTER USER ?@? PASSWORD EXPIRE INTERVAL ${days} DAY`, [username, host]);
        // An expired password still lets a client that handles expiry log in to set a new one: where the event
        // scheduler runs, an event drops the login at its maximum lifetime, to the second.
        const [[scheduler]] = await connection.query<RowDataPacket[]>('SELECT @@GLOBAL.event_scheduler AS s');
        if (String(scheduler?.s).toUpperCase() === 'ON') {
          const event = backstopEvent(connection, username);
          const accountsList = hosts.map((host) => connection.format('?@?', [username, host])).join(', ');
          await connection.query("SET time_zone = '+00:00'");
          try {
            await connection.query(`DROP EVENT IF EXISTS ${event}`);
            await connection.query(
              `CREATE EVENT ${event} ON SCHEDULE AT ? ON COMPLETION NOT PRESERVE DO DROP USER IF EXISTS ${accountsList}`,
              [maxExpiresAt.toISOString().replace('T', ' ').replace('Z', '')],
            );
          } catch (error) {
            // An admin without the EVENT privilege there: the password expiry stays the backstop (docs say so).
            if (![1044, 1142, 1227].includes(Number((error as { errno?: number }).errno))) throw error;
          }
        }
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
