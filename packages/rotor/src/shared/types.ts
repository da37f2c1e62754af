/** Types shared by workflows, activities, the client and the CLI. No I/O; safe in workflow code. */
import type { BakePolicy, VersionEvidence } from './bake';

/** The steps of a rotation, in the order they run. */
export const STEPS = ['prepare', 'create', 'set', 'test', 'finish', 'retire'] as const;
export type StepName = (typeof STEPS)[number] | 'compensate' | 'rollback';

/** How a rotation ends: counted in metrics, recorded in the audit trail, shown in status. */
export const ROTATION_OUTCOMES = ['completed', 'compensated', 'rolled-back', 'failed'] as const;
export type RotationOutcomeWord = (typeof ROTATION_OUTCOMES)[number];

/**
 * Where a rotation is. `grace` waits on a durable timer while the previous credential stays valid; the phases of
 * ROTATION_OUTCOMES are terminal.
 */
export const PHASES = [
  'preparing',
  'creating',
  'setting',
  'testing',
  'publishing',
  'finishing',
  'grace',
  'awaiting-sessions',
  'retiring',
  'compensating',
  'rolling-back',
  ...ROTATION_OUTCOMES,
] as const;
export type Phase = (typeof PHASES)[number];

export const TERMINAL_PHASES: readonly Phase[] = ROTATION_OUTCOMES;

/** Words for people: `a, b or c`. */
export function listOr(values: readonly string[]): string {
  return values.length <= 1 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

/** How a database secret rotates: one login changed in place, or two logins taking turns (AWS's multi-user). */
export const STRATEGIES = ['single-user', 'alternating-users'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** What retirement does to the previous login of an alternating pair (see RetirementPolicy). */
export const RETIRE_MODES = ['none', 'disable-login', 'scramble-password'] as const;
export type RetireMode = (typeof RETIRE_MODES)[number];

/** What retirement does about the previous login's live sessions (see RetirementPolicy). */
export const LIVE_SESSION_MODES = ['wait', 'proceed', 'terminate'] as const;
export type LiveSessionMode = (typeof LIVE_SESSION_MODES)[number];

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Scheduled rotations only start inside the window; `end` before `start` crosses midnight. Times are "HH:MM". */
export interface WindowConfig {
  start: string;
  end: string;
  timezone: string;
  days?: Weekday[];
}

/** Rules for generated passwords, after AWS GetRandomPassword. */
export interface PasswordPolicy {
  length: number;
  /** Characters never used. */
  excludeCharacters: string;
  excludeUppercase: boolean;
  excludeLowercase: boolean;
  excludeNumbers: boolean;
  excludePunctuation: boolean;
  /** Require at least one character of each included class. */
  requireEachIncludedType: boolean;
}

/** Who or what asked for a rotation; recorded in status and memo, never a credential. */
export const TRIGGER_KINDS = ['cli', 'api', 'schedule', 'demo'] as const;
export interface Trigger {
  kind: (typeof TRIGGER_KINDS)[number];
  by?: string;
}

/** Who started a rotation, for the audit trail: `schedule:<id>`, `cli:<user>`, `api:unknown`... */
export function actorOf(trigger: Trigger | undefined): string {
  if (!trigger) return 'api:unknown';
  return trigger.by ? `${trigger.kind}:${trigger.by}` : trigger.kind;
}

/** The Temporal UI's one-line summary of a rotation: secret, trigger and grace (the strategy follows in its details). */
export function rotationSummary(
  input: { secretId: string; trigger?: Trigger; graceMs: number },
  grace: (ms: number) => string,
): string {
  return `rotate ${input.secretId} · ${actorOf(input.trigger)} · grace ${grace(input.graceMs)}`;
}

/** Who sent a signal, for the audit trail: `signal:<by>`, or `signal:ui-or-api` when it did not say. */
export function signalActor(by: string | undefined): string {
  return `signal:${by ?? 'ui-or-api'}`;
}

/** Rotation settings a secret's entry in rotor.yaml overrides; the secret's tags decide otherwise. */
export interface RotationOverrides {
  /** Overrides the `rotor:strategy` tag and AWS's `masterarn` convention. */
  strategy?: Strategy;
  /** Overrides the `rotor:retire` / `rotor:live-sessions` tags, key by key. Alternating users only. */
  retirement?: Partial<RetirementPolicy>;
}

/** Where a rotation reports: alert routes (names only: URLs stay in the worker's config) and the stuck budget. */
export interface RotationReporting {
  /** Webhook route names from rotor.yaml; the worker resolves them. */
  alerts?: string[];
  /** A rotation that stays in one working phase (not grace) longer than this raises a `stuck` alert. */
  stuckPhaseBudgetMs?: number;
}

/**
 * Input of the `rollbackSecret` workflow: reinstate AWSPREVIOUS when no rotation is running. The reason and the
 * trigger's `by` are short operator texts for the audit trail; reporting and attempts as the secret's rotations.
 */
export interface RollbackInput {
  secretId: string;
  reason?: string;
  trigger?: Trigger;
  maxStepAttempts?: number;
  reporting?: RotationReporting;
}

/** Input of the `rotateSecret` workflow. Ids and settings only: never a secret value. */
export interface RotationInput {
  secretId: string;
  /** Grace period after finish, as milliseconds. */
  graceMs: number;
  trigger?: Trigger;
  passwordPolicy?: Partial<PasswordPolicy>;
  /** Attempts per step before the rotation gives up and compensates (default 6). */
  maxStepAttempts?: number;
  overrides?: RotationOverrides;
  reporting?: RotationReporting;
  /** Watch consumers' logins after finish and roll back on their evidence (rotor.yaml `bake`). */
  bake?: BakePolicy;
}

/** What a rotor Schedule starts (`scheduledRotation`): the rotation's input, and the window it may start in. */
export interface ScheduledRotationInput {
  rotation: RotationInput;
  window?: WindowConfig;
}

/**
 * What happens to the previous login of an alternating pair when grace ends. `none` keeps it working until the
 * next rotation (AWS's behaviour); `disable-login` and `scramble-password` end it now. `liveSessions` says what to
 * do about sessions it still has: `wait` (a durable, bounded wait, then retire), `proceed`, or `terminate` them.
 */
export interface RetirementPolicy {
  retire: RetireMode;
  liveSessions: LiveSessionMode;
  /** How long `wait` waits for the sessions to end, in milliseconds. */
  maxWaitMs: number;
}

/** What `prepare` learned about the secret: the rotator to use and where the labels stand. */
export interface PreparedRotation {
  rotator: string;
  currentVersionId: string;
  previousVersionId?: string;
  /** An AWSPENDING left by an earlier rotation that did not end cleanly; the target may still hold it. */
  strayPendingVersionId?: string;
  /** Set for strategies with a previous login to retire (alternating users), from the secret's tags. */
  retirement?: RetirementPolicy;
  /**
   * Where this rotation's store-writing steps (create, finish) run: the worker's store-writes task queue, whose
   * dispatch rate the Temporal cluster limits for the whole fleet. Absent: on the rotation's own task queue.
   */
  storeWritesTaskQueue?: string;
}

/** Result of a step as the activities report it; `attempt` is Temporal's attempt number. */
export interface StepReport {
  attempt: number;
  /** What the step did, e.g. "already-set" when a re-run found the work done. */
  outcome?: string;
  /** Live sessions of the previous login, from `countLiveSessions`. */
  liveSessions?: number;
  /** From test: how long the new version must wait before finish (`Rotator.holdBeforeFinish`). */
  holdMs?: number;
}

export interface StepRecord {
  step: StepName;
  startedAt: string;
  endedAt?: string;
  attempts?: number;
  outcome?: string;
  error?: string;
}

/** Answer of the `status` query: where the rotation is and what it did. Never a value. */
export interface RotationStatus {
  secretId: string;
  rotator?: string;
  phase: Phase;
  token: string;
  versions: { pending?: string; current?: string; previous?: string };
  steps: StepRecord[];
  startedAt: string;
  graceEndsAt?: string;
  /** While in phase `publishing`: when the new version may become current. */
  holdUntil?: string;
  endedAt?: string;
  lastError?: string;
  rollbackReason?: string;
  rollbackBy?: string;
  /** Live sessions of the previous login at the last count, while retirement waits for them. */
  liveSessions?: number;
  /** When the wait for the previous login's sessions gives up. */
  sessionsWaitEndsAt?: string;
  trigger?: Trigger;
  /** `rollback` for a rollback started when no rotation ran (`rotor rollback`); absent for a rotation. */
  operation?: 'rollback';
  /** The bake window, when the rotation has one: until when, how it ended, and the consumers' evidence so far. */
  bake?: BakeStatus;
}

export interface BakeStatus {
  endsAt: string;
  extensions: number;
  /** Absent while the window is open. */
  verdict?: 'rolled-back' | 'passed' | 'inconclusive' | 'ended-by-operator';
  next: VersionEvidence;
  previous: VersionEvidence;
}

/** Details of the failure a rotation ends with: the step, the phase it ended in and rotor's error type, if any. */
export interface RotationFailureDetails {
  step: string;
  phase: Phase;
  errorType?: string;
}

/** Result of a rotation workflow that ended without failing. */
export interface RotationResult {
  secretId: string;
  outcome: 'completed' | 'rolled-back';
  /** How retirement went, when the strategy retires anything: e.g. "disabled-login; 1 live session left after waiting 1h". */
  retirement?: string;
  token: string;
  currentVersionId: string;
  previousVersionId?: string;
  status: RotationStatus;
}

export interface RollbackSignal {
  reason?: string;
  by?: string;
}

export interface ExtendGraceSignal {
  /** Milliseconds added to the grace period. */
  byMs: number;
  /** Who asked, for the audit trail. */
  by?: string;
}

/** An accepted operator request (an Update's result): the phase it found, and where grace now ends. */
export interface OperatorAnswer {
  accepted: true;
  phase: Phase;
  graceEndsAt?: string;
}

export interface EndGraceSignal {
  /** Who asked, for the audit trail. */
  by?: string;
}

/** Input of `prepareRotation`. */
export interface PrepareInput {
  secretId: string;
  overrides?: RotationOverrides;
  /** The rotation's grace, for rotators that refuse one too short for their credential (JWT signing keys). */
  graceMs?: number;
}

/** Arguments every step activity takes. */
export interface StepInput {
  secretId: string;
  /** The rotation token: ClientRequestToken and VersionId of the new version. */
  token: string;
  prepared: PreparedRotation;
  passwordPolicy?: Partial<PasswordPolicy>;
  /** For retire: end the previous login's live sessions first. */
  terminateSessions?: boolean;
}

/** Arguments of `reinstate`, the activity behind compensation and rollback. */
export interface ReinstateInput extends StepInput {
  /** The version to make current again, in the target and the store. */
  versionId: string;
  /** compensate: the store ends exactly as before the rotation; rollback: the rolled-back version stays AWSPREVIOUS. */
  mode: 'compensate' | 'rollback';
}

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
  'bake-extended',
  'bake-passed',
  'bake-inconclusive',
  'auto-rollback',
  'held-before-finish',
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
