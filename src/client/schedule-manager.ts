import {
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleSummary,
} from '@temporalio/client';
import type { RotorConfig } from '../config/rotor-config';
import {
  MANAGED_BY,
  planEntryFor,
  recordedSettingsOf,
  scheduleOptionsFor,
  type ApplyPlan,
  type PlanEntry,
} from '../schedules/plan';
import { SCHEDULE_ID_PREFIX, scheduleIdFor } from '../shared/constants';
import { NotRotatingError } from '../shared/errors';
import type { RotationInput, ScheduledRotationInput } from '../shared/types';
import type { scheduledRotation, ScheduledRotationResult } from '../workflows';

export { planSummary, type ApplyPlan, type PlanEntry } from '../schedules/plan';

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
      entries.push(planEntryFor(secret, config, this.taskQueue, await this.describe(secret.id)));
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
        await this.client.schedule.create(scheduleOptionsFor(secret, config, this.taskQueue));
      } else if (entry.action === 'update' && secret) {
        const options = scheduleOptionsFor(secret, config, this.taskQueue);
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
      const recorded = recordedSettingsOf(description);
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
}

function secretIdOf(summary: ScheduleSummary): string {
  return typeof summary.memo?.secretId === 'string' ? summary.memo.secretId : summary.scheduleId.slice(SCHEDULE_ID_PREFIX.length);
}
