import type { KeyringRefusal, KeyState } from 'rotor-consumers/credentials';

/** A re-wrap's workflow id: one per keyring secret at a time. */
export const rewrapWorkflowId = (secretId: string) => `rotor/rewrap/${secretId}`;

/** Names of the re-wrap's Updates and query, as the Temporal UI shows them. */
export const REWRAP_NAMES = { pause: 'pause', resume: 'resume', cancel: 'cancel', progress: 'progress' } as const;

export interface RewrapInput {
  secretId: string;
  /** Rows per batch (one page, one compare-and-swap statement). */
  batchSize?: number;
  /** Rows per second at most, over all batches. */
  ratePerSecond?: number;
  /** Passes over the tables at most: rows the application changed meanwhile wait for the next pass. */
  maxPasses?: number;
  /** Who asked (the CLI's user), for the audit. */
  actor?: string;
}

export interface RewrapPlan {
  primaryId: string;
  prePublicationMs: number;
  /** `database:table.column`, for progress. */
  tables: string[];
  rows: Record<string, number>;
}

export interface RewrapBatchInput {
  secretId: string;
  table: number;
  afterKey?: string;
  limit: number;
}

export interface RewrapBatchReport {
  primaryId: string;
  scanned: number;
  rewrapped: number;
  /** Rows the application wrote between the page's read and the swap: left for the next pass. */
  changedMeanwhile: number;
  /** Rows that did not decrypt, by reason: never written. */
  refused: Partial<Record<KeyringRefusal, number>>;
  /** The primary keys of the first refused rows (ids, never values). */
  refusedKeys: string[];
  lastKey?: string;
  done: boolean;
  /** How long the page took, measured by the activity (the rate limit's input). */
  elapsedMs: number;
}

export interface KeyRetirementReport {
  outcome: string;
  disabled: string[];
  removed: string[];
  rows: Record<string, number>;
}

export type RewrapPhase = 'waiting' | 'rewrapping' | 'paused' | 'counting' | 'retiring' | 'done' | 'cancelled';

/** A re-wrap's progress: the query's answer, the memo, the CLI's view. Counts and ids only. */
export interface RewrapProgress {
  secretId: string;
  phase: RewrapPhase;
  primaryId?: string;
  tables: string[];
  table: number;
  pass: number;
  afterKey?: string;
  scanned: number;
  rewrapped: number;
  changedMeanwhile: number;
  /** Rows the current (or last) pass refused, by reason, and the first of their primary keys. */
  refused: Partial<Record<KeyringRefusal, number>>;
  refusedKeys: string[];
  /** Rows per key id at the start, and at the final count. */
  rowsBefore: Record<string, number>;
  rowsAfter?: Record<string, number>;
  disabled?: string[];
  outcome?: string;
  /** When the first page was read (after the wait for readers), and when it ended. */
  rewrapStartedAt?: string;
  endedAt?: string;
  /** Runs so far (continue-as-new keeps the history bounded). */
  run: number;
}

/** A keyring's keys (no material) and the rows each protects now: `rotor status <id> --keys`. */
export interface KeyringRows {
  /** '' before the first rotation. */
  primaryId: string;
  rows: Record<string, number>;
  keys: { id: string; state: KeyState; createdAt: string; disabledAt?: string }[];
}
