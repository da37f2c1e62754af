import { escapeIdentifier as q, escapeLiteral, type Client } from 'pg';
import { CredentialsRejectedError } from 'rotor-consumers/core';
import type { SetupPlan, SetupStatement } from '../../shared/reports';

/** `ALTER DEFAULT PRIVILEGES` object kinds, by pg_default_acl.defaclobjtype. */
const DEFAULT_ACL_KINDS: Record<string, string> = {
  r: 'TABLES',
  S: 'SEQUENCES',
  f: 'FUNCTIONS',
  T: 'TYPES',
  n: 'SCHEMAS',
};

/**
 * The owner-role model for a PostgreSQL pair (`rotor setup`): a NOLOGIN role `<login>_owner` that both logins are
 * members of and act as by default, owning every object, with what the login may create in schemas and its default
 * privileges carried over. Each statement is listed with whether it is already in place, so running it again
 * changes nothing. Names come from the catalogs and the secret, quoted by the driver.
 */
export async function planOwnerSetup(admin: Client, login: string, clone: string): Promise<Omit<SetupPlan, 'applied'>> {
  const owner = `${login}_owner`;
  const roles = new Set(
    (
      await admin.query<{ name: string }>('SELECT rolname AS name FROM pg_roles WHERE rolname = ANY($1)', [
        [login, clone, owner],
      ])
    ).rows.map((r) => r.name),
  );
  const statements: SetupStatement[] = [];
  const add = (sql: string, done: boolean) => statements.push({ sql, done });
  const hasOwner = roles.has(owner);
  const logins = [login, ...(roles.has(clone) ? [clone] : [])];

  add(`CREATE ROLE ${q(owner)} NOLOGIN`, hasOwner);
  for (const member of logins) {
    const isMember =
      hasOwner && (await scalar<boolean>(admin, `SELECT pg_has_role($1, $2, 'MEMBER') AS v`, [member, owner]));
    add(`GRANT ${q(owner)} TO ${q(member)}`, isMember);
    const setting = await scalar<string | null>(
      admin,
      `SELECT (SELECT s FROM unnest(setconfig) s WHERE s LIKE 'role=%') AS v FROM pg_db_role_setting
        WHERE setdatabase = 0 AND setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
      [member],
    );
    add(`ALTER ROLE ${q(member)} SET role = ${escapeLiteral(owner)}`, setting === `role=${owner}`);
  }

  const schemas = await admin.query<{ name: string; granted: boolean }>(
    `SELECT n.nspname AS name, ${hasOwner ? `has_schema_privilege(${escapeLiteral(owner)}, n.oid, 'CREATE')` : 'false'} AS granted
       FROM pg_namespace n
      WHERE has_schema_privilege($1, n.oid, 'CREATE') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
      ORDER BY 1`,
    [login],
  );
  for (const s of schemas.rows) add(`GRANT USAGE, CREATE ON SCHEMA ${q(s.name)} TO ${q(owner)}`, s.granted);

  for (const member of logins) {
    const owns = await scalar<boolean>(
      admin,
      // Default privileges the login defines are owned by it too, but REASSIGN OWNED leaves them: they are not objects.
      `SELECT EXISTS (SELECT 1 FROM pg_shdepend d WHERE d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND d.deptype = 'o'
                        AND d.classid <> 'pg_default_acl'::regclass
                        AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS v`,
      [member],
    );
    add(`REASSIGN OWNED BY ${q(member)} TO ${q(owner)}`, !owns);
  }

  const defaults = await admin.query<{
    schema: string | null;
    kind: string;
    grantee: string;
    privilege: string;
    role: string;
  }>(
    `SELECT n.nspname AS schema, d.defaclobjtype AS kind, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE g.rolname END AS grantee,
            a.privilege_type AS privilege, r.rolname AS role
       FROM pg_default_acl d JOIN pg_roles r ON r.oid = d.defaclrole LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
            CROSS JOIN aclexplode(d.defaclacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
      WHERE r.rolname = ANY($1)`,
    [[login, owner]],
  );
  const key = (d: (typeof defaults.rows)[number]) => `${d.schema ?? ''}|${d.kind}|${d.grantee}|${d.privilege}`;
  const ownerHas = new Set(defaults.rows.filter((d) => d.role === owner).map(key));
  for (const d of defaults.rows.filter((r) => r.role === login && r.grantee !== login)) {
    const kind = DEFAULT_ACL_KINDS[d.kind];
    // Privilege names come from aclexplode's fixed vocabulary; anything else is not pasted into SQL.
    if (!kind || !/^[A-Z]+( [A-Z]+)?$/.test(d.privilege)) continue;
    const grantee = d.grantee === 'PUBLIC' ? 'PUBLIC' : q(d.grantee);
    add(
      `ALTER DEFAULT PRIVILEGES FOR ROLE ${q(owner)}${d.schema ? ` IN SCHEMA ${q(d.schema)}` : ''} GRANT ${d.privilege} ON ${kind} TO ${grantee}`,
      ownerHas.has(key(d)),
    );
  }
  return { owner, statements };
}

/**
 * Runs the statements not yet in place in one transaction: all or nothing. A privilege the admin lacks fails the
 * whole plan with the statement that needed it, and nothing is left half done.
 */
export async function applyOwnerSetup(secretId: string, admin: Client, statements: SetupStatement[]): Promise<number> {
  const todo = statements.filter((s) => !s.done);
  if (todo.length === 0) return 0;
  await admin.query('BEGIN');
  let current = '';
  try {
    for (const s of todo) {
      current = s.sql;
      await admin.query(s.sql);
    }
    await admin.query('COMMIT');
  } catch (error) {
    await admin.query('ROLLBACK').catch(() => undefined);
    const code = (error as { code?: string }).code;
    if (code === '42501') {
      throw new CredentialsRejectedError(
        secretId,
        `the admin secret may not run ${current} (${(error as Error).message}); nothing was changed`,
      );
    }
    throw error;
  }
  return todo.length;
}

async function scalar<T>(admin: Client, sql: string, params: unknown[]): Promise<T> {
  return (await admin.query<{ v: T }>(sql, params)).rows[0]?.v as T;
}
