import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpenBaoKvStore, type OpenBaoKvStoreOptions } from 'rotor-consumers/stores';
import { stackEnv } from './env';

/** The KV v2 mount the tests use on the stack's OpenBao (its dev server mounts `secret`). */
export const BAO_MOUNT = 'secret';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- OpenBao's answers, read as each test needs them
type Answer = any;

/** A request to the stack's OpenBao as its root token (setup and inspection only; rotor logs in as configured). */
export async function baoAdmin(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; data?: Answer; auth?: Answer; leaseId?: string }> {
  const response = await fetch(`${stackEnv('BAO_ADDR')}/v1/${path}`, {
    method,
    headers: {
      'x-vault-token': stackEnv('BAO_TOKEN'),
      'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : undefined;
  if (response.status >= 400 && response.status !== 404)
    throw new Error(`OpenBao ${method} ${path}: HTTP ${response.status} ${JSON.stringify(parsed?.errors)}`);
  return { status: response.status, data: parsed?.data, auth: parsed?.auth, leaseId: parsed?.lease_id };
}

/** An OpenBao KV store on the stack, as rotor's worker makes it (root token unless `auth` says otherwise). */
export function baoStore(options: Partial<OpenBaoKvStoreOptions> = {}): OpenBaoKvStore {
  return new OpenBaoKvStore({
    address: stackEnv('BAO_ADDR'),
    auth: { method: 'token', token: stackEnv('BAO_TOKEN') },
    mounts: [BAO_MOUNT],
    ...options,
  });
}

/** The KV path of a `bao:secret/...` id. */
export function kvPath(secretId: string): string {
  return secretId.replace(/^bao:/, '').slice(BAO_MOUNT.length + 1);
}

/**
 * Creates a KV secret as a team has it before rotor (one version written with `bao kv put`, tags in its custom
 * metadata); returns the version id rotor sees for it (the version number).
 */
export async function createBaoSecret(secretId: string, value: string | object, tags?: Record<string, string>) {
  const path = kvPath(secretId);
  const data = typeof value === 'string' ? JSON.parse(value) : value;
  const written = await baoAdmin('POST', `${BAO_MOUNT}/data/${path}`, { options: { cas: 0 }, data });
  if (tags) await baoAdmin('POST', `${BAO_MOUNT}/metadata/${path}`, { custom_metadata: tags });
  return String(written.data.version);
}

/** Enables an auth method or secrets engine at `path` unless something is mounted there already. */
export async function ensureMounted(kind: 'auth' | 'mounts', path: string, type: string): Promise<void> {
  const existing = await baoAdmin('GET', `sys/${kind}`);
  if (existing.data?.[`${path}/`]) return;
  await baoAdmin('POST', `sys/${kind}/${path}`, { type });
}

/**
 * A rotor.yaml declaring the stack's OpenBao as the store `bao` (logging in with the token in BAO_TOKEN), for a test
 * worker's ROTOR_CONFIG; `secrets` lists the ids it manages (at least one, as rotor.yaml requires).
 */
export function baoWorkerConfig(
  secrets: string[] = [`bao:${BAO_MOUNT}/it/bao-managed`],
  address = stackEnv('BAO_ADDR'),
): string {
  const dir = mkdtempSync(join(tmpdir(), 'rotor-bao-config-'));
  const file = join(dir, 'rotor.yaml');
  writeFileSync(
    file,
    `version: 1
stores:
  openbao:
    - name: bao
      address: ${address}
      mounts: [${BAO_MOUNT}]
      auth: { method: token, tokenFromEnv: BAO_TOKEN }
secrets:
${secrets.map((id) => `  - id: ${id}\n    schedule: { every: 30d }`).join('\n')}
`,
  );
  return file;
}
