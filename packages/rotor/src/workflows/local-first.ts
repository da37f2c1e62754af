import { msToNumber } from '@temporalio/common/lib/time';
import {
  ApplicationFailure,
  condition,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  type ActivityOptions,
} from '@temporalio/workflow';
import { innermostFailure } from './failures';

/**
 * How long the local attempt may take: as long as an ordinary attempt (`stepOptions`). A step is a few store calls
 * and logins; one that takes longer has met trouble and goes on as an ordinary activity, which the Temporal UI shows
 * as pending with its attempts and last failure. It is not shorter because a timed-out attempt is not stopped: its
 * store and database calls (5 s request timeouts, retried by the SDK) must have ended before the next attempt
 * starts, or two attempts would write at once. While a local attempt runs, the workflow task stays open, so signals
 * and queries wait for it: this bounds that wait too.
 */
export const LOCAL_ATTEMPT_TIMEOUT_MS = 20_000;

/**
 * The local attempts of one workflow run. At most one is in flight at a time, and the reporter's alerts wait until
 * none is (`idle`). Temporal's core resolves a local activity on replay from its marker, which can come ahead of a
 * timer or signal that woke the workflow while the attempt ran: a command issued in between (a `stuck` alert during a
 * slow step) would then be replayed after the commands that followed the attempt, a nondeterminism error. Nothing is
 * lost by waiting: while a local attempt runs, the workflow task stays open and no command leaves the worker before
 * it ends anyway. Not covered: commands a signal handler or a timer issues while an audit append runs local-first in
 * grace (a memo upsert on extendGrace, the retire phase's upserts when grace ends during a slow append).
 */
export class LocalAttempts {
  #inFlight = 0;

  /** Resolves once no local attempt is in flight; at once, with no command, when none is. */
  async idle(): Promise<void> {
    while (this.#inFlight > 0) await condition(() => this.#inFlight === 0);
  }

  /** Runs `attempt` as the only local attempt in flight. */
  async run<T>(attempt: () => Promise<T>): Promise<T> {
    // The last check and the increment with no await between them: two callers woken (or called) in the same
    // activation cannot both start.
    while (this.#inFlight > 0) await condition(() => this.#inFlight === 0);
    this.#inFlight++;
    try {
      return await attempt();
    } finally {
      this.#inFlight--;
    }
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any activity signature
type Activities = Record<string, (...args: any[]) => Promise<unknown>>;

/**
 * Activities with `options`, each called local-first: one local attempt; when it fails in a way another attempt
 * could cure (a retryable error, a timeout), the call goes on as an ordinary activity with the attempts left.
 * A non-retryable failure or a cancellation ends the call at once, as it would an ordinary activity. The ordinary
 * activity starts at once, and its retries wait the policy's intervals one step further along (first interval times
 * the coefficient), so the attempts span about as long as the policy's would: a store or database that is away for
 * a while is waited out as before. A step report's `attempt` counts the local attempt. With a single attempt, every
 * call is an ordinary activity. Local attempts run one at a time through `attempts` (see LocalAttempts).
 */
export function localFirst<A extends object>(options: ActivityOptions, attempts: LocalAttempts): A {
  const maximumAttempts = options.retry?.maximumAttempts ?? 0; // 0: unlimited
  if (maximumAttempts === 1) return proxyActivities<A>(options) as A;
  const first = proxyLocalActivities<Activities>({
    startToCloseTimeout: LOCAL_ATTEMPT_TIMEOUT_MS,
    retry: { ...options.retry, maximumAttempts: 1 },
  });
  // Temporal's defaults: 1 s, doubling, at most 100 times the first interval.
  const firstMs = msToNumber(options.retry?.initialInterval ?? 1000);
  const coefficient = options.retry?.backoffCoefficient ?? 2;
  const maxMs = msToNumber(options.retry?.maximumInterval ?? firstMs * 100);
  const rest = proxyActivities<Activities>({
    ...options,
    retry: {
      ...options.retry,
      initialInterval: Math.min(firstMs * coefficient, maxMs),
      ...(maximumAttempts === 0 ? {} : { maximumAttempts: maximumAttempts - 1 }),
    },
  });
  const nonRetryable = options.retry?.nonRetryableErrorTypes ?? [];
  return new Proxy({} as A, {
    get(_, name) {
      // Not a thenable: awaiting the proxy must not schedule an activity named `then`.
      if (typeof name !== 'string' || name === 'then') return undefined;
      return async (...args: unknown[]) => {
        try {
          return await attempts.run(() => first[name]!(...args));
        } catch (error) {
          if (!curable(error, nonRetryable)) throw error;
        }
        return countingLocal(await rest[name]!(...args));
      };
    },
  });
}

/**
 * Whether another attempt could cure the local attempt's failure, as Temporal's retry policy would judge it. A local
 * activity's failure reaches the workflow as the activity's own failure (an ApplicationFailure, a TimeoutFailure),
 * not wrapped in an ActivityFailure as an ordinary activity's is; both shapes are read.
 */
function curable(error: unknown, nonRetryableTypes: readonly string[]): boolean {
  if (isCancellation(error)) return false;
  const e = innermostFailure(error);
  if (e instanceof ApplicationFailure) return !e.nonRetryable && !(e.type && nonRetryableTypes.includes(e.type));
  return true; // a timeout, or a failure of the worker itself
}

/** A step report from the ordinary activity counts the local attempt before it. */
function countingLocal(result: unknown): unknown {
  const attempt = (result as { attempt?: unknown } | undefined)?.attempt;
  return typeof attempt === 'number' ? { ...(result as object), attempt: attempt + 1 } : result;
}
