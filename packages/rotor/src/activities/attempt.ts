import { Context } from '@temporalio/activity';

/** Time left to an attempt that waits on a guard, for the work itself. */
const WORK_MARGIN_MS = 3000;

/**
 * Inside an activity: a signal that aborts when the attempt is cancelled, or when so little of its start-to-close
 * time is left that the work could not finish. A guard gives up then, so a timed-out attempt never wakes up later
 * and writes behind its own retry. Undefined outside an activity.
 */
export function attemptSignal(): AbortSignal | undefined {
  let context: Context;
  try {
    context = Context.current();
  } catch {
    return undefined;
  }
  const { currentAttemptScheduledTimestampMs, startToCloseTimeoutMs } = context.info;
  if (!startToCloseTimeoutMs) return context.cancellationSignal;
  const left = currentAttemptScheduledTimestampMs + startToCloseTimeoutMs - WORK_MARGIN_MS - Date.now();
  return AbortSignal.any([context.cancellationSignal, AbortSignal.timeout(Math.max(0, left))]);
}
