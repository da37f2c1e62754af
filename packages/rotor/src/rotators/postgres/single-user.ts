import { canLogIn, setRolePassword, withLogin, type PgLogin } from './connection';
import type { Rotator } from '../rotator';
import { singleUserRotator, tryReadOnly } from '../single-user';
import { databaseSecretSchema, loginFields } from '../database-secret';
import { parseJsonObject, validateShape } from '../secret-json';

/** PostgreSQL's NAMEDATALEN - 1: longer role names are truncated by the server, so they cannot log in as given. */
const MAX_ROLE_BYTES = 63;

export const POSTGRES_ENGINES = ['postgres', 'postgresql', 'aurora-postgresql'] as const;

/** AWS's documented JSON for a PostgreSQL secret. Other fields are kept untouched through rotation. */
const postgresSecretSchema = databaseSecretSchema(POSTGRES_ENGINES, {
  fits: (u) => Buffer.byteLength(u, 'utf8') <= MAX_ROLE_BYTES,
  limit: `must be at most ${MAX_ROLE_BYTES} bytes (PostgreSQL truncates longer role names)`,
});

/** A parsed PostgreSQL secret: the login and the JSON it came from. */
export interface PostgresSecret extends PgLogin {
  json: Record<string, unknown>;
}

export function parsePostgresSecret(secretId: string, raw: string): PostgresSecret {
  const json = parseJsonObject(secretId, raw);
  const shape = validateShape(secretId, postgresSecretSchema, json);
  return { json, ...loginFields(shape, 5432), dbname: shape.dbname ?? 'postgres' };
}

/**
 * Single-user PostgreSQL: one role whose password it changes itself (`ALTER ROLE`), sent as a SCRAM verifier.
 */
export const postgresSingleUser: Rotator<PostgresSecret> = singleUserRotator<PostgresSecret>({
  kind: 'postgres-single-user',
  parse: parsePostgresSecret,
  canLogIn,
  async changeOwnPassword(secretId, login, password) {
    const outcome = await withLogin(secretId, login, (client) => setRolePassword(client, login.username, password));
    return !outcome.rejected;
  },
  async whoAmI(secretId, login) {
    const outcome = await withLogin(secretId, login, async (client) => {
      // session_user, the login: current_user is the role a `SET role` default switched to.
      const { rows } = await client.query<{ user: string }>('SELECT session_user AS "user"');
      return rows[0]?.user;
    });
    return outcome.rejected ? undefined : outcome.result;
  },
  tryQuery: tryPgQuery,
});

/** Runs `query` as `login` in a read-only transaction, rolled back: undefined when it ran, else why not. */
export async function tryPgQuery(secretId: string, login: PostgresSecret, query: string): Promise<string | undefined> {
  const outcome = await withLogin(secretId, login, (client) =>
    tryReadOnly((sql) => client.query(sql), 'BEGIN READ ONLY', query),
  );
  return outcome.rejected ? 'the login was refused' : outcome.result;
}
