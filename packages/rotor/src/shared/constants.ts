import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Task queue rotor workers poll unless ROTOR_TASK_QUEUE says otherwise. */
export const DEFAULT_TASK_QUEUE = 'rotor';

/** Grace period used when neither the request nor the configuration names one. */
export const DEFAULT_GRACE = '1h';

/**
 * The longest grace period, in total (extensions included): a previous credential left valid for longer than a
 * month is a credential nobody rotated. `--grace 99999999d` is a typo, refused with this number.
 */
export const MAX_GRACE = '30d';
export const MAX_GRACE_MS = 30 * 86_400_000;

/**
 * One rotation per secret at a time: the workflow id is derived from the secret id, and rotations start with
 * the USE_EXISTING conflict policy.
 */
export function rotationWorkflowId(secretId: string): string {
  return `rotor/rotate/${secretId}`;
}

/** The Temporal Schedule that rotates a secret, one per secret in rotor.yaml (`rotor apply`). */
export const SCHEDULE_ID_PREFIX = 'rotor/schedule/';
export function scheduleIdFor(secretId: string): string {
  return `${SCHEDULE_ID_PREFIX}${secretId}`;
}

/** Workflow id prefix of the runs a schedule starts (Temporal appends the scheduled time). */
export function scheduledWorkflowIdFor(secretId: string): string {
  return `rotor/scheduled/${secretId}`;
}

/** Names of the rotation workflow's signals and queries, as they appear in the Temporal UI. */
export const SignalName = {
  rollback: 'rollback',
  extendGrace: 'extendGrace',
  endGrace: 'endGrace',
  /** Consumers' login counts, forwarded by the report endpoint (rotor.yaml `reports`). */
  consumerReport: 'consumerReport',
} as const;

/** Names of the Workflow Updates that answer operators at once (accepted, or refused with the reason). */
export const UpdateName = {
  rollback: 'requestRollback',
  extendGrace: 'requestExtendGrace',
  endGrace: 'requestEndGrace',
} as const;

export const QueryName = {
  status: 'status',
} as const;

/** Typed search attributes, registered on the server by `npm run stack -- up` (and by operators in production). */
export const SearchAttribute = {
  secretId: defineSearchAttributeKey('RotorSecretId', SearchAttributeType.KEYWORD),
  rotator: defineSearchAttributeKey('RotorRotator', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('RotorPhase', SearchAttributeType.KEYWORD),
} as const;

export { Stage } from 'rotor-consumers/core';

/** The Temporal UI of the local stack, when ROTOR_TEMPORAL_UI_URL does not name another. */
export const DEFAULT_TEMPORAL_UI_URL = 'http://127.0.0.1:8233';

/** The Temporal UI page of one workflow run: what the CLI prints and alerts carry. */
export function temporalUiLink(uiBase: string, namespace: string, workflowId: string, runId: string): string {
  const base = uiBase.replace(/\/$/, '');
  return `${base}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}/${encodeURIComponent(runId)}/history`;
}

/**
 * The failure type a rotation that was rolled back ends with: the Temporal UI lists it FAILED (red), never like a
 * completed one; its details hold the RotationResult, which the client reads back as the `rolled-back` outcome.
 */
export const ROTATION_ROLLED_BACK = 'RotorRolledBack';
