import { proxyActivities } from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import type { SecretCheckReport, SetupPlan } from '../shared/reports';
import type { PrepareInput } from '../shared/rotation';

/**
 * `rotor check` for one secret: the checks run on a worker, as a rotation's would (same network path, same
 * permissions), and change nothing. One attempt: the report says what failed, a retry would only hide it.
 */
export async function preflightCheck(input: PrepareInput): Promise<SecretCheckReport> {
  const { checkSecret } = proxyActivities<RotorActivities>({
    startToCloseTimeout: '1m',
    retry: { maximumAttempts: 1 },
  });
  return checkSecret(input);
}

/** `rotor setup` of one secret, on a worker through the admin secret: one attempt, all or nothing. */
export async function setupPair(input: { secretId: string; dryRun: boolean }): Promise<SetupPlan> {
  const { setupSecret } = proxyActivities<RotorActivities>({
    startToCloseTimeout: '2m',
    retry: { maximumAttempts: 1 },
  });
  return setupSecret(input);
}

/**
 * Before `rotor rollback` starts a rollback with no rotation running: the checks of the rollback's own prepare (the
 * secret exists, has an AWSPREVIOUS to go back to on the same server, a version logs in), once, changing nothing.
 */
export async function rollbackPreflight(input: { secretId: string }): Promise<void> {
  const { prepareRollback } = proxyActivities<RotorActivities>({
    startToCloseTimeout: '1m',
    retry: { maximumAttempts: 1 },
  });
  await prepareRollback(input);
}
