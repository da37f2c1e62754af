import { compact } from '../shared/compact';
import {
  ApplicationFailure,
  CancellationScope,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import { SearchAttribute } from '../shared/constants';
import { actorOf } from '../shared/vocabulary';
import type { AuditEvent } from '../shared/reporting';
import type { RollbackInput, RotationFailureDetails, RotationInput, RotationResult } from '../shared/rotation';
import { DEFAULT_MAX_STEP_ATTEMPTS, prepareOptions, undoOptions } from './activity-options';
import { causeOf, ROTATION_FAILED, typeOf } from './failures';
import { statusQuery } from './operator-signals';
import { createReporter } from './reporting';
import { createRotationState } from './rotation-state';
import { DEFAULT_OUTAGE_BUDGET_MS, rideThrough } from './ride-through';
import { createStepRunner } from './step-runner';

/**
 * Rolls a secret back when no rotation is running: reinstates AWSPREVIOUS in the target (the password set back, or
 * the previous login re-enabled with its password) and in the store (AWSCURRENT back on it), and tests it. It runs
 * under the secret's own workflow id, so it never overlaps a rotation, and reports like one: status query, phases,
 * audit trail, a `rolled-back` alert, metrics. `prepare` refuses, changing nothing, when there is no AWSPREVIOUS or it
 * cannot be restored.
 */
export async function rollbackSecret(input: RollbackInput): Promise<RotationResult> {
  const maxAttempts = input.maxStepAttempts ?? DEFAULT_MAX_STEP_ATTEMPTS;
  const preflight = proxyActivities<RotorActivities>(prepareOptions(maxAttempts));
  const undo = proxyActivities<RotorActivities>(undoOptions(maxAttempts));
  const rotation: RotationInput = {
    secretId: input.secretId,
    graceMs: 0,
    ...compact({ trigger: input.trigger }),
    ...compact({ reporting: input.reporting }),
  };
  const state = createRotationState(rotation, '');
  const { status } = state;
  status.operation = 'rollback';
  status.rollbackReason = input.reason ?? 'no reason given';
  if (input.trigger?.by) status.rollbackBy = input.trigger.by;
  setHandler(statusQuery, () => status);
  const reporter = createReporter(rotation);
  reporter.audit({
    kind: 'rollback-requested',
    phase: 'preparing',
    actor: actorOf(input.trigger),
    detail: { reason: status.rollbackReason },
  });
  reporter.watchPhases(() => ({ seq: state.phaseSeq, phase: status.phase }));
  const run = createStepRunner(state, reporter, () => undefined);

  async function record(
    outcome: 'rolled-back' | 'failed',
    versionId: string | undefined,
    detail: AuditEvent['detail'],
  ): Promise<void> {
    reporter.ended(
      { outcome, ...compact({ rotator: status.rotator }) },
      { durationMs: Date.now() - Date.parse(status.startedAt), ...compact({ versionId }), detail },
    );
    await reporter.settle();
  }

  async function fail(step: 'prepare' | 'rollback', error: unknown, what: string): Promise<ApplicationFailure> {
    state.end('failed');
    const failure = ApplicationFailure.create({
      type: ROTATION_FAILED,
      message: `rollback of ${input.secretId} failed at ${step}: ${causeOf(error)}; ${what}`,
      nonRetryable: true,
      details: [{ step, errorType: typeOf(error), phase: status.phase } satisfies RotationFailureDetails],
    });
    reporter.alert('rotation-failed', failure.message, { phase: 'failed', step });
    await record('failed', status.versions.current, {
      failedStep: step,
      rollback: true,
      ...(typeOf(error) ? { errorType: typeOf(error)! } : {}),
    });
    return failure;
  }

  let prepared;
  try {
    prepared = await run('prepare', 'preparing', () =>
      rideThrough(() => preflight.prepareRollback({ secretId: input.secretId }), DEFAULT_OUTAGE_BUDGET_MS),
    );
  } catch (error) {
    throw await fail('prepare', error, 'nothing was changed');
  }
  const from = prepared.currentVersionId;
  const to = prepared.previousVersionId!;
  status.token = from;
  status.rotator = prepared.rotator;
  status.versions = { current: from, previous: to };
  upsertSearchAttributes([{ key: SearchAttribute.rotator, value: prepared.rotator }]);

  try {
    await CancellationScope.nonCancellable(() =>
      run('rollback', 'rolling-back', () =>
        undo.reinstate({ secretId: input.secretId, token: from, prepared, versionId: to, mode: 'rollback' }),
      ),
    );
  } catch (error) {
    throw await fail(
      'rollback',
      error,
      `version ${from} may still be current: check the target and the labels (rotor status ${input.secretId})`,
    );
  }
  status.versions = { current: to, previous: from };
  state.end('rolled-back');
  reporter.alert('rolled-back', `${input.secretId} rolled back to version ${to}: ${status.rollbackReason}`, {
    phase: 'rolled-back',
  });
  await record('rolled-back', to, { during: 'idle', fromVersionId: from });
  return {
    secretId: input.secretId,
    outcome: 'rolled-back',
    token: from,
    currentVersionId: to,
    previousVersionId: from,
    status,
  };
}
