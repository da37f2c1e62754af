import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { Stage, StoreRejectedError, UnavailableError } from 'rotor-consumers/core';
import type { OpenBaoKvStore } from 'rotor-consumers/stores';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackEnv, uniqueName, until } from '../helpers/env';
import { BAO_MOUNT, baoAdmin, baoStore, createBaoSecret, ensureMounted } from '../helpers/openbao';
import { freePort } from '../helpers/ops';

/**
 * How the OpenBao store logs in, as teams run it: AppRole, a JWT from a file (the Kubernetes method's shape), a token
 * file an agent rewrites, short token lifetimes renewed and replaced, a namespace, and HTTPS with a CA file.
 */

const POLICY = uniqueName('rotor-kv');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rotor-bao-'));
  await baoAdmin('PUT', `sys/policies/acl/${POLICY}`, {
    policy: `path "${BAO_MOUNT}/data/auth/*" { capabilities = ["create", "read", "update"] }
path "${BAO_MOUNT}/metadata/auth/*" { capabilities = ["create", "read", "update"] }`,
  });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A secret the policy covers, and a check that `store` reads it and moves a label on it. */
async function worksWith(store: OpenBaoKvStore): Promise<void> {
  const id = `bao:${BAO_MOUNT}/${uniqueName('auth/secret')}`;
  const v1 = await createBaoSecret(id, { username: 'app', password: 'Initial-0' });
  expect((await store.getByStage(id, Stage.current))?.versionId).toBe(v1);
  const token = crypto.randomUUID();
  await store.putPending(id, token, JSON.stringify({ username: 'app', password: 'Next-1' }));
  await store.moveStage(id, Stage.current, token);
  expect((await store.describe(id)).versions.find((v) => v.stages.includes(Stage.current))?.versionId).toBe(token);
}

/** The accessor of the one live token that logins at `mount` made. */
async function liveLoginAt(mount: string): Promise<string[]> {
  const list = await baoAdmin('LIST', 'auth/token/accessors');
  const live: string[] = [];
  for (const accessor of list.data?.keys ?? []) {
    const token = await baoAdmin('POST', 'auth/token/lookup-accessor', { accessor });
    if (token.data?.path?.startsWith(`auth/${mount}/login`)) live.push(accessor);
  }
  return live;
}

describe('AppRole', () => {
  it('logs in, renews its token at two thirds of its TTL and logs in again past the maximum', async () => {
    const mount = uniqueName('approle').toLowerCase();
    await ensureMounted('auth', mount, 'approle');
    await baoAdmin('POST', `auth/${mount}/role/rotor`, {
      token_policies: [POLICY],
      token_ttl: '3s',
      token_max_ttl: '6s',
    });
    const roleId = (await baoAdmin('GET', `auth/${mount}/role/rotor/role-id`)).data.role_id;
    const secretId = (await baoAdmin('POST', `auth/${mount}/role/rotor/secret-id`)).data.secret_id;
    const secretIdFile = join(dir, 'secret-id');
    await writeFile(secretIdFile, `${secretId}\n`, { mode: 0o600 });
    const store = baoStore({ auth: { method: 'approle', roleId, secretIdFile, mount } });
    await worksWith(store);
    // Past two maximum lifetimes of the token: every read works, and the store logged in more than once.
    const id = `bao:${BAO_MOUNT}/${uniqueName('auth/renew')}`;
    await createBaoSecret(id, { k: 'v' });
    const [first] = await liveLoginAt(mount);
    const readFor = async (seconds: number) => {
      for (let i = 0; i < seconds; i++) {
        expect((await store.getByStage(id, Stage.current))?.value).toBe('{"k":"v"}');
        await sleep(1000);
      }
    };
    // Past the token's 3 s TTL it lives on, renewed; past its 6 s maximum another login's token took over.
    await readFor(4);
    const renewed = await baoAdmin('POST', 'auth/token/lookup-accessor', { accessor: first });
    expect(renewed.data?.last_renewal_time).toBeGreaterThan(0);
    await readFor(8);
    await store.getByStage(id, Stage.current);
    const live = await liveLoginAt(mount);
    expect(live).toHaveLength(1);
    expect(live).not.toContain(first);
    store.close();
  }, 40_000);

  it('a wrong secret id is refused with StoreRejectedError naming the method and mount, not the secret id', async () => {
    const mount = uniqueName('approle').toLowerCase();
    await ensureMounted('auth', mount, 'approle');
    await baoAdmin('POST', `auth/${mount}/role/rotor`, { token_policies: [POLICY] });
    const roleId = (await baoAdmin('GET', `auth/${mount}/role/rotor/role-id`)).data.role_id;
    const wrong = 'f0f0f0f0-0000-4000-8000-000000000000';
    const store = baoStore({ auth: { method: 'approle', roleId, secretId: wrong, mount } });
    const error = await store.describe(`bao:${BAO_MOUNT}/auth/anything`).catch((e: Error) => e);
    expect(error).toBeInstanceOf(StoreRejectedError);
    expect((error as Error).message).toContain(`approle login at auth/${mount}`);
    expect((error as Error).message).not.toContain(wrong);
  });
});

describe('a JWT from a file (the Kubernetes auth method sends the same login)', () => {
  it('logs in with the JWT in the file, read again at every login', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    // No Kubernetes API runs here: OpenBao's JWT method, mounted at `kubernetes`, takes the same {role, jwt} login
    // the Kubernetes method takes, so the `kubernetes` method's request is what is tested.
    for (const [method, mount] of [
      ['jwt', uniqueName('jwt').toLowerCase()],
      ['kubernetes', uniqueName('kubernetes').toLowerCase()],
    ] as const) {
      await ensureMounted('auth', mount, 'jwt');
      await baoAdmin('POST', `auth/${mount}/config`, { jwt_validation_pubkeys: [await exportSPKI(publicKey)] });
      await baoAdmin('POST', `auth/${mount}/role/rotor`, {
        role_type: 'jwt',
        bound_audiences: ['rotor'],
        user_claim: 'sub',
        token_policies: [POLICY],
        token_ttl: '2s',
        token_max_ttl: '2s',
      });
      const jwtFile = join(dir, `${mount}.jwt`);
      const sign = (lifetime: string) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'ES256' })
          .setSubject('system:serviceaccount:rotor:worker')
          .setAudience('rotor')
          .setIssuedAt()
          .setExpirationTime(lifetime)
          .sign(privateKey);
      await writeFile(jwtFile, await sign('4s'));
      const store = baoStore({ auth: { method, role: 'rotor', jwtFile, mount } });
      await worksWith(store);
      // The JWT in the file expires; the kubelet writes a new one: the next login reads it.
      await writeFile(jwtFile, await sign('1h'));
      await sleep(5000);
      await worksWith(store);
      store.close();
    }
  }, 40_000);
});

describe('a token file an agent rewrites', () => {
  it('reads the file again when the server refuses the token in hand', async () => {
    const tokenFile = join(dir, 'token');
    const first = await createToken();
    await writeFile(tokenFile, first);
    const store = baoStore({ auth: { method: 'token', tokenFile } });
    await worksWith(store);
    // The agent's token is revoked and a new one written to the file.
    await baoAdmin('POST', 'auth/token/revoke', { token: first });
    await writeFile(tokenFile, await createToken());
    await worksWith(store);
    store.close();
  });
});

async function createToken(): Promise<string> {
  return (await baoAdmin('POST', 'auth/token/create', { policies: [POLICY], ttl: '1h' })).auth.client_token;
}

describe('a namespace', () => {
  it('sends every request in the configured namespace', async () => {
    const namespace = uniqueName('team').toLowerCase();
    await baoAdmin('POST', `sys/namespaces/${namespace}`, {});
    const inNamespace = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${stackEnv('BAO_ADDR')}/v1/${path}`, {
        method,
        headers: { 'x-vault-token': stackEnv('BAO_TOKEN'), 'x-vault-namespace': namespace },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return r.status === 204 ? undefined : ((await r.json()) as { data: { version: number } });
    };
    await inNamespace('POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
    await until(
      "the namespace's KV mount",
      async () => ((await inNamespace('GET', 'kv/config')) ? true : undefined),
      10_000,
    );
    const written = await inNamespace('POST', 'kv/data/team/db', { data: { password: 'In-namespace-1' } });
    const store = baoStore({ namespace, mounts: ['kv'] });
    const read = await store.getByStage('bao:kv/team/db', Stage.current);
    expect(read?.versionId).toBe(String(written!.data.version));
    expect(store.description).toContain(`namespace ${namespace}`);
    // The same path outside the namespace does not exist.
    await expect(baoStore({ mounts: ['kv'] }).describe('bao:kv/team/db')).rejects.toThrow();
    store.close();
  });
});

describe('HTTPS with a CA file', () => {
  let server: ChildProcess;
  let address: string;
  let caFile: string;

  beforeAll(async () => {
    const port = await freePort();
    const certs = join(dir, 'tls');
    address = `https://127.0.0.1:${port}`;
    caFile = join(certs, 'vault-ca.pem');
    await mkdir(certs);
    server = spawn(
      stackEnv('ROTOR_BAO_BIN'),
      [
        'server',
        '-dev',
        '-dev-tls',
        `-dev-tls-cert-dir=${certs}`,
        `-dev-listen-address=127.0.0.1:${port}`,
        '-dev-root-token-id=tls-root-token',
        '-dev-no-store-token',
      ],
      { stdio: 'ignore' },
    );
    await until("the dev server's CA file", () => existsSync(caFile) || undefined, 30_000);
    await until(
      'the HTTPS dev server',
      async () => {
        const store = baoStore({ address, caFile, auth: { method: 'token', token: 'tls-root-token' } });
        const ok = await store.describe('bao:secret/none').then(
          () => true,
          (e: Error) => !(e instanceof UnavailableError),
        );
        store.close();
        return ok || undefined;
      },
      30_000,
    );
  }, 60_000);

  afterAll(() => {
    server?.kill('SIGKILL');
  });

  it('trusts the server through the CA file, and refuses it without', async () => {
    const store = baoStore({ address, caFile, auth: { method: 'token', token: 'tls-root-token' } });
    await expect(store.describe('bao:secret/none')).rejects.toThrow(/not found/i);
    store.close();
    const untrusting = baoStore({ address, auth: { method: 'token', token: 'tls-root-token' } });
    const error = await untrusting.describe('bao:secret/none').catch((e: Error) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    untrusting.close();
  });
});
