/**
 * What the consumer library loads only when it is first used: drivers, SDKs, jose and zod. Each module is named
 * literally, so that bundlers (esbuild, webpack) see and include it; `pg` and `mysql2` are peer dependencies the
 * application installs, and a missing one is named with the command that installs it.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import { ErrorType, RotorError } from './errors';

/** jose is ESM only: a real `import()` (kept so by the compiler), which works on every Node the package supports. */
export const loadJose = (): Promise<typeof import('jose')> => import('jose');

export const loadZod = (): typeof import('zod') => require('zod');

export const loadSecretsManagerSdk = (): typeof import('@aws-sdk/client-secrets-manager') =>
  require('@aws-sdk/client-secrets-manager');

/** `pg`, for createRotatingPgPool. */
export const loadPg = (): typeof import('pg') => peer('pg', 'createRotatingPgPool', () => require('pg'));

/** `mysql2/promise`, for createRotatingMysqlPool. */
export const loadMysql = (): typeof import('mysql2/promise') =>
  peer('mysql2', 'createRotatingMysqlPool', () => require('mysql2/promise'));

function peer<T>(name: string, what: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if ((error as { code?: string }).code !== 'MODULE_NOT_FOUND') throw error;
    throw new RotorError(ErrorType.InvalidInput, `${what} needs the ${name} package: npm install ${name}`, undefined, {
      cause: error,
    });
  }
}
