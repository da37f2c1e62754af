import { isPgAuthError } from 'rotor-consumers/core';
import { createHash } from 'node:crypto';
import { Client, escapeIdentifier, escapeLiteral, Pool, type ClientConfig } from 'pg';
import {
  CredentialsRejectedError,
  InvalidSecretError,
  RotorError,
  TargetRejectedError,
  UnavailableError,
} from 'rotor-consumers/core';
import { scramSha256Verifier } from './scram';

/** What rotor needs to log in to PostgreSQL, from a secret in AWS's JSON shape. */
export interface PgLogin {
  host: string;
  port: number;
  username: string;
  password: string;
  dbname: string;
  /**
   * As AWS's rotation functions read the secret's `ssl`: true requires TLS with a verified certificate (add a
   * private CA with NODE_EXTRA_CA_CERTS), false never uses TLS, absent tries TLS first and falls back to plain
   * when the server offers none (libpq's `prefer`).
   */
  ssl: boolean | undefined;
}

/**
 * What node-postgres says when the other end is not PostgreSQL: a real server answers the TLS request with S or N
 * and speaks its own message format; anything else (MySQL's greeting, say) fails the same way however often tried.
 */
const PROTOCOL_MISMATCH = /error establishing an SSL connection|unexpected \S+ message from backend/i;

function clientConfig(login: PgLogin, tls: ClientConfig['ssl']): ClientConfig {
  return {
    host: login.host,
    port: login.port,
    user: login.username,
    password: login.password,
    database: login.dbname,
    ssl: tls,
    connectionTimeoutMillis: 5000,
    query_timeout: 10_000,
    statement_timeout: 10_000,
    application_name: 'rotor',
  };
}

/**
 * Runs `work` on a connection logged in as `login`. Returns `{ rejected: true }` when the server refuses the
 * credential; throws UnavailableError when it cannot be reached, InvalidSecretError when the database named by
 * the secret does not exist.
 */
export async function withLogin<T>(
  secretId: string,
  login: PgLogin,
  work: (client: Client) => Promise<T>,
  options: { pooled?: boolean } = {},
): Promise<{ rejected: true } | { rejected: false; result: T }> {
  let client: Client;
  let release: (error?: unknown) => Promise<void>;
  try {
    if (options.pooled) ({ client, release } = await pooledClient(login));
    else {
      const own = (client = await connect(login));
      release = () => own.end();
    }
  } catch (error) {
    if (isPgAuthError(error)) return { rejected: true };
    const code = (error as { code?: string }).code;
    if (code === '3D000') {
      throw new InvalidSecretError(secretId, [
        `dbname: database ${JSON.stringify(login.dbname)} does not exist on ${login.host}:${login.port}`,
      ]);
    }
    if (code === 'ENOTFOUND')
      throw new InvalidSecretError(secretId, [`host: ${JSON.stringify(login.host)} does not resolve`]);
    if (PROTOCOL_MISMATCH.test((error as Error).message ?? '')) {
      throw new InvalidSecretError(secretId, [
        `port: ${login.host}:${login.port} does not speak PostgreSQL's protocol (another server on that port?)`,
      ]);
    }
    throw new UnavailableError(
      secretId,
      `PostgreSQL at ${login.host}:${login.port} did not accept a connection (${describe(error)})`,
    );
  }
  let failed: unknown;
  try {
    return { rejected: false, result: await work(client) };
  } catch (error) {
    failed = error;
    if (error instanceof RotorError) throw error;
    const code = (error as { code?: string }).code ?? '';
    if (code === '42501') {
      throw new CredentialsRejectedError(
        secretId,
        `user ${JSON.stringify(login.username)} may not do this on ${login.host}:${login.port} (${describe(error)})`,
      );
    }
    // SQLSTATE classes that may pass (connection, transaction rollback, resources, operator intervention, system)
    // are retried; any other refusal (a missing role, a check violation) would fail the same way again.
    // "tuple concurrently updated" (XX000) is two sessions changing one catalog row at once (GRANTs on one schema, a
    // role dropped while another is made): it passes, as a serialization failure does.
    const concurrent = code === 'XX000' && /concurrently updated/i.test((error as Error).message ?? '');
    if (/^[0-9A-Z]{5}$/.test(code) && !/^(08|40|53|57|58)/.test(code) && !concurrent) {
      throw new TargetRejectedError(
        secretId,
        `PostgreSQL at ${login.host}:${login.port} refused a statement (${describe(error)})`,
      );
    }
    throw new UnavailableError(
      secretId,
      `PostgreSQL at ${login.host}:${login.port} failed a statement (${describe(error)})`,
    );
  } finally {
    await release(failed).catch(() => undefined);
  }
}

/**
 * Admin connections kept open for logins used often (a lease endpoint makes a login per request): a small pool per
 * login (its password in the key, hashed, so a rotated admin secret gets a new pool), TLS as the first connection
 * found it (`prefer`: tried once, not per request). A connection whose work failed is closed, never reused.
 */
const pools = new Map<string, Pool>();
async function pooledClient(login: PgLogin): Promise<{ client: Client; release: (error?: unknown) => Promise<void> }> {
  const key = createHash('sha256')
    .update(JSON.stringify([login.host, login.port, login.dbname, login.username, login.password, login.ssl]))
    .digest('hex');
  let pool = pools.get(key);
  if (!pool) {
    const first = await connect(login); // decides TLS as a single connection does, and proves the login
    const ssl = (first as unknown as { ssl?: ClientConfig['ssl'] }).ssl ?? false;
    await first.end().catch(() => undefined);
    pool =
      pools.get(key) ??
      new Pool({ ...clientConfig(login, ssl), max: 4, idleTimeoutMillis: 30_000, allowExitOnIdle: true });
    pool.on('error', () => undefined); // an idle connection the server closed: the pool drops it
    // One checked out, too: pg-pool takes its idle listener off while it is in use, and an error event nobody
    // listens to (the server ending the connection mid-work) would end the worker.
    pool.on('connect', (c) => c.on('error', () => undefined));
    pools.set(key, pool);
  }
  const client = await pool.connect();
  return {
    client: client as unknown as Client,
    release: async (error?: unknown) => {
      // What the work set on the session (a template's SET ROLE, a search_path) must not reach the next user.
      if (error === undefined) await client.query('DISCARD ALL').catch((e: unknown) => (error = e));
      client.release(error !== undefined);
    },
  };
}

async function connect(login: PgLogin): Promise<Client> {
  const attempt = async (tls: ClientConfig['ssl']) => {
    const client = new Client(clientConfig(login, tls));
    // A connection error after connect() (server shutdown) must not crash the worker.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
  };
  if (login.ssl === true) return attempt({ rejectUnauthorized: true });
  if (login.ssl === false) return attempt(false);
  try {
    return await attempt({ rejectUnauthorized: false });
  } catch (error) {
    if (!/does not support SSL/i.test((error as Error).message ?? '')) throw error;
    return attempt(false);
  }
}

/** True when `login` authenticates. */
export async function canLogIn(secretId: string, login: PgLogin): Promise<boolean> {
  const outcome = await withLogin(secretId, login, (c) => c.query('SELECT 1'));
  return !outcome.rejected;
}

/**
 * `ALTER ROLE <role> PASSWORD <verifier>`: the role quoted by the driver's escapeIdentifier, the password sent as
 * a SCRAM verifier (or, when SASLprep could change it, as a literal quoted by the driver's escapeLiteral).
 * DDL takes no bind parameters, so quoting is the driver's job, never string pasting.
 */
export async function setRolePassword(client: Client, role: string, password: string): Promise<void> {
  const secret = scramSha256Verifier(password) ?? password;
  await client.query(`ALTER ROLE ${escapeIdentifier(role)} WITH PASSWORD ${escapeLiteral(secret)}`);
}

/** The error's code and message without anything that could be a value (pg messages never quote passwords). */
function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return [e.code, e.message].filter(Boolean).join(': ') || String(error);
}
