import { CredentialsRejectedError, InvalidSecretError, StoreConflictError } from 'rotor-consumers/core';
import type { PasswordPolicy } from '../shared/rotation';
import { generatePassword } from './password-policy';
import { parseJsonObject } from './secret-json';
import type { RotatorContext } from './rotator';
import type { DatabaseLogin } from './single-user';

/** Suffix of the second login, as AWS's multi-user rotation names it. */
export const CLONE_SUFFIX = '_clone';

/** The other login of the pair: `app` ↔ `app_clone`. */
export function partnerOf(username: string): string {
  return username.endsWith(CLONE_SUFFIX) ? username.slice(0, -CLONE_SUFFIX.length) : `${username}${CLONE_SUFFIX}`;
}

/**
 * Parses an alternating-users secret: the engine's own shape plus `masterarn`, and a name that leaves room for
 * the partner's (`fits` says whether a name is within the engine's limit, `limit` how to say it). Every problem
 * is reported at once.
 */
export function parseAlternating<S extends DatabaseLogin>(
  secretId: string,
  raw: string,
  parseBase: (secretId: string, raw: string) => S,
  fits: (name: string) => boolean,
  limit: string,
): S & { masterarn: string } {
  const masterarn = parseJsonObject(secretId, raw).masterarn;
  const problems: string[] = [];
  let base: S | undefined;
  try {
    base = parseBase(secretId, raw);
  } catch (error) {
    if (!(error instanceof InvalidSecretError)) throw error;
    problems.push(...error.problems);
  }
  if (typeof masterarn !== 'string' || masterarn.trim() === '') {
    problems.push('masterarn: is required for alternating users (the id or ARN of the admin secret)');
  }
  if (base && !fits(partnerOf(base.username))) {
    problems.push(`username: too long to alternate with ${JSON.stringify(partnerOf(base.username))}: ${limit}`);
  }
  if (problems.length > 0 || !base) throw new InvalidSecretError(secretId, problems);
  return { ...base, masterarn: masterarn as string };
}

/** The next version of a pair: the other login, a new password, every other field kept. */
export function nextOfPair(current: DatabaseLogin, policy: PasswordPolicy): string {
  return JSON.stringify({ ...current.json, username: partnerOf(current.username), password: generatePassword(policy) });
}

/** `pending` must be the other login of `current`'s pair, on the same server. */
export function assertPair(secretId: string, current: DatabaseLogin, pending: DatabaseLogin): void {
  if (
    current.host !== pending.host ||
    current.port !== pending.port ||
    pending.username !== partnerOf(current.username)
  ) {
    throw new StoreConflictError(secretId, 'the pending version is not the other login of the pair on the same server');
  }
}

/** Confused-deputy guard: the admin secret is used on behalf of a pair only once AWSCURRENT has logged in. */
export function currentRejected(secretId: string, current: DatabaseLogin): CredentialsRejectedError {
  return new CredentialsRejectedError(
    secretId,
    `AWSCURRENT does not log in as ${JSON.stringify(current.username)}: rotor will not use the admin secret on its behalf`,
  );
}

/**
 * The pair's admin login, read from the secret `masterarn` names, which must be on the same server as the pair.
 * `rejected` is the error to throw when it does not log in.
 */
export async function adminOf<S extends DatabaseLogin>(
  secretId: string,
  user: DatabaseLogin & { masterarn: string },
  context: RotatorContext,
  parse: (secretId: string, raw: string) => S,
): Promise<{ admin: S; rejected: () => CredentialsRejectedError }> {
  const admin = parse(user.masterarn, await context.readCurrent(user.masterarn));
  if (admin.host !== user.host || admin.port !== user.port) {
    throw new StoreConflictError(
      secretId,
      `the admin secret ${user.masterarn} names another server than the user secret`,
    );
  }
  return {
    admin,
    rejected: () =>
      new CredentialsRejectedError(
        secretId,
        `the admin secret ${user.masterarn} does not log in as ${JSON.stringify(admin.username)}`,
      ),
  };
}
