import type { ActivityOptions } from '@temporalio/workflow';
import { ErrorType, NON_RETRYABLE_ERROR_TYPES } from 'rotor-consumers/core';

/** Attempts per step before a rotation gives up and compensates, unless its input says otherwise. */
export const DEFAULT_MAX_STEP_ATTEMPTS = 6;

/** A rotation step: short (a database login, a few store calls); a worker that dies mid-step is noticed after 20 s. */
export function stepOptions(maximumAttempts: number): ActivityOptions {
  return {
    startToCloseTimeout: '20s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
    },
  };
}

/**
 * prepare changes nothing, so nothing waits on it: a target that does not answer three times within seconds is
 * refused then, rather than after minutes of retries.
 */
export function prepareOptions(maxStepAttempts: number): ActivityOptions {
  return stepOptions(Math.min(maxStepAttempts, 3));
}

/** Compensation and rollback must not give up while the store is briefly away: more attempts, longer backoff. */
export function undoOptions(maxStepAttempts: number): ActivityOptions {
  return stepOptions(Math.max(maxStepAttempts * 3, 20));
}

/** Audit appends: unlimited attempts, so an audit database that is away delays a rotation's end, never loses an event. */
export const AUDIT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    nonRetryableErrorTypes: [ErrorType.InvalidInput],
  },
};

/** Alert delivery: the worker tries each route several times with backoff inside one attempt. */
export const ALERT_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '3m',
  retry: { initialInterval: '5s', maximumAttempts: 3 },
};

/**
 * A lease's steps (workflows/dynamic-lease.ts): its terms are read three times at most (a bad template fails at
 * once); issue, renew and revoke try until they are done, at most 10 s apart, so a database that is away for a while
 * delays them and never loses a revocation.
 */
export const LEASE_OPTIONS = {
  terms: stepOptions(3),
  step: {
    startToCloseTimeout: '20s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
    },
  },
} satisfies Record<string, ActivityOptions>;

/**
 * A re-wrap's steps (workflows/rewrap-keyring.ts): a batch heartbeats, and tries until it is done (a database away
 * for a while pauses the re-wrap, never ends it; `rotor rewrap cancel` does). Bad input fails at once.
 */
export const REWRAP_OPTIONS: ActivityOptions = {
  // A count of a large table takes long; a worker that dies is noticed by its heartbeats (every 2 s).
  startToCloseTimeout: '30m',
  heartbeatTimeout: '6s',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};
