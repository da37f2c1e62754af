import { createHash } from 'node:crypto';
import type { ScheduleDescription, ScheduleOptions, ScheduleSpec } from '@temporalio/client';
import { describeSchedule, type ManagedSecret, type RotorConfig } from '../config/rotor-config';
import { canonicalJson } from '../shared/canonical-json';
import { scheduledWorkflowIdFor, scheduleIdFor, SearchAttribute } from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import { compact } from '../shared/compact';
import type { RotationInput, ScheduledRotationInput } from '../shared/rotation';

/*
 * Schedule planning, pure: what `rotor apply` wants each secret's Temporal Schedule to be, and how a described
 * schedule differs from it. No Temporal calls: ScheduleManager (client/) describes, creates and updates.
 */

/** What `rotor apply` does to one secret's schedule. */
export interface PlanEntry {
  secretId: string;
  action: 'create' | 'update' | 'delete' | 'unchanged';
  /** For people: what changes, e.g. "grace 1h → 2h", "pause". Never a value. */
  changes: string[];
}

export interface ApplyPlan {
  entries: PlanEntry[];
  /** Managed schedules absent from the file, kept because --prune was not given. */
  kept: string[];
}

/**
 * The settings a schedule is created from, recorded in its action's memo: `apply` compares them to decide whether
 * to update and to say what changed. Temporal normalises specs, so the described spec cannot be compared itself.
 */
export interface RecordedSettings {
  schedule: string;
  graceMs: number;
  catchupWindowMs: number;
  taskQueue: string;
  alerts: string[];
  stuckPhaseBudgetMs: number;
  strategy: string | null;
  retirement: string | null;
  passwordPolicy: string | null;
  maxStepAttempts: number | null;
  /** Present only when set, so schedules recorded before bake existed keep their hash. */
  bake?: string;
  description: string | null;
  hash?: string;
}

/** The schedule's own memo marks it as rotor's: `list` and `--prune` only ever touch these. */
export const MANAGED_BY = 'rotor';

/**
 * The shape of what a schedule starts. Raise it when rotor changes the action (its input, its workflow), so the next
 * `apply` updates every schedule made by an older rotor.
 */
const SETTINGS_VERSION = 1;

/** The plan as `--json` prints it. */
export function planSummary(plan: ApplyPlan): {
  created: string[];
  updated: string[];
  deleted: string[];
  unchanged: string[];
} {
  const ids = (action: PlanEntry['action']) => plan.entries.filter((e) => e.action === action).map((e) => e.secretId);
  return { created: ids('create'), updated: ids('update'), deleted: ids('delete'), unchanged: ids('unchanged') };
}

/** The input of the rotations a secret's schedule starts: rotor.yaml's settings for it, and who triggers it. */
export function rotationInputFor(secret: ManagedSecret, config: RotorConfig): RotationInput {
  const overrides = compact({ strategy: secret.strategy, retirement: secret.retirement });
  return compact({
    secretId: secret.id,
    graceMs: secret.graceMs,
    trigger: { kind: 'schedule' as const, by: scheduleIdFor(secret.id) },
    passwordPolicy: secret.passwordPolicy,
    maxStepAttempts: secret.maxStepAttempts,
    overrides: Object.keys(overrides).length > 0 ? overrides : undefined,
    reporting: { alerts: secret.alerts, stuckPhaseBudgetMs: config.alerts.stuckPhaseBudgetMs },
    bake: secret.bake,
    renewAt: secret.schedule.kind === 'lifetime' ? secret.schedule.renewAt : undefined,
  });
}

/** The settings recorded for a secret, with the hash apply compares. */
export function settingsFor(secret: ManagedSecret, config: RotorConfig, taskQueue: string): RecordedSettings {
  const settings: RecordedSettings = {
    schedule: describeSchedule(secret.schedule),
    graceMs: secret.graceMs,
    catchupWindowMs: secret.catchupWindowMs,
    taskQueue,
    alerts: secret.alerts,
    stuckPhaseBudgetMs: config.alerts.stuckPhaseBudgetMs,
    strategy: secret.strategy ?? null,
    retirement: secret.retirement ? canonicalJson(secret.retirement) : null,
    passwordPolicy: secret.passwordPolicy ? canonicalJson(secret.passwordPolicy) : null,
    maxStepAttempts: secret.maxStepAttempts ?? null,
    ...(secret.bake ? { bake: canonicalJson(secret.bake) } : {}),
    description: secret.description ?? null,
  };
  const hashed = canonicalJson({ version: SETTINGS_VERSION, settings, spec: specOf(secret) });
  return { ...settings, hash: createHash('sha256').update(hashed).digest('hex').slice(0, 16) };
}

/**
 * The schedule rotor wants for a secret: `scheduledRotation` with overlap SKIP (a rotation still running is never
 * doubled) and the secret's catch-up window (a Temporal outage does not fire a burst of stale rotations).
 */
export function scheduleOptionsFor(
  secret: ManagedSecret,
  config: RotorConfig,
  taskQueue: string,
): ScheduleOptions & { scheduleId: string } {
  const scheduleId = scheduleIdFor(secret.id);
  const s = secret.schedule;
  const input: ScheduledRotationInput = {
    rotation: rotationInputFor(secret, config),
    ...compact({ window: s.window }),
    ...(s.kind === 'lifetime'
      ? {
          renewal: compact({
            renewAt: s.renewAt,
            checkEveryMs: s.checkEveryMs,
            jitterMs: s.jitterMs,
            alertBeforeMs: s.alertBeforeMs,
          }),
        }
      : {}),
  };
  return {
    scheduleId,
    spec: specOf(secret),
    action: {
      type: 'startWorkflow',
      workflowType: 'scheduledRotation',
      workflowId: scheduledWorkflowIdFor(secret.id),
      taskQueue,
      args: [input],
      memo: { rotor: settingsFor(secret, config, taskQueue) },
      typedSearchAttributes: [{ key: SearchAttribute.secretId, value: secret.id }],
    },
    policies: { overlap: 'SKIP', catchupWindow: secret.catchupWindowMs, pauseOnFailure: false },
    state: secret.paused
      ? { paused: true, note: secret.note ?? 'paused in rotor.yaml' }
      : { paused: false, ...(secret.paused === false ? { note: 'resumed by rotor apply' } : {}) },
    memo: { managedBy: MANAGED_BY, secretId: secret.id },
    typedSearchAttributes: [{ key: SearchAttribute.secretId, value: secret.id }],
  };
}

/**
 * What `apply` does to one secret of the file, given its schedule as Temporal describes it (undefined: none yet).
 * `paused` in the file is declarative when given; when absent, a pause made with `rotor pause` is left alone.
 */
export function planEntryFor(
  secret: ManagedSecret,
  config: RotorConfig,
  taskQueue: string,
  existing: ScheduleDescription | undefined,
): PlanEntry {
  const desired = settingsFor(secret, config, taskQueue);
  if (!existing)
    return { secretId: secret.id, action: 'create', changes: [desired.schedule, ...(secret.paused ? ['paused'] : [])] };
  const recorded = recordedSettingsOf(existing);
  const changes =
    recorded?.hash === desired.hash
      ? driftOf(existing, scheduleOptionsFor(secret, config, taskQueue))
      : diffSettings(recorded, desired);
  if (secret.paused !== undefined && secret.paused !== existing.state.paused)
    changes.push(secret.paused ? 'pause' : 'resume');
  else if (secret.paused && secret.note !== undefined && secret.note !== existing.state.note)
    changes.push('pause note');
  return { secretId: secret.id, action: changes.length > 0 ? 'update' : 'unchanged', changes };
}

/** What was changed on the schedule outside `rotor apply` (Temporal UI, CLI), though its recorded settings match. */
export function driftOf(described: ScheduleDescription, desired: ScheduleOptions): string[] {
  const drift: string[] = [];
  const action = desired.action as { workflowType: unknown; taskQueue: string; args: unknown[] };
  if (described.action.workflowType !== 'scheduledRotation') drift.push('workflow edited outside rotor apply');
  if (described.action.taskQueue !== action.taskQueue) drift.push('task queue edited outside rotor apply');
  if (canonicalJson(described.action.args?.[0] ?? null) !== canonicalJson(action.args[0]))
    drift.push('rotation settings edited outside rotor apply');
  if (
    described.policies.overlap !== desired.policies?.overlap ||
    described.policies.catchupWindow !== desired.policies?.catchupWindow
  ) {
    drift.push('policies edited outside rotor apply');
  }
  return drift;
}

/** What differs between the recorded and the desired settings, for the plan. */
export function diffSettings(recorded: RecordedSettings | undefined, desired: RecordedSettings): string[] {
  if (!recorded) return ['settings recorded by another version of rotor'];
  const changes: string[] = [];
  const show = (key: keyof RecordedSettings, value: unknown): string => {
    if (value === null || value === undefined) return 'default';
    if (key === 'graceMs' || key === 'catchupWindowMs' || key === 'stuckPhaseBudgetMs')
      return formatDuration(Number(value));
    return Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
  };
  for (const key of new Set([...Object.keys(desired), ...Object.keys(recorded)]) as Set<keyof RecordedSettings>) {
    if (key === 'hash') continue;
    const before = recorded[key];
    const after = desired[key];
    if (canonicalJson(before ?? null) !== canonicalJson(after ?? null)) {
      changes.push(`${key.replace(/Ms$/, '')} ${show(key, before)} → ${show(key, after)}`);
    }
  }
  return changes.length > 0 ? changes : ['schedule spec'];
}

/** The Temporal spec of a secret's schedule. */
export function specOf(secret: ManagedSecret): ScheduleSpec {
  const s = secret.schedule;
  // A renewAt schedule's jitter moves the renewal (scheduledRotation draws it), not the check.
  if (s.kind === 'lifetime') return { intervals: [{ every: s.checkEveryMs }] };
  const jitter = s.jitterMs ? { jitter: s.jitterMs } : {};
  // An offset of 0 is no offset: the same spec (and settings hash) as a schedule that names none.
  if (s.kind === 'every')
    return { intervals: [{ every: s.everyMs, ...compact({ offset: s.offsetMs || undefined }) }], ...jitter };
  return { cronExpressions: [s.cron], timezone: s.timezone, ...jitter };
}

/** The settings an earlier `apply` recorded on the schedule, if rotor made it. */
export function recordedSettingsOf(description: ScheduleDescription): RecordedSettings | undefined {
  const memo = description.action.memo as { rotor?: RecordedSettings } | undefined;
  return memo?.rotor;
}
