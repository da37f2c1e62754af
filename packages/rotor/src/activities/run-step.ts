import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { RotorError } from 'rotor-consumers/core';
import type { StepReport } from '../shared/rotation';

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
    if (error instanceof RotorError) {
      log.warn('step failed', { step: name, secretId, attempt, errorType: error.type, error: error.message });
      throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: error.nonRetryable });
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    log.warn('step failed', { step: name, secretId, attempt, error: message });
    throw error;
  }
}
