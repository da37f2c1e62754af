import { Context, log } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { RotorError } from 'rotor-consumers/core';
import type { StepReport } from '../shared/rotation';
import { redactHanded } from './handed-values';

/**
 * Runs one step: logs its start and end (ids and outcome words only) and turns rotor's typed errors into
 * ApplicationFailures whose `type` the workflow's retry policies match.
 */
export async function runStep<T extends object>(
  name: string,
  secretId: string,
  work: () => Promise<T>,
): Promise<T & StepReport> {
  const { attempt } = Context.current().info;
  log.info('step started', { step: name, secretId, attempt });
  try {
    const result = await work();
    log.info('step done', {
      step: name,
      secretId,
      attempt,
      ...('outcome' in result ? { outcome: result.outcome } : {}),
    });
    return { ...result, attempt };
  } catch (error) {
    // Whatever the target or a team's rotator put in the message, no value handed to the step leaves it.
    if (error instanceof CancelledFailure) throw error; // the attempt was cancelled: Temporal's own
    if (error instanceof RotorError || error instanceof ApplicationFailure) {
      const message = redactHanded(error.message);
      const type = error.type ?? undefined;
      log.warn('step failed', { step: name, secretId, attempt, errorType: type, error: message });
      throw ApplicationFailure.create({ type, message, nonRetryable: error.nonRetryable ?? undefined });
    }
    // Any other error becomes a retryable failure of its name: its message redacted, its stack and cause (which
    // may carry the same text) left behind.
    const type = error instanceof Error ? error.name : 'Error';
    const message = redactHanded(error instanceof Error ? error.message : String(error));
    log.warn('step failed', { step: name, secretId, attempt, error: `${type}: ${message}` });
    throw ApplicationFailure.create({ type, message });
  }
}
