import { Context } from '@temporalio/activity';
import type { Rotator } from '../rotators/rotator';
import type { PreparedRotation } from '../shared/rotation';

/**
 * A create that waits on an outside service (`Rotator.remoteCreate`) runs as an ordinary activity that heartbeats:
 * a worker that dies mid-order is noticed after `heartbeatMs`, not after the whole start-to-close, and the next
 * attempt reads what this one noted (its heartbeat details) to resume the order instead of placing a second.
 */
export const REMOTE_CREATE_HEARTBEAT_MS = 15_000;

export function remoteCreateOf(rotator: Rotator<unknown>, value: unknown): PreparedRotation['remoteCreate'] {
  const remote = rotator.remoteCreate?.(value);
  return remote ? { timeoutMs: remote.timeoutMs, heartbeatMs: REMOTE_CREATE_HEARTBEAT_MS } : undefined;
}

/** What each running activity last noted: every heartbeat carries it, so a periodic beat never erases a note. */
const noted = new WeakMap<Context, { details: unknown }>();

function lastNoted(context: Context): unknown {
  return noted.get(context)?.details ?? context.info.heartbeatDetails;
}

/** What an earlier attempt of this activity noted, or this attempt since. */
export function recall(): unknown {
  return lastNoted(Context.current());
}

/** Notes `details` (ids and URLs, never values) in Temporal at once, for the next attempt. */
export function note(details: unknown): void {
  const context = Context.current();
  noted.set(context, { details });
  context.heartbeat(details);
}

/**
 * Runs `work`, heartbeating what was noted five times per heartbeat timeout when `remote` is set. The beats begin
 * half a timeout in: Temporal sends an attempt's first heartbeat at once and throttles the rest, so a note made early
 * (the ACME order, within a second or two) is that first heartbeat and is kept before anything else happens.
 */
export async function whileBeating<T>(
  remote: PreparedRotation['remoteCreate'],
  work: () => Promise<T> | T,
): Promise<T> {
  if (!remote) return work();
  const context = Context.current();
  let beat: NodeJS.Timeout | undefined;
  const start = setTimeout(() => {
    context.heartbeat(lastNoted(context));
    beat = setInterval(() => context.heartbeat(lastNoted(context)), Math.max(1000, remote.heartbeatMs / 5));
  }, remote.heartbeatMs / 2);
  try {
    return await work();
  } finally {
    clearTimeout(start);
    clearInterval(beat);
  }
}
