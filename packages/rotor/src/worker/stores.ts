import { InvalidInputError } from 'rotor-consumers/core';
import {
  AwsSecretsManagerStore,
  OpenBaoKvStore,
  StoreRouter,
  type OpenBaoAuth,
  type SecretStore,
} from 'rotor-consumers/stores';
import { AWS_STORE } from '../config/store-readers';
import type { OpenBaoStoreConfig, StoresConfig } from '../config/types';

/**
 * The worker's store from rotor.yaml's `stores`: AWS Secrets Manager alone when no other store is declared, else a
 * StoreRouter over AWS and each OpenBao/Vault store. Tokens and secret ids come from the environment variables the
 * file names; one that is missing stops the worker, naming the variable (never a value).
 */
export function storeFromConfig(
  config: StoresConfig,
  env: NodeJS.ProcessEnv = process.env,
  aws: SecretStore = new AwsSecretsManagerStore(),
): SecretStore {
  if (config.openbao.length === 0 && config.default === AWS_STORE) return aws;
  const stores: Record<string, SecretStore> = { [AWS_STORE]: aws };
  for (const bao of config.openbao) stores[bao.name] = openBaoStore(bao, env);
  return new StoreRouter(stores, config.default);
}

function openBaoStore(config: OpenBaoStoreConfig, env: NodeJS.ProcessEnv): OpenBaoKvStore {
  return new OpenBaoKvStore({
    name: config.name,
    address: config.address,
    mounts: config.mounts,
    auth: authFrom(config, env),
    ...(config.namespace ? { namespace: config.namespace } : {}),
    ...(config.caFile ? { caFile: config.caFile } : {}),
    ...(config.requestTimeoutMs ? { requestTimeoutMs: config.requestTimeoutMs } : {}),
  });
}

function authFrom({ name, auth }: OpenBaoStoreConfig, env: NodeJS.ProcessEnv): OpenBaoAuth {
  const fromEnv = (variable: string, what: string) => {
    const value = env[variable];
    if (!value) throw new InvalidInputError(`store ${name}: ${variable} is not set (it holds the ${what})`);
    return value;
  };
  switch (auth.method) {
    case 'token':
      return 'tokenFromEnv' in auth
        ? { method: 'token', token: fromEnv(auth.tokenFromEnv, 'OpenBao token') }
        : { method: 'token', tokenFile: auth.tokenFile };
    case 'approle':
      return {
        method: 'approle',
        roleId: auth.roleId,
        ...('secretIdFromEnv' in auth
          ? { secretId: fromEnv(auth.secretIdFromEnv, 'AppRole secret id') }
          : { secretIdFile: auth.secretIdFile }),
        ...(auth.mount ? { mount: auth.mount } : {}),
      };
    default:
      return {
        method: auth.method,
        role: auth.role,
        ...(auth.jwtFile ? { jwtFile: auth.jwtFile } : {}),
        ...(auth.mount ? { mount: auth.mount } : {}),
      };
  }
}
