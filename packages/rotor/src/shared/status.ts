/**
 * What operators see and send: the status query's answer, and the rollback and grace requests with their answers.
 * No I/O; safe in workflow code.
 */
import type { VersionEvidence } from './bake';
import type { Phase, StepName, Trigger } from './vocabulary';

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
  verdict?: 'rolled-back' | 'rollback-withheld' | 'passed' | 'inconclusive' | 'ended-by-operator';
  next: VersionEvidence;
  previous: VersionEvidence;
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
