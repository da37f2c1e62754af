import type { Client } from 'pg';
import { CredentialsRejectedError } from 'rotor-consumers/core';
import { withLogin } from './postgres/connection';
import { parsePostgresSecret } from './postgres/single-user';
import type { RotatorContext } from './rotator';

/**
 * Runs `work` on the PostgreSQL database a secret's `registry` names (a login secret in AWS's JSON), where rotor
 * keeps what verifiers read: API key digests, published JWKs. A refused login is the rotation's error.
 */
export async function onRegistry<T>(
  secretId: string,
  registry: string,
  context: RotatorContext,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  const login = parsePostgresSecret(registry, await context.readCurrent(registry));
  const outcome = await withLogin(secretId, login, work);
  if (outcome.rejected)
    throw new CredentialsRejectedError(
      secretId,
      `the registry database refused the login of ${login.username} (secret ${registry})`,
      true,
    );
  return outcome.result;
}

/** True when `table` (a fixed name of rotor's) exists in the login's search_path. */
export async function tableExists(client: Client, table: string): Promise<boolean> {
  const { rows } = await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [table]);
  return rows[0]?.exists === true;
}

/**
 * Creates one of rotor's registry tables once: concurrent first rotations serialise on an advisory lock so they do
 * not race on the catalog. A login that may not create it gets PostgreSQL's refusal (the docs show the DDL).
 */
export async function ensureTable(client: Client, table: string, ddl: string): Promise<void> {
  if (await tableExists(client, table)) return;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [table]);
    await client.query(ddl);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
