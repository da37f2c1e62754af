/**
 * What the workflows and their steps take and return: inputs, what prepare found, step reports, results. Ids and
 * settings, never a value. No I/O; safe in workflow code.
 */
import type { BakePolicy, TallySnapshot } from './bake';
import type { RotationStatus } from './status';
import {
  actorOf,
  type LiveSessionMode,
  type Phase,
  type RetireMode,
  type Strategy,
  type Trigger,
  type Weekday,
} from './vocabulary';

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

/** The Temporal UI's one-line summary of a rotation: secret, trigger and grace (the strategy follows in its details). */
export function rotationSummary(
  input: { secretId: string; trigger?: Trigger; graceMs: number },
  grace: (ms: number) => string,
): string {
  return `rotate ${input.secretId} · ${actorOf(input.trigger)} · grace ${grace(input.graceMs)}`;
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
  /**
   * How long a step waits out a target or store that does not answer before it gives up (default 3 min; 0: one
   * round of attempts only). A misconfigured target is refused at once whatever this says.
   */
  outageBudgetMs?: number;
  overrides?: RotationOverrides;
  reporting?: RotationReporting;
  /** Watch consumers' logins after finish and roll back on their evidence (rotor.yaml `bake`). */
  bake?: BakePolicy;
  /** A `renewAt` schedule's share of the lifetime, for the renewal time `rotor status` shows (default 2/3). */
  renewAt?: number;
  /** Set by the rotation itself when it continues in a new run during grace (its history's ceiling): where it was. */
  resume?: RotationResume;
}

/**
 * What a rotation carries into its next run when it continues as new during grace: ids, times and counts, never a
 * value. The next run goes on waiting where this one stopped.
 */
export interface RotationResume {
  step: StepInput;
  status: RotationStatus;
  graceStartedAt: number;
  graceEndsAt: number;
  /** Requests taken while the run was ending, for the next run to act on. */
  rollback?: { reason?: string; by?: string };
  endGrace?: boolean;
  /** The bake window, while it is open. */
  bake?: BakeCarry;
}

/** An open bake window, carried into the next run. */
export interface BakeCarry {
  next: string;
  previous: string;
  startedAt: number;
  endsAt: number;
  tally: TallySnapshot;
}

/** What a rotor Schedule starts (`scheduledRotation`): the rotation's input, and the window it may start in. */
export interface ScheduledRotationInput {
  rotation: RotationInput;
  window?: WindowConfig;
  /** A `renewAt` schedule: rotate only when the credential's renewal is due within the next check. */
  renewal?: RenewalSchedule;
}

/** What `renewalDue` found: how long until the renewal, and when the credential ends (ISO times). */
export interface RenewalDecision {
  basis: 'lifetime' | 'ari' | 'none-yet';
  waitMs: number;
  dueAt: string;
  notAfter?: string;
  /** Set when the renewal is overdue and the credential within its alert margin of its end: the alert's message. */
  expiring?: string;
}

/** When a credential with a lifetime (a certificate) renews: see `ScheduleConfig` kind `lifetime`. */
export interface RenewalSchedule {
  renewAt: number;
  checkEveryMs: number;
  jitterMs?: number;
  alertBeforeMs?: number;
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
  /**
   * Set for rotators whose create waits on an outside service (`Rotator.remoteCreate`): create runs as an ordinary
   * activity with this start-to-close and heartbeat timeout, never local-first.
   */
  remoteCreate?: { timeoutMs: number; heartbeatMs: number };
  /**
   * For a rotation that bakes: when the secret's automatic rollbacks of the last 24 hours happened (ISO times from
   * the audit trail, newest first, at most 100). Absent without an audit store.
   */
  recentAutoRollbacks?: string[];
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
  /** From finish, for credentials with a lifetime (a certificate): the new version's validity (ISO times). */
  lifetime?: { notBefore: string; notAfter: string };
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
  /** For a completed rotation: how to roll it back now that it has ended (the Temporal UI shows the result). */
  rollBack?: string;
  status: RotationStatus;
}

/** Input of `prepareRotation`. */
export interface PrepareInput {
  secretId: string;
  overrides?: RotationOverrides;
  /** The rotation's grace, for rotators that refuse one too short for their credential (JWT signing keys). */
  graceMs?: number;
  /** The rotation bakes: prepare reads the secret's recent automatic rollbacks (`recentAutoRollbacks`). */
  bakes?: boolean;
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
