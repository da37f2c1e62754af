import { condition } from '@temporalio/workflow';
import { ErrorType } from 'rotor-consumers/core';
import { TimeoutFailure } from '@temporalio/workflow';
import { innermostFailure, RollbackRequested, typeOf } from './failures';

/**
 * A failure that says the target or store did not answer: rotor's Unavailable, or an attempt that ran out of time
 * (a host that drops packets answers nothing at all). Steps are idempotent, so running one again is safe.
 */
function outage(error: unknown): boolean {
  return typeOf(error) === ErrorType.Unavailable || innermostFailure(error) instanceof TimeoutFailure;
}

/**
 * How long a step waits out a target or store that does not answer (a failover, a restart) before it gives up:
 * managed databases fail over in one to two minutes. A rotation's input may say otherwise (`outageBudgetMs`).
 */
export const DEFAULT_OUTAGE_BUDGET_MS = 180_000;
/** The durable pause between two rounds of a step's attempts while its target is away. */
const ROUND_PAUSE_MS = 10_000;

/**
 * Runs `call` (a step: its attempts, with their retry policy) again after a durable pause while it fails because its
 * target or store did not answer (`RotorUnavailable`), until `budgetMs` has passed since the first try; any other
 * failure (a misconfigured target: unknown host, wrong engine, missing database, refused login) ends it at once.
 * A step therefore gives up at the latest one round of attempts after the budget. `abort` (a rollback asked for)
 * ends the wait with RollbackRequested.
 */
export async function rideThrough<T>(
  call: () => Promise<T>,
  budgetMs: number,
  abort: () => boolean = () => false,
): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const left = started + budgetMs - Date.now();
      if (!outage(error) || left <= 0) throw error;
      if (await condition(abort, Math.min(ROUND_PAUSE_MS, left))) throw new RollbackRequested();
    }
  }
}
