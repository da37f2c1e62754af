import { condition } from '@temporalio/workflow';

/** A durable wait: until `deadline()` or until `done()`. */
export interface Wait {
  /** When the wait ends; it may move while the workflow waits (an operator extends grace). */
  deadline: () => number;
  /** Ends the wait early (a rollback, an operator ending grace). */
  done: () => boolean;
  /** What the timer is for, as the Temporal UI shows it. */
  summary: () => string;
  /** Runs at every wake before the wait is checked again (a verdict that falls due). */
  woken?: () => void;
}

/**
 * The one way rotor waits on time: a durable timer to the deadline, woken early when `done()` turns true or the
 * deadline moves, then waiting again for the new deadline. Grace, the bake window and the publication before finish
 * all wait through it.
 */
export async function waitUntil(wait: Wait): Promise<void> {
  for (wait.woken?.(); !wait.done() && Date.now() < wait.deadline(); wait.woken?.()) {
    const until = wait.deadline();
    await condition(() => wait.done() || wait.deadline() !== until, until - Date.now(), { summary: wait.summary() });
  }
}
