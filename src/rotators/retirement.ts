import { parseDuration } from '../shared/duration';
import { InvalidSecretError } from '../shared/errors';
import type { RetirementPolicy } from '../shared/types';

/** Secret tags that set the retirement policy of an alternating pair (so it travels with the secret, as in AWS). */
export const RetirementTag = {
  retire: 'rotor:retire',
  liveSessions: 'rotor:live-sessions',
  maxWait: 'rotor:live-sessions-max-wait',
} as const;

export const DEFAULT_RETIREMENT: RetirementPolicy = { retire: 'none', liveSessions: 'wait', maxWaitMs: 3_600_000 };

/** The retirement policy from a secret's tags; every bad tag is named at once. Pure. */
export function retirementFromTags(secretId: string, tags: Record<string, string>): RetirementPolicy {
  const problems: string[] = [];
  const policy = { ...DEFAULT_RETIREMENT };
  const retire = tags[RetirementTag.retire];
  if (retire !== undefined) {
    if (retire === 'none' || retire === 'disable-login' || retire === 'scramble-password') policy.retire = retire;
    else problems.push(`tag ${RetirementTag.retire}: ${JSON.stringify(retire)} is not none, disable-login or scramble-password`);
  }
  const live = tags[RetirementTag.liveSessions];
  if (live !== undefined) {
    if (live === 'wait' || live === 'proceed' || live === 'terminate') policy.liveSessions = live;
    else problems.push(`tag ${RetirementTag.liveSessions}: ${JSON.stringify(live)} is not wait, proceed or terminate`);
  }
  const maxWait = tags[RetirementTag.maxWait];
  if (maxWait !== undefined) {
    try {
      policy.maxWaitMs = parseDuration(maxWait, `tag ${RetirementTag.maxWait}`);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length > 0) throw new InvalidSecretError(secretId, problems);
  return policy;
}
