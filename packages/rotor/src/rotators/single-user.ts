import {
  CredentialsRejectedError,
  InvalidSecretError,
  StoreConflictError,
  TestFailedError,
} from 'rotor-consumers/core';
import type { PasswordPolicy } from '../shared/rotation';
import { generatePassword } from './password-policy';
import type { Rotator } from './rotator';

/** A database login parsed from a secret in AWS's JSON shape, with the JSON it came from. */
export interface DatabaseLogin {
  host: string;
  port: number;
  username: string;
  password: string;
  json: Record<string, unknown>;
}

/** What a database engine supplies to the single-user strategy: how to log in and change one's own password. */
export interface SingleUserDriver<S extends DatabaseLogin> {
  readonly kind: string;
  parse(secretId: string, raw: string): S;
  /** True when `login` authenticates; throws UnavailableError when the server cannot be reached. */
  canLogIn(secretId: string, login: S): Promise<boolean>;
  /** Logs in as `login` and sets that account's own password; false when the login is refused. */
  changeOwnPassword(secretId: string, login: S, password: string): Promise<boolean>;
  /** Logs in as `login` and returns the user name the server sees, or undefined when refused. */
  whoAmI(secretId: string, login: S): Promise<string | undefined>;
  /**
   * Logs in as `login` and runs `query` in a read-only transaction, rolled back: undefined when it ran, else why not
   * (the server's code and message, which name objects, never a value).
   */
  tryQuery(secretId: string, login: S, query: string): Promise<string | undefined>;
}

/**
 * Single-user strategy on any engine: one account whose password is changed in place, by the account itself, so it
 * needs no privilege beyond logging in. Between `set` and `finish` only AWSPENDING logs in; applications read
 * AWSCURRENT and fall back to AWSPENDING.
 */
export function singleUserRotator<S extends DatabaseLogin>(driver: SingleUserDriver<S>): Rotator<S> {
  /** Makes `want` the password: done already if it logs in, else changed through the first login that works. */
  async function converge(secretId: string, want: S, via: S[], viaNames: string): Promise<string> {
    if (await driver.canLogIn(secretId, want)) return 'already-set';
    for (const [index, login] of sameAccount(want, via).entries()) {
      if (await driver.changeOwnPassword(secretId, login, want.password))
        return index === 0 ? 'changed' : 'changed-with-fallback';
    }
    throw new CredentialsRejectedError(
      secretId,
      `neither the wanted password nor ${viaNames} logs in as ${JSON.stringify(want.username)} at ${want.host}:${want.port}`,
      true,
    );
  }

  return {
    kind: driver.kind,
    parse: (secretId, raw) => driver.parse(secretId, raw),
    target: (secret) => targetOf(driver.kind, secret),

    async check(secretId, { current, fallbacks }) {
      if (await driver.canLogIn(secretId, current)) {
        await checkTestQuery(secretId, current, driver.tryQuery);
        return 'current-logs-in';
      }
      for (const login of sameAccount(current, fallbacks)) {
        if (await driver.canLogIn(secretId, login)) return 'fallback-logs-in';
      }
      throw new CredentialsRejectedError(
        secretId,
        `no version of the secret (AWSCURRENT, AWSPREVIOUS, AWSPENDING) logs in as ${JSON.stringify(current.username)} at ${current.host}:${current.port}: set the password the database holds as AWSCURRENT, then rotate`,
        true,
      );
    },

    nextValue(_secretId: string, current: S, policy: PasswordPolicy): string {
      return JSON.stringify({ ...current.json, password: generatePassword(policy) });
    },

    async set(secretId, { pending, current, fallbacks }) {
      if (sameAccount(pending, [current]).length === 0) {
        throw new StoreConflictError(
          secretId,
          'the pending and current versions name different hosts, ports or users; rotor will not mix them',
        );
      }
      return converge(secretId, pending, [current, ...fallbacks], 'AWSCURRENT nor AWSPREVIOUS');
    },

    async test(secretId, value) {
      const user = await driver.whoAmI(secretId, value);
      if (user === undefined)
        throw new TestFailedError(secretId, `user ${JSON.stringify(value.username)} cannot log in`);
      if (user !== value.username) {
        throw new TestFailedError(
          secretId,
          `logged in as ${JSON.stringify(user)}, expected ${JSON.stringify(value.username)}`,
        );
      }
      // The secret's own proof that the login reaches what the application needs (a table, a query).
      const query = value.json.testQuery;
      if (typeof query === 'string') {
        const failed = await driver.tryQuery(secretId, value, query);
        if (failed !== undefined)
          throw new TestFailedError(secretId, `testQuery failed as ${JSON.stringify(value.username)}: ${failed}`);
      }
    },

    async restore(secretId, { want, via }) {
      return converge(secretId, want, via, 'any other version');
    },

    async retire() {
      // The old password stopped working when `set` replaced it: nothing is left to revoke.
      return 'nothing-to-retire';
    },
  };
}

/** Versions that log in to the same server as the same account: others (an old endpoint, say) cannot help. */
function sameAccount<S extends DatabaseLogin>(want: S, versions: S[]): S[] {
  return versions.filter((v) => v.host === want.host && v.port === want.port && v.username === want.username);
}

/** A database server as a target key: engine family, host and port. */
export function targetOf(kind: string, login: DatabaseLogin): string {
  return `${kind.split('-')[0]}://${login.host}:${login.port}`;
}

/**
 * The secret's `testQuery` must run with AWSCURRENT before a rotation relies on it: a query that fails with the login
 * that works today is the query's fault, refused (changing nothing) rather than failing every rotation's test and its
 * compensation.
 */
export async function checkTestQuery<S extends DatabaseLogin>(
  secretId: string,
  current: S,
  tryQuery: (secretId: string, login: S, query: string) => Promise<string | undefined>,
): Promise<void> {
  const query = current.json.testQuery;
  if (typeof query !== 'string') return;
  const failed = await tryQuery(secretId, current, query);
  if (failed !== undefined)
    throw new InvalidSecretError(secretId, [`testQuery: fails with AWSCURRENT too (${failed}); fix the query`]);
}

/**
 * Runs `query` through `exec` in a read-only transaction (`begin`, the engine's words for one), rolled back:
 * undefined when it ran, else why not (the server's code and message, which name objects, never a value).
 */
export async function tryReadOnly(
  exec: (sql: string) => Promise<unknown>,
  begin: string,
  query: string,
): Promise<string | undefined> {
  await exec(begin);
  try {
    await exec(query);
    return undefined;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    return `${e.code ?? 'error'}: ${e.message ?? ''}`.slice(0, 300);
  } finally {
    await exec('ROLLBACK').catch(() => undefined);
  }
}
