import { z } from 'zod';
import { CredentialsRejectedError, StoreConflictError, TestFailedError } from '../shared/errors';
import type { PasswordPolicy } from '../shared/types';
import { generatePassword } from './password-policy';
import { canLogIn, setRolePassword, withLogin, type PgLogin } from './postgres/connection';
import type { Rotator } from './rotator';
import { parseJsonObject, validateShape } from './secret-json';

/** PostgreSQL's NAMEDATALEN - 1: longer role names are truncated by the server, so they cannot log in as given. */
const MAX_ROLE_BYTES = 63;

export const POSTGRES_ENGINES = ['postgres', 'postgresql', 'aurora-postgresql'] as const;

/** AWS's documented JSON for a PostgreSQL secret. Other fields are kept untouched through rotation. */
const postgresSecretSchema = z.looseObject({
  engine: z.enum(POSTGRES_ENGINES),
  host: z.string().min(1, 'must not be empty'),
  port: z
    .union([z.number().int().min(1).max(65535), z.string().regex(/^\d{1,5}$/, 'must be a port number')])
    .optional(),
  username: z
    .string()
    .min(1, 'must not be empty')
    .refine((u) => !u.includes('\0'), 'must not contain NUL')
    .refine((u) => Buffer.byteLength(u, 'utf8') <= MAX_ROLE_BYTES, `must be at most ${MAX_ROLE_BYTES} bytes (PostgreSQL truncates longer role names)`),
  password: z.string().min(1, 'must not be empty').refine((p) => !p.includes('\0'), 'must not contain NUL'),
  dbname: z.string().min(1, 'must not be empty').optional(),
  ssl: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
});

/** A parsed PostgreSQL secret: the login and the JSON it came from. */
export interface PostgresSecret extends PgLogin {
  json: Record<string, unknown>;
}

export function parsePostgresSecret(secretId: string, raw: string): PostgresSecret {
  const json = parseJsonObject(secretId, raw);
  const shape = validateShape(secretId, postgresSecretSchema, json);
  return {
    json,
    host: shape.host,
    port: shape.port === undefined ? 5432 : Number(shape.port),
    username: shape.username,
    password: shape.password,
    dbname: shape.dbname ?? 'postgres',
    ssl: shape.ssl === undefined ? undefined : shape.ssl === true || shape.ssl === 'true',
  };
}

/**
 * Single-user PostgreSQL: one role whose password is changed in place. The role changes its own password, so it
 * needs no privilege beyond LOGIN. Between `set` and `finish` only AWSPENDING logs in; applications should read
 * AWSCURRENT and fall back to AWSPENDING (rotor's consumer library does).
 */
export const postgresSingleUser: Rotator<PostgresSecret> = {
  kind: 'postgres-single-user',

  parse: parsePostgresSecret,

  nextValue(_secretId: string, current: PostgresSecret, policy: PasswordPolicy): string {
    return JSON.stringify({ ...current.json, password: generatePassword(policy) });
  },

  async set(secretId, { pending, current, fallbacks }) {
    assertSameLogin(secretId, current, pending);
    return converge(secretId, pending, [current, ...sameLogin(pending, fallbacks)], 'AWSCURRENT nor AWSPREVIOUS');
  },

  async test(secretId, value) {
    const outcome = await withLogin(secretId, value, async (client) => {
      const { rows } = await client.query<{ user: string }>('SELECT current_user AS "user"');
      return rows[0]?.user;
    });
    if (outcome.rejected) throw new TestFailedError(secretId, `user ${JSON.stringify(value.username)} cannot log in`);
    if (outcome.result !== value.username) {
      throw new TestFailedError(secretId, `logged in as ${JSON.stringify(outcome.result)}, expected ${JSON.stringify(value.username)}`);
    }
  },

  async restore(secretId, { want, via }) {
    return converge(secretId, want, sameLogin(want, via), 'any other version');
  },

  async retire() {
    // The old password stopped working when `set` replaced it: nothing is left to revoke.
    return 'nothing-to-retire';
  },
};

/** Makes `want` the role's password: done already if `want` logs in, else changed through the first login that works. */
async function converge(secretId: string, want: PostgresSecret, via: PostgresSecret[], viaNames: string): Promise<string> {
  if (await canLogIn(secretId, want)) return 'already-set';
  for (const [index, login] of via.entries()) {
    const outcome = await withLogin(secretId, login, (client) => setRolePassword(client, login.username, want.password));
    if (!outcome.rejected) return index === 0 ? 'changed' : 'changed-with-fallback';
  }
  throw new CredentialsRejectedError(
    secretId,
    `neither the wanted password nor ${viaNames} logs in as ${JSON.stringify(want.username)} at ${want.host}:${want.port}`,
  );
}

/** Versions that log in to the same server as the same role: others (an old endpoint, say) cannot help. */
function sameLogin(want: PostgresSecret, versions: PostgresSecret[]): PostgresSecret[] {
  return versions.filter((v) => v.host === want.host && v.port === want.port && v.username === want.username);
}

/** A pending version that points at another server or role is not a rotation of this secret: refuse it. */
function assertSameLogin(secretId: string, a: PostgresSecret, b: PostgresSecret): void {
  if (a.host !== b.host || a.port !== b.port || a.username !== b.username) {
    throw new StoreConflictError(secretId, 'versions name different hosts, ports or users; rotor will not mix them');
  }
}
