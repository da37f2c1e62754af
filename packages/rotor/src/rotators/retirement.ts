import { parseDuration } from 'rotor-consumers/core';
import { InvalidSecretError } from 'rotor-consumers/core';
import { listOr, LIVE_SESSION_MODES, RETIRE_MODES, type LiveSessionMode, type RetireMode } from '../shared/vocabulary';
import { type RetirementPolicy } from '../shared/rotation';

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
    if ((RETIRE_MODES as readonly string[]).includes(retire)) policy.retire = retire as RetireMode;
    else problems.push(`tag ${RetirementTag.retire}: ${JSON.stringify(retire)} is not ${listOr(RETIRE_MODES)}`);
  }
  const live = tags[RetirementTag.liveSessions];
  if (live !== undefined) {
    if ((LIVE_SESSION_MODES as readonly string[]).includes(live)) policy.liveSessions = live as LiveSessionMode;
    else
      problems.push(`tag ${RetirementTag.liveSessions}: ${JSON.stringify(live)} is not ${listOr(LIVE_SESSION_MODES)}`);
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
