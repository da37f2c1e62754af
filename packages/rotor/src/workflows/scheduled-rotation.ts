import { compact } from '../shared/compact';
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  proxyActivities,
  proxyLocalActivities,
  sleep,
  startChild,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { RotorActivities } from '../activities';
import { ROTATION_ROLLED_BACK, rotationWorkflowId, SearchAttribute } from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import { actorOf } from '../shared/vocabulary';
import { rotationSummary, type RotationInput, type ScheduledRotationInput } from '../shared/rotation';
import { type AuditEvent } from '../shared/reporting';
import { ALERT_OPTIONS, AUDIT_OPTIONS, stepOptions } from './activity-options';
import { ROTATION_FAILED, rotateSecret } from './rotate-secret';

export type { ScheduledRotationInput } from '../shared/rotation';

export interface ScheduledRotationResult {
  secretId: string;
  /**
   * `skipped` when a rotation of the secret was already running (one rotation per secret, always); `not-due` when a
   * `renewAt` schedule's check found the renewal due after the next check.
   */
  outcome: 'completed' | 'rolled-back' | 'skipped' | 'not-due';
  /** A `renewAt` schedule's check: when the renewal is due and when the credential ends. */
  renewal?: { dueAt: string; notAfter?: string; basis: string };
  /** The rotation's workflow id and run, for `rotor status` and the Temporal UI. */
  workflowId: string;
  runId?: string;
}

/**
 * Started by a secret's Temporal Schedule. Waits, on a durable timer, for the allowed window to open, then runs the
 * rotation as a child under the secret's own workflow id, so a scheduled rotation and one started by `rotor rotate`
 * can never run side by side. It lasts as long as the rotation (grace included), so the schedule's overlap policy
 * SKIP never doubles one; the rotation is abandoned, not cancelled, if this run is terminated.
 */
export async function scheduledRotation({
  rotation,
  window,
  renewal,
}: ScheduledRotationInput): Promise<ScheduledRotationResult> {
  const workflowId = rotationWorkflowId(rotation.secretId);
  const audit = auditor(rotation);
  let renewing: ScheduledRotationResult['renewal'];
  if (renewal) {
    // A renewAt schedule fires at every check: the credential's own lifetime (or its issuer's window) says when.
    const { renewalDue } = proxyActivities<RotorActivities>(stepOptions(3));
    const due = await renewalDue({ secretId: rotation.secretId, renewal });
    renewing = { dueAt: due.dueAt, basis: due.basis, ...compact({ notAfter: due.notAfter }) };
    upsertMemo({ renewal: renewing });
    const routes = rotation.reporting?.alerts ?? [];
    // The alert is delivered apart from the decision: a webhook that does not answer never holds up a renewal.
    if (due.expiring && routes.length > 0) {
      const { notify } = proxyActivities<RotorActivities>(ALERT_OPTIONS);
      const { workflowId: runWorkflowId, runId } = workflowInfo();
      await notify({
        alert: {
          kind: 'certificate-expiring',
          secretId: rotation.secretId,
          workflowId: runWorkflowId,
          runId,
          message: due.expiring,
          at: new Date().toISOString(),
        },
        routes,
      }).catch(() => undefined);
      await audit('certificate-expiring', { notAfter: due.notAfter ?? '', dueAt: due.dueAt });
    }
    if (due.waitMs > renewal.checkEveryMs)
      return { secretId: rotation.secretId, outcome: 'not-due', workflowId, renewal: renewing };
    if (due.waitMs > 0) await sleep(due.waitMs);
  }
  if (window) {
    const { untilWindowOpens } = proxyLocalActivities<RotorActivities>({ startToCloseTimeout: '10s' });
    const waitMs = await untilWindowOpens({ window });
    if (waitMs > 0) {
      const until = new Date(Date.now() + waitMs).toISOString();
      upsertMemo({ waitingForWindowUntil: until });
      await audit('waiting-for-window', { until, window: `${window.start}-${window.end} ${window.timezone}` });
      await sleep(waitMs);
    }
  }
  let child;
  try {
    child = await startChild(rotateSecret, {
      workflowId,
      args: [rotation],
      staticSummary: rotationSummary(rotation, formatDuration),
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      memo: { requestId: workflowInfo().workflowId },
      typedSearchAttributes: [
        { key: SearchAttribute.secretId, value: rotation.secretId },
        { key: SearchAttribute.phase, value: 'preparing' },
      ],
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      await audit('skipped', { reason: 'a rotation of this secret is already running' });
      return { secretId: rotation.secretId, outcome: 'skipped', workflowId, ...compact({ renewal: renewing }) };
    }
    throw error;
  }
  try {
    const result = await child.result();
    return {
      secretId: rotation.secretId,
      outcome: result.outcome,
      workflowId,
      runId: child.firstExecutionRunId,
      ...compact({ renewal: renewing }),
    };
  } catch (error) {
    // The schedule's last result says why, in the rotation's own words.
    const cause = error instanceof ChildWorkflowFailure && error.cause ? error.cause : error;
    // Rolled back: the rotation ended as rotor meant it to (an operator or its bake asked), not a failed run.
    if (cause instanceof ApplicationFailure && cause.type === ROTATION_ROLLED_BACK)
      return { secretId: rotation.secretId, outcome: 'rolled-back', workflowId, runId: child.firstExecutionRunId };
    throw ApplicationFailure.create({
      type: ROTATION_FAILED,
      message: cause instanceof Error ? cause.message : String(cause),
      nonRetryable: true,
      details: [{ workflowId, runId: child.firstExecutionRunId }],
    });
  }
}

/**
 * What a scheduled run records in the audit trail itself: the runs that start no rotation (skipped) or wait for
 * their window. A rotation it starts records its own events.
 */
function auditor(rotation: RotationInput): (kind: AuditEvent['kind'], detail: AuditEvent['detail']) => Promise<void> {
  const { appendAudit } = proxyActivities<RotorActivities>(AUDIT_OPTIONS);
  const { workflowId, runId } = workflowInfo();
  let sequence = 0;
  return async (kind, detail) => {
    const event: AuditEvent = {
      eventId: `${workflowId}/${runId}/${sequence++}`,
      at: new Date().toISOString(),
      secretId: rotation.secretId,
      workflowId,
      runId,
      kind,
      actor: actorOf(rotation.trigger ?? { kind: 'schedule' }),
      ...compact({ detail }),
    };
    await CancellationScope.nonCancellable(() => appendAudit([event]));
  };
}
