import { describe, type Checker, type Node } from './checker';
import type { OpenBaoStoreConfig, StoresConfig } from './types';

/* rotor.yaml's `stores`: where secrets live. AWS Secrets Manager is always there (as `aws`); OpenBao/Vault KV v2
 * stores are declared by name, and a secret id names its store (`bao:secret/prod/db/orders`). */

const STORES_KEYS = ['default', 'openbao'];
const OPENBAO_KEYS = ['name', 'address', 'mounts', 'namespace', 'caFile', 'requestTimeout', 'auth'];
const AUTH_KEYS = [
  'method',
  'tokenFromEnv',
  'tokenFile',
  'roleId',
  'secretIdFromEnv',
  'secretIdFile',
  'role',
  'jwtFile',
  'mount',
];
const STORE_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MOUNT = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
export const AWS_STORE = 'aws';
export const DEFAULT_STORES: StoresConfig = { default: AWS_STORE, openbao: [] };

export function readStores(c: Checker, node: Node): StoresConfig {
  const section = c.settings(node, STORES_KEYS);
  const openbao: OpenBaoStoreConfig[] = [];
  for (const item of c.list(section.at('openbao')) ?? []) {
    const store = readOpenBao(c, item, [AWS_STORE, ...openbao.map((s) => s.name)]);
    if (store) openbao.push(store);
  }
  const names = [AWS_STORE, ...openbao.map((s) => s.name)];
  const defaultNode = section.at('default');
  const fallback = c.string(defaultNode) ?? AWS_STORE;
  if (!names.includes(fallback)) c.add(defaultNode.path, `${describe(fallback)} is not a store (${names.join(', ')})`);
  return { default: fallback, openbao };
}

function readOpenBao(c: Checker, node: Node, taken: string[]): OpenBaoStoreConfig | undefined {
  const s = c.section(node, OPENBAO_KEYS);
  if (!s) return undefined;
  c.present(s.at('name'), ' (the prefix of its secret ids, e.g. bao for bao:secret/prod/db)');
  c.present(s.at('address'), ' (e.g. https://bao.internal:8200)');
  c.present(s.at('auth'), ' (how rotor logs in: token, approle, kubernetes or jwt)');
  const name = c.string(s.at('name'));
  if (name !== undefined && (!STORE_NAME.test(name) || name === 'arn'))
    c.add(s.at('name').path, `${describe(name)} is not a store name (a-z, 0-9 and -, starting with a letter; not arn)`);
  else if (name !== undefined && taken.includes(name)) c.add(s.at('name').path, `${describe(name)} is taken`);
  const address = c.string(s.at('address'));
  if (address !== undefined && !/^https?:\/\/[^/]+\/?$/.test(address))
    c.add(s.at('address').path, `${describe(address)} is not a server address (http(s)://host:port)`);
  const mounts: string[] = [];
  for (const item of c.list(s.at('mounts')) ?? []) {
    const mount = c.string(item);
    if (mount !== undefined && !MOUNT.test(mount)) c.add(item.path, `${describe(mount)} is not a mount path`);
    else if (mount !== undefined) mounts.push(mount);
  }
  const auth = readAuth(c, s.at('auth'));
  const requestTimeoutMs = c.duration(s.at('requestTimeout'), 100);
  const namespace = c.string(s.at('namespace'));
  const caFile = c.string(s.at('caFile'));
  if (!name || !address || !auth || !STORE_NAME.test(name) || name === 'arn' || taken.includes(name)) return undefined;
  return {
    name,
    address,
    mounts: mounts.length ? mounts : ['secret'],
    auth,
    ...(namespace ? { namespace } : {}),
    ...(caFile ? { caFile } : {}),
    ...(requestTimeoutMs ? { requestTimeoutMs } : {}),
  };
}

function readAuth(c: Checker, node: Node): OpenBaoStoreConfig['auth'] | undefined {
  const a = c.section(node, AUTH_KEYS);
  if (!a) return undefined;
  const text = (key: string) => c.string(a.at(key));
  const env = (key: string) => {
    const value = text(key);
    if (value !== undefined && !ENV_NAME.test(value))
      c.add(a.at(key).path, `${describe(value)} is not an environment variable name`);
    return value;
  };
  const mount = text('mount');
  const method = text('method');
  const allowed: Record<string, string[]> = {
    token: ['tokenFromEnv', 'tokenFile'],
    approle: ['roleId', 'secretIdFromEnv', 'secretIdFile', 'mount'],
    kubernetes: ['role', 'jwtFile', 'mount'],
    jwt: ['role', 'jwtFile', 'mount'],
  };
  if (method === undefined || !(method in allowed)) {
    c.add(
      a.at('method').path,
      `${method === undefined ? 'is required' : describe(method) + ' is not a method'} (token, approle, kubernetes or jwt)`,
    );
    return undefined;
  }
  for (const key of AUTH_KEYS)
    if (key !== 'method' && a.has(key) && !allowed[method]!.includes(key))
      c.add(a.at(key).path, `does not apply to the ${method} method (it takes ${allowed[method]!.join(', ')})`);
  switch (method) {
    case 'token': {
      const tokenFromEnv = env('tokenFromEnv');
      const tokenFile = text('tokenFile');
      if (!tokenFromEnv === !tokenFile)
        return c.add(a.path, "takes one of tokenFromEnv (a variable holding the token) or tokenFile (an agent's sink)");
      return { method, ...(tokenFromEnv ? { tokenFromEnv } : { tokenFile: tokenFile! }) };
    }
    case 'approle': {
      const roleId = text('roleId');
      const secretIdFromEnv = env('secretIdFromEnv');
      const secretIdFile = text('secretIdFile');
      if (!roleId) return c.add(a.at('roleId').path, 'is required for approle');
      if (!secretIdFromEnv === !secretIdFile)
        return c.add(
          a.path,
          'takes one of secretIdFromEnv or secretIdFile (secret ids are never written in rotor.yaml)',
        );
      return {
        method,
        roleId,
        ...(secretIdFromEnv ? { secretIdFromEnv } : { secretIdFile: secretIdFile! }),
        ...(mount ? { mount } : {}),
      };
    }
    default: {
      const role = text('role');
      if (!role) return c.add(a.at('role').path, `is required for ${method}`);
      const jwtFile = text('jwtFile');
      return {
        method: method as 'kubernetes' | 'jwt',
        role,
        ...(jwtFile ? { jwtFile } : {}),
        ...(mount ? { mount } : {}),
      };
    }
  }
}
