import { randomInt } from 'node:crypto';
import { InvalidInputError } from 'rotor-consumers/core';
import type { PasswordPolicy } from '../shared/rotation';

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/**
 * rotor's default: 32 characters of every class, without the characters that break connection URLs
 * (`: / @ # ? %`), .pgpass lines (`:` `\`), or shell quoting (`" ' \` `` ` `` `$` and spaces).
 */
export const DEFAULT_PASSWORD_POLICY: PasswordPolicy = {
  length: 32,
  excludeCharacters: ':/@"\'\\`$#?% ',
  excludeUppercase: false,
  excludeLowercase: false,
  excludeNumbers: false,
  excludePunctuation: false,
  requireEachIncludedType: true,
};

/** The policy with defaults filled in; throws InvalidInputError when no password could satisfy it. */
export function resolvePasswordPolicy(partial: Partial<PasswordPolicy> = {}): PasswordPolicy {
  const policy = { ...DEFAULT_PASSWORD_POLICY, ...partial };
  if (!Number.isInteger(policy.length) || policy.length < 8 || policy.length > 4096) {
    throw new InvalidInputError(`password policy: length ${policy.length} is not an integer from 8 to 4096`);
  }
  const classes = characterClasses(policy);
  if (classes.length === 0) throw new InvalidInputError('password policy: every character is excluded');
  if (policy.requireEachIncludedType && classes.length > policy.length) {
    throw new InvalidInputError(
      `password policy: length ${policy.length} cannot hold one of each of ${classes.length} classes`,
    );
  }
  return policy;
}

function characterClasses(policy: PasswordPolicy): string[] {
  const keep = (chars: string) => [...chars].filter((c) => !policy.excludeCharacters.includes(c)).join('');
  return [
    policy.excludeUppercase ? '' : keep(UPPER),
    policy.excludeLowercase ? '' : keep(LOWER),
    policy.excludeNumbers ? '' : keep(DIGITS),
    policy.excludePunctuation ? '' : keep(PUNCTUATION),
  ].filter((c) => c.length > 0);
}

/** A random password under the policy, from the OS's CSPRNG (uniform per character, no modulo bias). */
export function generatePassword(partial: Partial<PasswordPolicy> = {}): string {
  const policy = resolvePasswordPolicy(partial);
  const classes = characterClasses(policy);
  const all = classes.join('');
  const chars: string[] = [];
  if (policy.requireEachIncludedType) for (const c of classes) chars.push(c[randomInt(c.length)]!);
  while (chars.length < policy.length) chars.push(all[randomInt(all.length)]!);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}
