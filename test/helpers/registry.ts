import { randomBytes } from 'node:crypto';
import { Client as PgClient, escapeIdentifier, escapeLiteral, Pool } from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { stackEnv, uniqueName } from './env';
import { createSecret, pgSecret, withAdmin } from './stack';

/** A registry database on the stack's PostgreSQL, its login secret (for rotor) and a read-only pool (for verifiers). */
export interface RegistryDatabase {
  readonly registryId: string;
  readonly database: string;
  /** The verifiers' role: SELECT on the tables rotor creates there, nothing else. */
  readonly reader: Pool;
  /** Runs `sql` as the admin in the registry database (test setup only). */
  asAdmin(sql: string, params?: unknown[]): Promise<void>;
}

/**
 * A fresh database for one test file, made before its tests: rotor writes there through a login secret (the stack's
 * admin), verifiers read through a role granted SELECT ahead of the tables rotor creates. Every password joins `seen`.
 */
export function useRegistryDatabase(marker: string, seen: Set<string>): RegistryDatabase {
  const admin = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  const database = uniqueName(marker)
    .replace(/[^a-z0-9_]/gi, '_')
    .toLowerCase();
  const readerRole = { username: `${database}_reader`, password: randomBytes(18).toString('base64url') };
  const inDatabase = new URL(admin);
  inDatabase.pathname = `/${database}`;
  let registryId = '';
  let reader: Pool | undefined;
  const asAdmin = async (sql: string, params: unknown[] = []) => {
    const db = new PgClient({ connectionString: inDatabase.toString() });
    await db.connect();
    try {
      await db.query(sql, params);
    } finally {
      await db.end();
    }
  };
  beforeAll(async () => {
    await withAdmin(async (a) => {
      await a.query(`CREATE DATABASE ${escapeIdentifier(database)}`);
      await a.query(
        `CREATE ROLE ${escapeIdentifier(readerRole.username)} LOGIN PASSWORD ${escapeLiteral(readerRole.password)}`,
      );
    });
    await asAdmin(
      `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${escapeIdentifier(readerRole.username)}`,
    );
    seen.add(decodeURIComponent(admin.password));
    seen.add(readerRole.password);
    registryId = uniqueName(`it/${marker}-registry`);
    await createSecret(
      registryId,
      pgSecret(decodeURIComponent(admin.username), decodeURIComponent(admin.password), { dbname: database }),
    );
    reader = new Pool({
      host: admin.hostname,
      port: Number(admin.port),
      user: readerRole.username,
      password: readerRole.password,
      database,
      max: 4,
    });
  });
  afterAll(async () => {
    await reader?.end();
  });
  return {
    get registryId() {
      return registryId;
    },
    database,
    get reader() {
      if (!reader) throw new Error('the registry database is made before the tests: use it inside them');
      return reader;
    },
    asAdmin,
  };
}
