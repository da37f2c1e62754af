/** Types shared by workflows, activities, the client and the CLI. No I/O; safe in workflow code. */

/** The steps of a rotation, in the order they run. */
export const STEPS = ['prepare', 'create', 'set', 'test', 'finish', 'retire'] as const;
export type StepName = (typeof STEPS)[number] | 'compensate' | 'rollback';

/**
 * Where a rotation is. `grace` waits on a durable timer while the previous credential stays valid;
 * the last four are terminal.
 */
export type Phase =
  | 'preparing'
  | 'creating'
  | 'setting'
  | 'testing'
  | 'finishing'
  | 'grace'
  | 'awaiting-sessions'
  | 'retiring'
  | 'compensating'
  | 'rolling-back'
  | 'completed'
  | 'compensated'
  | 'rolled-back'
  | 'failed';

export const TERMINAL_PHASES: readonly Phase[] = ['completed', 'compensated', 'rolled-back', 'failed'];

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
export interface Trigger {
  kind: 'cli' | 'api' | 'schedule' | 'demo';
  by?: string;
}

/** Rotation settings a secret's entry in rotor.yaml overrides; the secret's tags decide otherwise. */
export interface RotationOverrides {
  /** Overrides the `rotor:strategy` tag and AWS's `masterarn` convention. */
  strategy?: 'single-user' | 'alternating-users';
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
}

/**
 * What happens to the previous login of an alternating pair when grace ends. `none` keeps it working until the
 * next rotation (AWS's behaviour); `disable-login` and `scramble-password` end it now. `liveSessions` says what to
 * do about sessions it still has: `wait` (a durable, bounded wait, then retire), `proceed`, or `terminate` them.
 */
export interface RetirementPolicy {
  retire: 'none' | 'disable-login' | 'scramble-password';
  liveSessions: 'wait' | 'proceed' | 'terminate';
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
}

/** Result of a step as the activities report it; `attempt` is Temporal's attempt number. */
export interface StepReport {
  attempt: number;
  /** What the step did, e.g. "already-set" when a re-run found the work done. */
  outcome?: string;
  /** Live sessions of the previous login, from `countLiveSessions`. */
  liveSessions?: number;
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
  endedAt?: string;
  lastError?: string;
  rollbackReason?: string;
  rollbackBy?: string;
  /** Live sessions of the previous login at the last count, while retirement waits for them. */
  liveSessions?: number;
  /** When the wait for the previous login's sessions gives up. */
  sessionsWaitEndsAt?: string;
  trigger?: Trigger;
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

export interface EndGraceSignal {
  /** Who asked, for the audit trail. */
  by?: string;
}

/** Input of `prepareRotation`. */
export interface PrepareInput {
  secretId: string;
  overrides?: RotationOverrides;
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

export type AuditEventKind =
  | 'triggered'
  | 'step'
  | 'step-failed'
  | 'rollback-requested'
  | 'grace-extended'
  | 'grace-ended'
  | 'outcome'
  | 'alert-sent'
  | 'alert-failed'
  | 'waiting-for-window'
  | 'skipped';

/** What rotor alerts on. */
export type AlertKind = 'rotation-failed' | 'compensated' | 'rolled-back' | 'awaiting-sessions' | 'stuck';

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
  outcome: 'completed' | 'compensated' | 'rolled-back' | 'failed';
}
