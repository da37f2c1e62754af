import { proxyActivities } from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import type { PrepareInput, SecretCheckReport } from '../shared/types';

/**
 * `rotor check` for one secret: the checks run on a worker, as a rotation's would (same network path, same
 * permissions), and change nothing. One attempt: the report says what failed, a retry would only hide it.
 */
export async function preflightCheck(input: PrepareInput): Promise<SecretCheckReport> {
  const { checkSecret } = proxyActivities<RotorActivities>({ startToCloseTimeout: '1m', retry: { maximumAttempts: 1 } });
  return checkSecret(input);
}
