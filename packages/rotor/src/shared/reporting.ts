/** What a rotation reports: audit events, alerts and its outcome. Value-free. No I/O; safe in workflow code. */
import type { RotationOutcomeWord } from './vocabulary';

/**
 * One entry of the audit trail: a trigger, a step transition, an outcome, an alert delivery. Ids, words, durations
 * and names only, never a value. `eventId` is deterministic per event, so a retried append writes it once.
 */
export interface AuditEvent {
  eventId: string;
  /** When it happened, in workflow time. */
  at: string;
  secretId: string;
  workflowId?: string;
  runId?: string;
  kind: AuditEventKind;
  step?: string;
  phase?: string;
  outcome?: string;
  versionId?: string;
  durationMs?: number;
  /** Who: `schedule:<id>`, `cli:<user>`, `signal:<user>`, ... */
  actor?: string;
  detail?: Record<string, string | number | boolean | null>;
}

export const AUDIT_EVENT_KINDS = [
  'triggered',
  'step',
  'step-failed',
  'rollback-requested',
  'grace-extended',
  'grace-ended',
  'outcome',
  'alert-sent',
  'alert-failed',
  'waiting-for-window',
  'skipped',
  'certificate-expiring',
  'bake-extended',
  'bake-passed',
  'bake-inconclusive',
  'auto-rollback',
  /** The bake asked for a rollback the daily cap withheld (`bake.maxAutoRollbacksPerDay`). */
  'auto-rollback-withheld',
  'held-before-finish',
  /** Short-lived credentials: a lease's login made, revoked, and the lease's end (renewals are not recorded). */
  'lease-issued',
  'lease-revoked',
  'lease-ended',
  /** Encryption keyrings: a re-wrap started, paused, resumed, and how it ended (counts and key ids only). */
  'rewrap-started',
  'rewrap-paused',
  'rewrap-resumed',
  'rewrap-cancelled',
  'rewrap-ended',
] as const;
export type AuditEventKind = (typeof AUDIT_EVENT_KINDS)[number];

/** What rotor alerts on. */
export const ALERT_KINDS = [
  'rotation-failed',
  'compensated',
  'rolled-back',
  'awaiting-sessions',
  'stuck',
  'bake-inconclusive',
  'auto-rollback-withheld',
  'certificate-expiring',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

/** An alert as the workflow raises it: value-free, delivered by the `notify` activity to the named routes. */
export interface Alert {
  kind: AlertKind;
  secretId: string;
  workflowId?: string;
  runId?: string;
  phase?: string;
  step?: string;
  /** One sentence for people. */
  message: string;
  uiUrl?: string;
  at: string;
}

/** How delivering an alert to one route went. */
export interface AlertDelivery {
  route: string;
  ok: boolean;
  attempts: number;
  /** Why it failed, never the route's URL or header. */
  error?: string;
}

/** What the `rotationEnded` bookkeeping needs: the outcome, for metrics. */
export interface RotationEnd {
  secretId: string;
  rotator?: string;
  outcome: RotationOutcomeWord;
}
