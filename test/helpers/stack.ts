import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client, Connection } from '@temporalio/client';
import { Client as PgClient, escapeIdentifier, escapeLiteral } from 'pg';
import { RotationClient } from '../../packages/rotor/src/client';
import { AwsSecretsManagerStore, StoreRouter } from 'rotor-consumers/stores';
import type { RotationStatus } from '../../packages/rotor/src/shared/status';
import { stackEnv, uniqueName } from './env';
import { baoAdmin, baoStore, BAO_MOUNT, createBaoSecret, kvPath } from './openbao';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The stores a test worker uses: AWS Secrets Manager (moto) for plain ids, the stack's OpenBao for `bao:` ids. */
export const store = new StoreRouter({ aws: new AwsSecretsManagerStore(), bao: baoStore() }, 'aws');

/** A secret id on a store: `bao:secret/<name>` on OpenBao, the name itself on AWS. */
export function idOn(kind: 'aws' | 'bao', name: string): string {
  return kind === 'bao' ? `bao:${BAO_MOUNT}/${name}` : name;
}

/** Connects a RotationClient to the dev server for `taskQueue`. */
export async function rotationClient(taskQueue: string): Promise<RotationClient> {
  const connection = await Connection.connect({ address: stackEnv('TEMPORAL_ADDRESS') });
  return new RotationClient(
    new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' }),
    taskQueue,
  );
}

export async function createSecret(secretId: string, value: string | object): Promise<string> {
  if (secretId.startsWith('bao:')) return createBaoSecret(secretId, value);
  const sm = new SecretsManagerClient({});
  const out = await sm.send(
    new CreateSecretCommand({
      Name: secretId,
      SecretString: typeof value === 'string' ? value : JSON.stringify(value),
    }),
  );
  return out.VersionId!;
}

/** Which version holds each staging label, and how many versions exist. */
export async function labels(
  secretId: string,
): Promise<{ current?: string; pending?: string; previous?: string; versions: number }> {
  const d = await store.describe(secretId);
  const holder = (stage: string) => d.versions.find((v) => v.stages.includes(stage))?.versionId;
  return {
    ...(holder('AWSCURRENT') ? { current: holder('AWSCURRENT') } : {}),
    ...(holder('AWSPENDING') ? { pending: holder('AWSPENDING') } : {}),
    ...(holder('AWSPREVIOUS') ? { previous: holder('AWSPREVIOUS') } : {}),
    versions: d.versions.length,
  };
}

/** The password held by the version with `stage`. */
export async function passwordAt(
  secretId: string,
  stage: 'AWSCURRENT' | 'AWSPREVIOUS' | 'AWSPENDING',
): Promise<string> {
  const v = await store.getByStage(secretId, stage);
  if (!v) throw new Error(`${secretId} has no ${stage}`);
  return JSON.parse(v.value).password;
}

export async function withAdmin<T>(work: (admin: PgClient) => Promise<T>): Promise<T> {
  const admin = new PgClient({ connectionString: stackEnv('ROTOR_PG_ADMIN_URL') });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

export async function createRole(name: string, password: string): Promise<void> {
  await withAdmin((admin) =>
    admin.query(`CREATE ROLE ${escapeIdentifier(name)} LOGIN PASSWORD ${escapeLiteral(password)}`),
  );
}

export async function roleExists(name: string): Promise<boolean> {
  return withAdmin(
    async (admin) => ((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).rowCount ?? 0) > 0,
  );
}

/** A client (not connected yet) of the stack's PostgreSQL, logged in as `username`, as an application would be. */
export function pgClientAs(username: string, password: string, database = 'postgres'): PgClient {
  const url = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  return new PgClient({ host: url.hostname, port: Number(url.port), user: username, password, database });
}

/** Runs `work` on a connection of the stack's PostgreSQL logged in as `username`, then closes it. */
export async function asPgLogin<T>(username: string, password: string, work: (c: PgClient) => Promise<T>): Promise<T> {
  const c = pgClientAs(username, password);
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

/** True when `username`/`password` logs in to the stack's PostgreSQL. */
export async function logsIn(username: string, password: string): Promise<boolean> {
  const client = pgClientAs(username, password);
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch (error) {
    // 28P01: wrong password; 28000: the role may not log in (NOLOGIN).
    if ((error as { code?: string }).code === '28P01' || (error as { code?: string }).code === '28000') return false;
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A PostgreSQL secret in AWS's JSON shape pointing at the stack's server. */
export function pgSecret(username: string, password: string, extra: object = {}): object {
  const url = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  return {
    engine: 'postgres',
    host: url.hostname,
    port: Number(url.port),
    username,
    password,
    dbname: 'postgres',
    ...extra,
  };
}

/** Polls the rotation's status until `predicate` holds. */
export async function waitForStatus(
  rotor: RotationClient,
  secretId: string,
  predicate: (s: RotationStatus) => boolean,
  timeoutMs = 90_000,
): Promise<RotationStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: RotationStatus | undefined;
  while (Date.now() < deadline) {
    last = await rotor.status(secretId).catch(() => undefined);
    if (last && predicate(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`status of ${secretId} never matched; last: ${JSON.stringify(last)}`);
}

/**
 * A fresh PostgreSQL role with a known password and its secret in AWS's shape. Every password is added to
 * `seen`, for the secret-hygiene checks. `scope` prefixes the role and the secret id (`it`, `e2e`).
 */
export async function roleWithSecret(
  scope: string,
  marker: string,
  seen: Set<string>,
  username = uniqueName(`rotor_${scope}_${marker}`).replace(/-/g, '_'),
): Promise<{ secretId: string; username: string; password: string; versionId: string }> {
  const password = `Init-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
  seen.add(password);
  await createRole(username, password);
  const secretId = uniqueName(`${scope}/${marker}`);
  const versionId = await createSecret(secretId, pgSecret(username, password));
  return { secretId, username, password, versionId };
}

/** Adds the password of every version of `secretId` to `seen`. */
export async function rememberPasswords(secretId: string, seen: Set<string>): Promise<void> {
  for (const v of (await store.describe(secretId)).versions) {
    const value = await store.getByVersion(secretId, v.versionId);
    if (value) seen.add(JSON.parse(value.value).password);
  }
}

/** Sets tags on a secret (rotor reads its per-secret policies from them). */
export async function tagSecret(secretId: string, tags: Record<string, string>): Promise<void> {
  if (secretId.startsWith('bao:')) {
    await baoAdmin('PATCH', `${BAO_MOUNT}/metadata/${kvPath(secretId)}`, { custom_metadata: tags });
    return;
  }
  const { TagResourceCommand } = await import('@aws-sdk/client-secrets-manager');
  await new SecretsManagerClient({}).send(
    new TagResourceCommand({ SecretId: secretId, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }),
  );
}

/**
 * The stack's admin account (from `urlVariable`) stored as a secret in `shape`, as the `masterarn` of alternating
 * users. Its password joins `seen`. Returns the secret's id.
 */
export async function adminSecret(
  marker: string,
  urlVariable: 'ROTOR_PG_ADMIN_URL' | 'ROTOR_MYSQL_ADMIN_URL',
  shape: (username: string, password: string) => object,
  seen: Set<string>,
): Promise<string> {
  const admin = new URL(stackEnv(urlVariable));
  seen.add(decodeURIComponent(admin.password));
  const secretId = uniqueName(marker.includes(':') ? marker : `it/${marker}`);
  await createSecret(secretId, shape(decodeURIComponent(admin.username), decodeURIComponent(admin.password)));
  return secretId;
}
