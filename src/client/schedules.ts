import { createHash } from 'node:crypto';
import {
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
  type ScheduleSpec,
  type ScheduleSummary,
} from '@temporalio/client';
import { describeSchedule, type ManagedSecret, type RotorConfig } from '../config/rotor-config';
import { canonicalJson } from '../shared/canonical-json';
import { SCHEDULE_ID_PREFIX, scheduledWorkflowIdFor, scheduleIdFor, SearchAttribute } from '../shared/constants';
import { formatDuration } from '../shared/duration';
import { NotRotatingError } from '../shared/errors';
import type { RotationInput } from '../shared/types';
import { scheduledRotation, type ScheduledRotationInput, type ScheduledRotationResult } from '../workflows';

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

/** The plan as `--json` prints it. */
export function planSummary(plan: ApplyPlan): { created: string[]; updated: string[]; deleted: string[]; unchanged: string[] } {
  const ids = (action: PlanEntry['action']) => plan.entries.filter((e) => e.action === action).map((e) => e.secretId);
  return { created: ids('create'), updated: ids('update'), deleted: ids('delete'), unchanged: ids('unchanged') };
}

/** A managed secret's schedule as `rotor schedules` shows it. */
export interface ScheduleView {
  secretId: string;
  schedule: string;
  paused: boolean;
  note?: string;
  nextRunAt?: string;
  lastRun?: { at: string; result: string };
}

/**
 * The settings a schedule is created from, recorded in its action's memo: `apply` compares them to decide whether
 * to update and to say what changed. Temporal normalises specs, so the described spec cannot be compared itself.
 */
interface RecordedSettings {
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
  description: string | null;
  hash?: string;
}

const MANAGED_BY = 'rotor';

/**
 * The shape of what a schedule starts. Raise it when rotor changes the action (its input, its workflow), so the next
 * `apply` updates every schedule made by an older rotor.
 */
const SETTINGS_VERSION = 1;

/**
 * Reconciles one Temporal Schedule per secret of rotor.yaml (`rotor apply`), and lists, pauses and resumes them.
 *
 * Each schedule starts `scheduledRotation` with overlap policy SKIP (a rotation still running is never doubled) and
 * the secret's catch-up window (a Temporal outage does not fire a burst of stale rotations). `paused` in the file is
 * declarative when given; when absent, apply leaves a pause made with `rotor pause` alone. `--prune` only deletes
 * schedules that start rotations on this client's task queue, so teams sharing a namespace keep each other's.
 */
export class ScheduleManager {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /** What `apply` would do; changes nothing. */
  async plan(config: RotorConfig, options: { prune?: boolean } = {}): Promise<ApplyPlan> {
    const entries: PlanEntry[] = [];
    const wanted = new Set(config.secrets.map((s) => s.id));
    for (const secret of config.secrets) {
      const existing = await this.describe(secret.id);
      const desired = this.settings(secret, config);
      if (!existing) {
        entries.push({ secretId: secret.id, action: 'create', changes: [desired.schedule, ...(secret.paused ? ['paused'] : [])] });
        continue;
      }
      const recorded = recordedSettings(existing);
      const changes = recorded?.hash === desired.hash ? driftOf(existing, this.options(secret, config)) : diffSettings(recorded, desired);
      if (secret.paused !== undefined && secret.paused !== existing.state.paused) changes.push(secret.paused ? 'pause' : 'resume');
      else if (secret.paused && secret.note !== undefined && secret.note !== existing.state.note) changes.push('pause note');
      entries.push({ secretId: secret.id, action: changes.length > 0 ? 'update' : 'unchanged', changes });
    }
    const kept: string[] = [];
    for (const summary of await this.managedSummaries()) {
      const secretId = secretIdOf(summary);
      if (wanted.has(secretId)) continue;
      // Only schedules of this worker fleet (task queue): other teams' rotor.yaml files share the namespace.
      const description = await this.describe(secretId);
      if (!description || description.action.taskQueue !== this.taskQueue) continue;
      if (options.prune) entries.push({ secretId, action: 'delete', changes: [] });
      else kept.push(secretId);
    }
    return { entries, kept };
  }

  /** Carries out `plan` (made from the same config), calling `onEntry` as each entry is done. */
  async apply(config: RotorConfig, plan: ApplyPlan, onEntry?: (entry: PlanEntry) => void): Promise<void> {
    const secrets = new Map(config.secrets.map((s) => [s.id, s]));
    for (const entry of plan.entries) {
      const secret = secrets.get(entry.secretId);
      if (entry.action === 'create' && secret) {
        await this.client.schedule.create(this.options(secret, config));
      } else if (entry.action === 'update' && secret) {
        const options = this.options(secret, config);
        await this.client.schedule.getHandle(options.scheduleId).update((previous) => ({
          spec: options.spec,
          action: options.action,
          policies: options.policies,
          state: secret.paused === undefined ? { paused: previous.state.paused, note: previous.state.note } : { paused: secret.paused, note: options.state?.note },
        }));
      } else if (entry.action === 'delete') {
        await this.client.schedule.getHandle(scheduleIdFor(entry.secretId)).delete();
      }
      onEntry?.(entry);
    }
  }

  /** Every rotor-managed schedule, with its next run and how its last run ended. */
  async list(): Promise<ScheduleView[]> {
    const views: ScheduleView[] = [];
    for (const summary of await this.managedSummaries()) {
      const secretId = secretIdOf(summary);
      const description = await this.describe(secretId);
      if (!description) continue;
      const recorded = recordedSettings(description);
      const next = description.info.nextActionTimes[0];
      const last = description.info.recentActions.at(-1);
      views.push({
        secretId,
        schedule: recorded?.schedule ?? 'unknown',
        paused: description.state.paused,
        ...(description.state.note ? { note: description.state.note } : {}),
        ...(next && !description.state.paused ? { nextRunAt: next.toISOString() } : {}),
        ...(last ? { lastRun: { at: last.takenAt.toISOString(), result: await this.resultOf(last.action.workflow) } } : {}),
      });
    }
    return views.sort((a, b) => a.secretId.localeCompare(b.secretId));
  }

  /** Pauses the secret's schedule: no scheduled rotation starts until `resume`. */
  async pause(secretId: string, note: string): Promise<void> {
    await this.mustExist(secretId);
    await this.client.schedule.getHandle(scheduleIdFor(secretId)).pause(note);
  }

  async resume(secretId: string, note: string): Promise<void> {
    await this.mustExist(secretId);
    await this.client.schedule.getHandle(scheduleIdFor(secretId)).unpause(note);
  }

  /**
   * The rotation settings the secret's schedule uses (grace, policy, overrides, alert routes), so that a rotation
   * started by hand behaves like a scheduled one. Undefined when the secret has no schedule.
   */
  async rotationSettings(secretId: string): Promise<RotationInput | undefined> {
    const description = await this.describe(secretId);
    const input = description?.action.args?.[0] as ScheduledRotationInput | undefined;
    return input?.rotation;
  }

  /** The schedule's description, or undefined when the secret has none. */
  async describe(secretId: string): Promise<ScheduleDescription | undefined> {
    try {
      return await this.client.schedule.getHandle(scheduleIdFor(secretId)).describe();
    } catch (error) {
      if (error instanceof ScheduleNotFoundError) return undefined;
      throw error;
    }
  }

  private async mustExist(secretId: string): Promise<void> {
    if (!(await this.describe(secretId))) {
      throw new NotRotatingError(secretId, 'has no rotor schedule — declare it in rotor.yaml and run `rotor apply -f rotor.yaml`');
    }
  }

  private async managedSummaries(): Promise<ScheduleSummary[]> {
    const out: ScheduleSummary[] = [];
    for await (const summary of this.client.schedule.list()) {
      if (summary.scheduleId.startsWith(SCHEDULE_ID_PREFIX) && summary.memo?.managedBy === MANAGED_BY) out.push(summary);
    }
    return out;
  }

  /** How the run a schedule started ended, in a few words. */
  private async resultOf(run: { workflowId: string; firstExecutionRunId: string }): Promise<string> {
    const handle = this.client.workflow.getHandle<typeof scheduledRotation>(run.workflowId, run.firstExecutionRunId);
    try {
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') return 'running';
      if (status.name === 'COMPLETED') return ((await handle.result()) as ScheduledRotationResult).outcome;
      if (status.name === 'FAILED') {
        try {
          await handle.result();
        } catch (error) {
          const cause = (error as Error).cause;
          return `failed: ${cause instanceof Error ? cause.message : (error as Error).message}`;
        }
      }
      return status.name.toLowerCase();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return 'unknown (past retention)';
      throw error;
    }
  }

  /** The settings recorded for a secret, with the hash apply compares. */
  private settings(secret: ManagedSecret, config: RotorConfig): RecordedSettings {
    const settings: RecordedSettings = {
      schedule: describeSchedule(secret.schedule),
      graceMs: secret.graceMs,
      catchupWindowMs: secret.catchupWindowMs,
      taskQueue: this.taskQueue,
      alerts: secret.alerts,
      stuckPhaseBudgetMs: config.alerts.stuckPhaseBudgetMs,
      strategy: secret.strategy ?? null,
      retirement: secret.retirement ? canonicalJson(secret.retirement) : null,
      passwordPolicy: secret.passwordPolicy ? canonicalJson(secret.passwordPolicy) : null,
      maxStepAttempts: secret.maxStepAttempts ?? null,
      description: secret.description ?? null,
    };
    const hashed = canonicalJson({ version: SETTINGS_VERSION, settings, spec: specOf(secret) });
    return { ...settings, hash: createHash('sha256').update(hashed).digest('hex').slice(0, 16) };
  }

  private options(secret: ManagedSecret, config: RotorConfig): ScheduleOptions & { scheduleId: string } {
    const scheduleId = scheduleIdFor(secret.id);
    const rotation: RotationInput = {
      secretId: secret.id,
      graceMs: secret.graceMs,
      trigger: { kind: 'schedule', by: scheduleId },
      ...(secret.passwordPolicy ? { passwordPolicy: secret.passwordPolicy } : {}),
      ...(secret.maxStepAttempts ? { maxStepAttempts: secret.maxStepAttempts } : {}),
      ...(secret.strategy || secret.retirement
        ? { overrides: { ...(secret.strategy ? { strategy: secret.strategy } : {}), ...(secret.retirement ? { retirement: secret.retirement } : {}) } }
        : {}),
      reporting: { alerts: secret.alerts, stuckPhaseBudgetMs: config.alerts.stuckPhaseBudgetMs },
    };
    const input: ScheduledRotationInput = { rotation, ...(secret.schedule.window ? { window: secret.schedule.window } : {}) };
    return {
      scheduleId,
      spec: specOf(secret),
      action: {
        type: 'startWorkflow',
        workflowType: scheduledRotation,
        workflowId: scheduledWorkflowIdFor(secret.id),
        taskQueue: this.taskQueue,
        args: [input],
        memo: { rotor: this.settings(secret, config) },
        typedSearchAttributes: [{ key: SearchAttribute.secretId, value: secret.id }],
      },
      policies: { overlap: 'SKIP', catchupWindow: secret.catchupWindowMs, pauseOnFailure: false },
      state: secret.paused ? { paused: true, note: secret.note ?? 'paused in rotor.yaml' } : { paused: false, ...(secret.paused === false ? { note: 'resumed by rotor apply' } : {}) },
      memo: { managedBy: MANAGED_BY, secretId: secret.id },
      typedSearchAttributes: [{ key: SearchAttribute.secretId, value: secret.id }],
    };
  }
}

/** What was changed on the schedule outside `rotor apply` (Temporal UI, CLI), though its recorded settings match. */
function driftOf(described: ScheduleDescription, desired: ScheduleOptions): string[] {
  const drift: string[] = [];
  const action = desired.action as { workflowType: unknown; taskQueue: string; args: unknown[] };
  if (described.action.workflowType !== 'scheduledRotation') drift.push('workflow edited outside rotor apply');
  if (described.action.taskQueue !== action.taskQueue) drift.push('task queue edited outside rotor apply');
  if (canonicalJson(described.action.args?.[0] ?? null) !== canonicalJson(action.args[0])) drift.push('rotation settings edited outside rotor apply');
  if (described.policies.overlap !== desired.policies?.overlap || described.policies.catchupWindow !== desired.policies?.catchupWindow) {
    drift.push('policies edited outside rotor apply');
  }
  return drift;
}

function specOf(secret: ManagedSecret): ScheduleSpec {
  const s = secret.schedule;
  const jitter = s.jitterMs ? { jitter: s.jitterMs } : {};
  if (s.kind === 'every') return { intervals: [{ every: s.everyMs, ...(s.offsetMs ? { offset: s.offsetMs } : {}) }], ...jitter };
  return { cronExpressions: [s.cron], timezone: s.timezone, ...jitter };
}

function recordedSettings(description: ScheduleDescription): RecordedSettings | undefined {
  const memo = description.action.memo as { rotor?: RecordedSettings } | undefined;
  return memo?.rotor;
}

function secretIdOf(summary: ScheduleSummary): string {
  return typeof summary.memo?.secretId === 'string' ? summary.memo.secretId : summary.scheduleId.slice(SCHEDULE_ID_PREFIX.length);
}

/** What differs between the recorded and the desired settings, for the plan. */
function diffSettings(recorded: RecordedSettings | undefined, desired: RecordedSettings): string[] {
  if (!recorded) return ['settings recorded by another version of rotor'];
  const changes: string[] = [];
  const show = (key: keyof RecordedSettings, value: unknown): string => {
    if (value === null || value === undefined) return 'default';
    if (key === 'graceMs' || key === 'catchupWindowMs' || key === 'stuckPhaseBudgetMs') return formatDuration(Number(value));
    return Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
  };
  for (const key of Object.keys(desired) as (keyof RecordedSettings)[]) {
    if (key === 'hash') continue;
    const before = recorded[key];
    const after = desired[key];
    if (canonicalJson(before ?? null) !== canonicalJson(after ?? null)) {
      changes.push(`${key.replace(/Ms$/, '')} ${show(key, before)} → ${show(key, after)}`);
    }
  }
  return changes.length > 0 ? changes : ['schedule spec'];
}
