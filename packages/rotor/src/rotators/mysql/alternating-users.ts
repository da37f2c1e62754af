import { format } from 'mysql2';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { CredentialsRejectedError, StoreConflictError } from 'rotor-consumers/core';
import { adminOf, assertPair, currentRejected, nextOfPair, parseAlternating } from '../alternating';
import type { PasswordPolicy } from '../../shared/rotation';
import { canMysqlLogIn, currentAccount, withMysqlLogin } from './connection';
import { mysqlSingleUser, parseMysqlSecret, tryMysqlQuery, type MysqlSecret } from './single-user';
import { generatePassword } from '../password-policy';
import type { Rotator, RotatorContext } from '../rotator';
import { checkTestQuery, targetOf } from '../single-user';

const MAX_USER_CHARS = 80;

export interface MysqlAlternatingSecret extends MysqlSecret {
  /** Id or ARN of the admin secret whose account creates and changes the two accounts. */
  masterarn: string;
}

export function parseMysqlAlternatingSecret(secretId: string, raw: string): MysqlAlternatingSecret {
  return parseAlternating(
    secretId,
    raw,
    parseMysqlSecret,
    (name) => [...name].length <= MAX_USER_CHARS,
    `user names are at most ${MAX_USER_CHARS} characters`,
  );
}

/**
 * MySQL/MariaDB with alternating users: the login alternates between `name` and `name_clone` on the same host
 * part (as `CURRENT_USER()` reports it). The admin secret creates the clone or sets its password, unlocks it, and
 * gives it the current account's grants (re-read at every rotation, so later grants follow) and TLS requirement.
 * MySQL has no object owners for tables, so grants are all there is to share.
 *
 * Confused-deputy guard: AWSCURRENT must log in before the admin credential is used on its behalf.
 */
export const mysqlAlternatingUsers: Rotator<MysqlAlternatingSecret> = {
  kind: 'mysql-alternating-users',

  parse: parseMysqlAlternatingSecret,

  target: (secret) => targetOf('mysql', secret),

  async check(secretId, { current }, context) {
    if ((await withMysqlLogin(secretId, current, currentAccount)).rejected) throw currentRejected(secretId, current);
    await checkTestQuery(secretId, current, tryMysqlQuery);
    await asAdmin(secretId, current, context, async (admin) => {
      const [rows] = await admin.query<RowDataPacket[]>('SHOW GRANTS');
      const grants = rows.map((r) => String(Object.values(r)[0]));
      if (!grants.some((g) => /^GRANT (ALL PRIVILEGES|.*\bCREATE USER\b.*) ON \*\.\* /.test(g))) {
        throw new CredentialsRejectedError(
          secretId,
          `the admin secret ${current.masterarn} may not create or alter accounts (it needs CREATE USER on *.*)`,
        );
      }
    });
    return 'current-and-admin-log-in';
  },

  nextValue: (_secretId: string, current: MysqlAlternatingSecret, policy: PasswordPolicy) =>
    nextOfPair(current, policy),

  async set(secretId, { pending, current }, context) {
    assertPair(secretId, current, pending);
    const seen = await withMysqlLogin(secretId, current, currentAccount);
    if (seen.rejected) throw currentRejected(secretId, current);
    const host = seen.result.host;
    const alreadySet = await canMysqlLogIn(secretId, pending);
    await asAdmin(secretId, current, context, async (admin) => {
      if (!alreadySet) await upsertAccount(admin, pending.username, host, pending.password);
      await copyAccount(admin, { user: current.username, host }, { user: pending.username, host });
    });
    return alreadySet ? 'already-set' : 'set';
  },

  test: (secretId, value, ...rest) => mysqlSingleUser.test(secretId, value, ...rest),

  async restore(secretId, { want }, context) {
    if (await canMysqlLogIn(secretId, want)) return 'already-set';
    await asAdmin(secretId, want, context, async (admin) => {
      const host = await accountHost(admin, want.username);
      await upsertAccount(admin, want.username, host, want.password);
    });
    return 'changed';
  },

  async retire(secretId, { previous, current, policy, terminateSessions }, context) {
    if (!previous || !policy || policy.retire === 'none') return 'kept';
    if (previous.username === current.username)
      throw new StoreConflictError(secretId, 'the previous and current accounts are the same');
    let outcome = '';
    await asAdmin(secretId, current, context, async (admin) => {
      const host = await accountHost(admin, previous.username);
      const killed = terminateSessions
        ? await killSessions(admin, await sessionIds(admin, previous.username))
        : undefined;
      if (policy.retire === 'disable-login') {
        await admin.query('ALTER USER ?@? ACCOUNT LOCK', [previous.username, host]);
        outcome = 'disabled-login';
      } else {
        await admin.query('ALTER USER ?@? IDENTIFIED BY ?', [
          previous.username,
          host,
          generatePassword({ length: 64 }),
        ]);
        outcome = 'scrambled-password';
      }
      if (killed) {
        outcome += `; terminated ${killed.terminated} sessions`;
        if (killed.failed > 0) outcome += `; ${killed.failed} could not be terminated`;
      }
    });
    return outcome;
  },

  async countLiveSessions(secretId, { previous, current }, context) {
    let count = 0;
    await asAdmin(secretId, current, context, async (admin) => {
      count = (await sessionIds(admin, previous.username)).length;
    });
    return count;
  },
};

async function asAdmin(
  secretId: string,
  user: MysqlAlternatingSecret,
  context: RotatorContext,
  work: (admin: Connection) => Promise<void>,
): Promise<void> {
  const { admin, rejected } = await adminOf(secretId, user, context, parseMysqlSecret);
  const outcome = await withMysqlLogin(secretId, { ...admin, dbname: undefined }, async (c) => {
    await c.query("SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')");
    await work(c);
  });
  if (outcome.rejected) throw rejected();
}

/** The host part of the pair's accounts: the one account with that user name (the pair shares one host part). */
async function accountHost(admin: Connection, user: string): Promise<string> {
  const [rows] = await admin.query<RowDataPacket[]>(
    'SELECT Host AS host FROM mysql.user WHERE User = ? ORDER BY Host',
    [user],
  );
  return String(rows[0]?.host ?? '%');
}

async function sessionIds(admin: Connection, user: string): Promise<number[]> {
  const [rows] = await admin.query<RowDataPacket[]>(
    'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
    [user],
  );
  return rows.map((r) => Number(r.id));
}

/** MariaDB/MySQL: "Unknown thread id", the session ended by itself meanwhile. */
const ER_NO_SUCH_THREAD = 1094;

/**
 * Ends the sessions `ids` with KILL CONNECTION. A session that ended by itself meanwhile counts as neither; one the
 * server refused to kill (a missing privilege, say) counts as failed, never as terminated.
 */
export async function killSessions(
  admin: Pick<Connection, 'query'>,
  ids: number[],
): Promise<{ terminated: number; failed: number }> {
  let terminated = 0;
  let failed = 0;
  for (const id of ids) {
    try {
      await admin.query('KILL CONNECTION ?', [id]);
      terminated++;
    } catch (error) {
      if ((error as { errno?: number }).errno !== ER_NO_SUCH_THREAD) failed++;
    }
  }
  return { terminated, failed };
}

/** Creates the account, or sets its password; either way unlocked (retirement may have locked it). */
async function upsertAccount(admin: Connection, user: string, host: string, password: string): Promise<void> {
  const [rows] = await admin.query<RowDataPacket[]>('SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?', [
    user,
    host,
  ]);
  if (rows.length === 0) await admin.query('CREATE USER ?@? IDENTIFIED BY ?', [user, host, password]);
  else await admin.query('ALTER USER ?@? IDENTIFIED BY ?', [user, host, password]);
  await admin.query('ALTER USER ?@? ACCOUNT UNLOCK', [user, host]);
}

/** An account name as the server prints it in SHOW GRANTS: backquoted, backquotes doubled. */
function printed(account: { user: string; host: string }): string {
  const q = (s: string) => `\`${s.replace(/`/g, '``')}\``;
  return `${q(account.user)}@${q(account.host)}`;
}

/**
 * Gives `to` the grants and the TLS requirement of `from`. Grants are read with SHOW GRANTS and replayed with the
 * grantee replaced; the `IDENTIFIED BY PASSWORD` clause (a password hash) is dropped and never sent or logged.
 */
async function copyAccount(
  admin: Connection,
  from: { user: string; host: string },
  to: { user: string; host: string },
): Promise<void> {
  const [grants] = await admin.query<RowDataPacket[]>('SHOW GRANTS FOR ?@?', [from.user, from.host]);
  const fromName = printed(from);
  for (const row of grants) {
    const grant = String(Object.values(row)[0] ?? '');
    const at = grant.lastIndexOf(` TO ${fromName}`);
    if (!grant.startsWith('GRANT ') || at < 0) continue;
    const tail = grant.slice(at + ` TO ${fromName}`.length).replace(/\s*IDENTIFIED BY PASSWORD\s+'[^']*'/i, '');
    if (tail.trim() !== '' && !/^\s*WITH GRANT OPTION\s*$/i.test(tail)) continue;
    // The grant as the server printed it, the grantee escaped by the driver (no placeholders: a database name
    // may contain a question mark).
    await admin.query(`${grant.slice(0, at)} TO ${format('?@?', [to.user, to.host])}${tail}`);
  }
  const [tls] = await admin.query<RowDataPacket[]>(
    'SELECT ssl_type AS type, ssl_cipher AS cipher, x509_issuer AS issuer, x509_subject AS subject FROM mysql.user WHERE User = ? AND Host = ?',
    [from.user, from.host],
  );
  const t: RowDataPacket = tls[0] ?? ({} as RowDataPacket);
  const text = (v: unknown) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v ?? ''));
  let requirement = 'NONE';
  if (t.type === 'ANY') requirement = 'SSL';
  else if (t.type === 'X509') requirement = 'X509';
  else if (t.type === 'SPECIFIED') {
    const parts = [
      ['ISSUER', text(t.issuer)],
      ['SUBJECT', text(t.subject)],
      ['CIPHER', text(t.cipher)],
    ].filter(([, v]) => v !== '');
    requirement = parts.map(([k, v]) => format(`${k} ?`, [v])).join(' AND ') || 'SSL';
  }
  await admin.query(`ALTER USER ${format('?@?', [to.user, to.host])} REQUIRE ${requirement}`);
}
