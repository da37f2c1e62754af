import { escapeIdentifier, escapeLiteral, type Client } from 'pg';
import { CredentialsRejectedError, ErrorType, RotorError, StoreConflictError } from 'rotor-consumers/core';
import {
  adminOf,
  assertPair,
  CLONE_SUFFIX,
  currentRejected,
  nextOfPair,
  parseAlternating,
  partnerOf,
} from '../alternating';
import type { SetupPlan } from '../../shared/reports';
import type { PasswordPolicy } from '../../shared/rotation';
import { applyOwnerSetup, planOwnerSetup } from './owner-setup';
import { generatePassword } from '../password-policy';
import { canLogIn, setRolePassword, withLogin } from './connection';
import { parsePostgresSecret, postgresSingleUser, tryPgQuery, type PostgresSecret } from './single-user';
import { checkTestQuery } from '../single-user';
import type { Rotator } from '../rotator';
import { targetOf } from '../single-user';

const MAX_ROLE_BYTES = 63;

export interface PostgresAlternatingSecret extends PostgresSecret {
  /** Id or ARN of the admin secret whose login creates and changes the two roles. */
  masterarn: string;
}

export { partnerOf };

export function parsePostgresAlternatingSecret(secretId: string, raw: string): PostgresAlternatingSecret {
  return parseAlternating(
    secretId,
    raw,
    parsePostgresSecret,
    (name) => Buffer.byteLength(name, 'utf8') <= MAX_ROLE_BYTES,
    `role names are at most ${MAX_ROLE_BYTES} bytes`,
  );
}

/**
 * PostgreSQL with alternating users (AWS's multi-user semantics): the secret's login alternates between `name`
 * and `name_clone`, so the credential applications hold keeps working through the whole rotation. The admin secret
 * named by `masterarn` creates the clone (or sets its new password and LOGIN back).
 *
 * Ownership needs no setup: `name` is the pair's owner. The clone is a member of `name` (as AWS's function makes
 * it) and its sessions default to `role = name`, so every object belongs to `name` whichever login created it and
 * every grant to `name` reaches the clone at once. `session_user` and `pg_stat_activity.usename` still name the
 * login, so live-session counting and retirement see the right one. A team with a NOLOGIN owner role (`rotor
 * setup`) keeps it: a `role` setting the current login has is copied instead. Memberships, settings and direct
 * privileges of the current login are copied too, never one that would make a role a member of itself.
 *
 * Confused-deputy guard: AWSCURRENT must log in before the admin credential is used on its behalf.
 */
export const postgresAlternatingUsers: Rotator<PostgresAlternatingSecret> = {
  kind: 'postgres-alternating-users',

  parse: parsePostgresAlternatingSecret,

  target: (secret) => targetOf('postgres', secret),

  async check(secretId, { current }, context) {
    if (!(await canLogIn(secretId, current))) throw currentRejected(secretId, current);
    await checkTestQuery(secretId, current, tryPgQuery);
    await asAdmin(secretId, current, context, async (admin) => {
      const { rows } = await admin.query<{ name: string; ok: boolean }>(
        'SELECT rolname AS name, rolsuper OR rolcreaterole AS ok FROM pg_roles WHERE rolname = current_user',
      );
      if (!rows[0]?.ok) {
        throw new CredentialsRejectedError(
          secretId,
          `the admin secret ${current.masterarn} logs in as ${JSON.stringify(rows[0]?.name)}, which may not create or alter roles (it needs CREATEROLE)`,
        );
      }
    });
    return 'current-and-admin-log-in';
  },

  nextValue: (_secretId: string, current: PostgresAlternatingSecret, policy: PasswordPolicy) =>
    nextOfPair(current, policy),

  async set(secretId, { pending, current }, context) {
    assertPair(secretId, current, pending);
    if (!(await canLogIn(secretId, current))) throw currentRejected(secretId, current);
    const alreadySet = await canLogIn(secretId, pending);
    await asAdmin(secretId, current, context, async (admin) => {
      if (!alreadySet) await upsertLogin(admin, pending.username, pending.password);
      await sharePair(admin, current.username, pending.username);
    });
    return alreadySet ? 'already-set' : 'set';
  },

  test: (secretId, value, ...rest) => postgresSingleUser.test(secretId, value, ...rest),

  async restore(secretId, { want }, context) {
    if (await canLogIn(secretId, want)) return 'already-set';
    await asAdmin(secretId, want, context, (admin) => upsertLogin(admin, want.username, want.password));
    return 'changed';
  },

  /**
   * Per policy: `none` keeps the previous login (AWS's behaviour); `disable-login` sets NOLOGIN; `scramble-password`
   * replaces its password with a random one nobody holds. Either way the next rotation brings it back. A leaked
   * previous credential dies at the end of grace, not a rotation interval later. PostgreSQL keeps sessions that
   * are already open; `terminateSessions` ends them first.
   */
  async retire(secretId, { previous, current, policy, terminateSessions }, context) {
    if (!previous || !policy || policy.retire === 'none') return 'kept';
    if (previous.username === current.username)
      throw new StoreConflictError(secretId, 'the previous and current logins are the same role');
    let outcome = '';
    await asAdmin(secretId, current, context, async (admin) => {
      let ended = 0;
      if (terminateSessions) {
        const { rowCount } = await admin.query(
          'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
          [previous.username],
        );
        ended = rowCount ?? 0;
      }
      if (policy.retire === 'disable-login') {
        await admin.query(`ALTER ROLE ${escapeIdentifier(previous.username)} WITH NOLOGIN`);
        outcome = 'disabled-login';
      } else {
        await setRolePassword(admin, previous.username, generatePassword({ length: 64 }));
        outcome = 'scrambled-password';
      }
      if (terminateSessions) outcome += `; terminated ${ended} sessions`;
    });
    return outcome;
  },

  async setup(secretId, current, context, { dryRun }) {
    if (!(await canLogIn(secretId, current))) throw currentRejected(secretId, current);
    const owner = current.username.endsWith(CLONE_SUFFIX) ? partnerOf(current.username) : current.username;
    let plan: SetupPlan | undefined;
    await asAdmin(secretId, current, context, async (admin) => {
      const planned = await planOwnerSetup(admin, owner, partnerOf(owner));
      plan = { ...planned, applied: dryRun ? 0 : await applyOwnerSetup(secretId, admin, planned.statements) };
    });
    return plan!;
  },

  async countLiveSessions(secretId, { previous, current }, context) {
    let count = 0;
    await asAdmin(secretId, current, context, async (admin) => {
      const { rows } = await admin.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
        [previous.username],
      );
      count = rows[0]?.n ?? 0;
    });
    return count;
  },
};

/** Runs `work` logged in with the admin secret, which must name the same server as the user secret. */
async function asAdmin(
  secretId: string,
  user: PostgresAlternatingSecret,
  context: Parameters<Rotator['set']>[2],
  work: (admin: Client) => Promise<void>,
): Promise<void> {
  const { admin, rejected } = await adminOf(secretId, user, context, parsePostgresSecret);
  const outcome = await withLogin(secretId, { ...admin, dbname: user.dbname }, work);
  if (outcome.rejected) throw rejected();
}

/** Creates the login, or gives it LOGIN and the new password back. */
async function upsertLogin(admin: Client, role: string, password: string): Promise<void> {
  if (!(await roleExists(admin, role))) await admin.query(`CREATE ROLE ${escapeIdentifier(role)} WITH LOGIN`);
  else await admin.query(`ALTER ROLE ${escapeIdentifier(role)} WITH LOGIN`);
  await setRolePassword(admin, role, password);
}

async function roleExists(admin: Client, role: string): Promise<boolean> {
  return ((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount ?? 0) > 0;
}

/**
 * Makes `to` (the pending login) use what `from` (the current one) can, idempotently. The pair's owner is the
 * name without the clone suffix:
 * - the clone joins the owner and its sessions default to `role = owner` (unless the owner already sets a role of
 *   its own, such as a team's NOLOGIN owner role, which is copied instead);
 * - when the owner is pending, objects the clone owns in this database (made before rotor, say by a clone AWS's
 *   function created) are reassigned to the owner; the clone, a member of the owner, keeps using them.
 * Memberships, role settings and direct privileges of `from` are copied, skipping any membership that would make a
 * role a member of itself (a clone AWS made is a member of the owner: `GRANT owner TO owner` fails with 0LP01).
 */
async function sharePair(admin: Client, from: string, to: string): Promise<void> {
  const q = escapeIdentifier;
  const owner = to.endsWith(CLONE_SUFFIX) ? from : to;
  const clone = partnerOf(owner);
  const member = await admin.query<{ role: string }>(
    `SELECT r.rolname AS role FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
      WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1)
        AND NOT pg_has_role(r.oid, (SELECT oid FROM pg_roles WHERE rolname = $2), 'MEMBER')`,
    [from, to],
  );
  for (const { role } of member.rows) await admin.query(`GRANT ${q(role)} TO ${q(to)}`);
  await joinOwner(admin, clone, owner);

  // Settings for every database and per database (ALTER ROLE ... IN DATABASE): `to` ends with exactly `from`'s.
  const wanted = new Set<string>();
  let roleSet = false;
  for (const { database, name, value } of await roleSettings(admin, from)) {
    // The clone's `role = owner` means nothing on the owner itself.
    if (name === 'role' && value === to) continue;
    if (name === 'role' && database === null) roleSet = true;
    wanted.add(`${database ?? ''}\u0000${name}`);
    await copySetting(admin, to, name, value, database);
  }
  const keepsRole = to === clone && !roleSet;
  // A setting `from` no longer has (reset since the last rotation) goes from `to` too, or it would be copied back.
  for (const { database, name } of await roleSettings(admin, to)) {
    if (wanted.has(`${database ?? ''}\u0000${name}`) || (keepsRole && name === 'role' && database === null)) continue;
    await admin.query(`ALTER ROLE ${q(to)}${inDatabase(database)} RESET ${q(name)}`);
  }
  if (keepsRole) await admin.query(`ALTER ROLE ${q(clone)} SET role = ${escapeLiteral(owner)}`);

  if (to === owner) await reassignFromClone(admin, clone, owner);
  await copyGrants(admin, from, to);
}

/**
 * `ALTER ROLE to SET name = ...` so that `to`'s stored setting equals `value`, as `from`'s is stored: one literal for
 * a plain setting (`application_name = 'my app'`), one literal per element for a list-valued one (`search_path =
 * 'billing', 'public'`: as one literal it would be a single schema named "billing, public"). Which one a setting is
 * the catalog does not say, so each form is tried and read back; a setting neither reproduces is refused by name
 * (never copied wrong). Names and values are quoted by the driver's escaping, never pasted.
 */
async function copySetting(
  admin: Client,
  to: string,
  name: string,
  value: string,
  database: string | null = null,
): Promise<void> {
  const q = escapeIdentifier;
  const stored = async () =>
    (await roleSettings(admin, to)).find((x) => x.database === database && x.name === name)?.value;
  const forms = [escapeLiteral(value), listElements(value).map(escapeLiteral).join(', ')];
  for (const form of new Set(forms)) {
    await admin.query(`ALTER ROLE ${q(to)}${inDatabase(database)} SET ${q(name)} = ${form}`);
    if ((await stored()) === value) return;
  }
  throw new RotorError(
    ErrorType.TargetRejected,
    `role ${to}: its setting ${name} could not be made equal to the other login's; set it by hand (ALTER ROLE ... SET)`,
  );
}

/** A role's stored settings: for every database (`database` null) and per database (by name). */
async function roleSettings(
  admin: Client,
  role: string,
): Promise<Array<{ database: string | null; name: string; value: string }>> {
  const { rows } = await admin.query<{ database: string | null; setting: string }>(
    `SELECT d.datname AS database, s AS setting
       FROM pg_db_role_setting rs LEFT JOIN pg_database d ON d.oid = rs.setdatabase, unnest(rs.setconfig) s
      WHERE rs.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
    [role],
  );
  return rows.map(({ database, setting }) => {
    const at = setting.indexOf('=');
    return { database, name: setting.slice(0, at), value: setting.slice(at + 1) };
  });
}

/** ` IN DATABASE <name>` for a per-database setting, nothing for one of every database. */
const inDatabase = (database: string | null) => (database === null ? '' : ` IN DATABASE ${escapeIdentifier(database)}`);

/**
 * The elements of a list-valued setting as PostgreSQL stores it (`billing, "$user"`, and `"a""b"` for a"b): separated
 * by commas, each bare or double-quoted with doubled quotes inside.
 */
export function listElements(value: string): string[] {
  const elements: string[] = [];
  let i = 0;
  while (i < value.length) {
    while (value[i] === ' ') i++;
    let element = '';
    if (value[i] === '"') {
      i++;
      while (i < value.length) {
        if (value[i] === '"' && value[i + 1] === '"') {
          element += '"';
          i += 2;
        } else if (value[i] === '"') {
          i++;
          break;
        } else element += value[i++];
      }
      while (i < value.length && value[i] !== ',') i++;
    } else {
      while (i < value.length && value[i] !== ',') element += value[i++];
      element = element.trimEnd();
    }
    elements.push(element);
    i++; // past the comma
  }
  return elements;
}

/** `GRANT owner TO clone`, unless the owner is already a member of the clone (which would make a cycle). */
async function joinOwner(admin: Client, clone: string, owner: string): Promise<void> {
  const { rows } = await admin.query<{ cycle: boolean }>(
    `SELECT pg_has_role((SELECT oid FROM pg_roles WHERE rolname = $1), (SELECT oid FROM pg_roles WHERE rolname = $2), 'MEMBER') AS cycle`,
    [owner, clone],
  );
  if (rows[0]?.cycle === false) await admin.query(`GRANT ${escapeIdentifier(owner)} TO ${escapeIdentifier(clone)}`);
}

/**
 * Objects the clone owns in this database become the owner's, so the owner login can use them. Only when the
 * clone inherits the owner's privileges: its live sessions keep every right they had.
 */
async function reassignFromClone(admin: Client, clone: string, owner: string): Promise<void> {
  const { rows } = await admin.query<{ owns: boolean; inherits: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
                     WHERE r.rolname = $1 AND d.deptype = 'o'
                       AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS owns,
            pg_has_role((SELECT oid FROM pg_roles WHERE rolname = $1), (SELECT oid FROM pg_roles WHERE rolname = $2), 'USAGE') AS inherits`,
    [clone, owner],
  );
  if (rows[0]?.owns && rows[0].inherits)
    await admin.query(`REASSIGN OWNED BY ${escapeIdentifier(clone)} TO ${escapeIdentifier(owner)}`);
}

/** Direct privileges of `from` on the current database, its schemas, tables, views and sequences, given to `to`. */
async function copyGrants(admin: Client, from: string, to: string): Promise<void> {
  const q = escapeIdentifier;
  const grants = await admin.query<{ kind: string; schema: string | null; name: string; privilege: string }>(
    `WITH grantee AS (SELECT oid FROM pg_roles WHERE rolname = $1)
     SELECT 'DATABASE' AS kind, NULL AS schema, d.datname AS name, a.privilege_type AS privilege
       FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee = (SELECT oid FROM grantee)
     UNION ALL
     SELECT 'SCHEMA', NULL, n.nspname, a.privilege_type
       FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee = (SELECT oid FROM grantee)
     UNION ALL
     SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname, a.privilege_type
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND a.grantee = (SELECT oid FROM grantee)`,
    [from],
  );
  for (const g of grants.rows) {
    // Privilege names come from aclexplode's fixed vocabulary; anything else is not pasted into SQL.
    if (!/^[A-Z]+( [A-Z]+)?$/.test(g.privilege)) continue;
    const object = g.schema === null ? q(g.name) : `${q(g.schema)}.${q(g.name)}`;
    await admin.query(`GRANT ${g.privilege} ON ${g.kind} ${object} TO ${q(to)}`);
  }
}
