import { InvalidSecretError } from '../shared/errors';
import type { PasswordPolicy } from '../shared/types';
import { generatePassword } from './password-policy';
import { parseJsonObject } from './secret-json';
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
