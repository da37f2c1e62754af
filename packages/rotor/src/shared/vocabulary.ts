/**
 * The words rotor speaks in: steps, phases, outcomes, strategies, retirement modes, weekdays, triggers, each list
 * declared once as an `as const` array with its type derived. No I/O; safe in workflow code.
 */

/** The steps of a rotation, in the order they run. */
export const STEPS = ['prepare', 'create', 'set', 'test', 'finish', 'retire'] as const;
export type StepName = (typeof STEPS)[number] | 'compensate' | 'rollback';

/** How a rotation ends: counted in metrics, recorded in the audit trail, shown in status. */
export const ROTATION_OUTCOMES = ['completed', 'compensated', 'rolled-back', 'failed'] as const;
export type RotationOutcomeWord = (typeof ROTATION_OUTCOMES)[number];

/**
 * Where a rotation is. `grace` waits on a durable timer while the previous credential stays valid; the phases of
 * ROTATION_OUTCOMES are terminal.
 */
export const PHASES = [
  'preparing',
  'creating',
  'setting',
  'testing',
  'publishing',
  'finishing',
  'grace',
  'awaiting-sessions',
  'retiring',
  'compensating',
  'rolling-back',
  ...ROTATION_OUTCOMES,
] as const;
export type Phase = (typeof PHASES)[number];

export const TERMINAL_PHASES: readonly Phase[] = ROTATION_OUTCOMES;

/** Words for people: `a, b or c`. */
export function listOr(values: readonly string[]): string {
  return values.length <= 1 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

/** How a database secret rotates: one login changed in place, or two logins taking turns (AWS's multi-user). */
export const STRATEGIES = ['single-user', 'alternating-users'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** What retirement does to the previous login of an alternating pair (see RetirementPolicy). */
export const RETIRE_MODES = ['none', 'disable-login', 'scramble-password'] as const;
export type RetireMode = (typeof RETIRE_MODES)[number];

/** What retirement does about the previous login's live sessions (see RetirementPolicy). */
export const LIVE_SESSION_MODES = ['wait', 'proceed', 'terminate'] as const;
export type LiveSessionMode = (typeof LIVE_SESSION_MODES)[number];

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Who or what asked for a rotation; recorded in status and memo, never a credential. */
export const TRIGGER_KINDS = ['cli', 'api', 'schedule', 'demo'] as const;
export interface Trigger {
  kind: (typeof TRIGGER_KINDS)[number];
  by?: string;
}

/** Who started a rotation, for the audit trail: `schedule:<id>`, `cli:<user>`, `api:unknown`... */
export function actorOf(trigger: Trigger | undefined): string {
  if (!trigger) return 'api:unknown';
  return trigger.by ? `${trigger.kind}:${trigger.by}` : trigger.kind;
}

/** Who sent a signal, for the audit trail: `signal:<by>`, or `signal:ui-or-api` when it did not say. */
export function signalActor(by: string | undefined): string {
  return `signal:${by ?? 'ui-or-api'}`;
}
