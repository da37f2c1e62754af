import { compact } from '../shared/compact';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  WorkflowNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleSummary,
} from '@temporalio/client';
import type { RotorConfig } from '../config/rotor-config';
import { mapLimit } from './concurrency';
import {
  MANAGED_BY,
  planEntryFor,
  recordedSettingsOf,
  scheduleOptionsFor,
  type ApplyPlan,
  type PlanEntry,
} from '../schedules/plan';
import { SCHEDULE_ID_PREFIX, scheduleIdFor } from '../shared/constants';
import { NotRotatingError } from 'rotor-consumers/core';
import type { RotationInput, ScheduledRotationInput } from '../shared/rotation';
import type { scheduledRotation, ScheduledRotationResult } from '../workflows';

/** Hears how much of a long operation is done: `done` of `total`. */
export type Progress = (done: number, total: number) => void;

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
  /**
   * @param concurrency Temporal calls in flight at once (default 16): a fleet's schedules are described, created
   *   and updated in parallel, within what the frontend serves comfortably.
   */
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
    readonly concurrency = 16,
  ) {}

  /** What `apply` would do; changes nothing. `onProgress` hears how many schedules were read, of how many. */
  async plan(config: RotorConfig, options: { prune?: boolean; onProgress?: Progress } = {}): Promise<ApplyPlan> {
    const wanted = new Set(config.secrets.map((s) => s.id));
    // Every secret of the file is described: the listing is visibility, which can lag a schedule made a moment ago.
    const others = (await this.managedSummaries()).map(secretIdOf).filter((id) => !wanted.has(id));
    const total = config.secrets.length + others.length;
    const tick = options.onProgress && ((done: number) => options.onProgress!(done, total));
    const entries: PlanEntry[] = await mapLimit(
      config.secrets,
      this.concurrency,
      async (secret) => planEntryFor(secret, config, this.taskQueue, await this.describe(secret.id)),
      tick,
    );
    const kept: string[] = [];
    // Only schedules of this worker fleet (task queue): other teams' rotor.yaml files share the namespace.
    const descriptions = await mapLimit(
      others,
      this.concurrency,
      (id) => this.describe(id),
      tick && ((done) => tick(config.secrets.length + done)),
    );
    others.forEach((secretId, i) => {
      const description = descriptions[i];
      if (!description || description.action.taskQueue !== this.taskQueue) return;
      if (options.prune) entries.push({ secretId, action: 'delete', changes: [] });
      else kept.push(secretId);
    });
    return { entries, kept };
  }

  /** Carries out `plan` (made from the same config), calling `onEntry` as each entry is done (in any order). */
  async apply(config: RotorConfig, plan: ApplyPlan, onEntry?: (entry: PlanEntry) => void): Promise<void> {
    const secrets = new Map(config.secrets.map((s) => [s.id, s]));
    await mapLimit(plan.entries, this.concurrency, async (entry) => {
      const secret = secrets.get(entry.secretId);
      if (entry.action === 'create' && secret) {
        try {
          await this.client.schedule.create(scheduleOptionsFor(secret, config, this.taskQueue));
        } catch (error) {
          // Created since the plan was made (another apply): plan it again from its description.
          if (!(error instanceof ScheduleAlreadyRunning)) throw error;
          const again = planEntryFor(secret, config, this.taskQueue, await this.describe(secret.id));
          if (again.action === 'update') await this.update(secret, config);
        }
      } else if (entry.action === 'update' && secret) {
        await this.update(secret, config);
      } else if (entry.action === 'delete') {
        await this.client.schedule.getHandle(scheduleIdFor(entry.secretId)).delete();
      }
      onEntry?.(entry);
    });
  }

  /** Makes the secret's schedule what rotor.yaml says; the pause state follows the file only when it says one. */
  private async update(secret: RotorConfig['secrets'][number], config: RotorConfig): Promise<void> {
    const options = scheduleOptionsFor(secret, config, this.taskQueue);
    await this.client.schedule.getHandle(options.scheduleId).update((previous) => ({
      spec: options.spec,
      action: options.action,
      policies: options.policies,
      state:
        secret.paused === undefined
          ? { paused: previous.state.paused, note: previous.state.note }
          : { paused: secret.paused, note: options.state?.note },
    }));
  }

  /** Every rotor-managed schedule, with its next run and how its last run ended. */
  async list(options: { onProgress?: Progress } = {}): Promise<ScheduleView[]> {
    const summaries = await this.managedSummaries();
    const views = await mapLimit(
      summaries,
      this.concurrency,
      (summary) => this.view(secretIdOf(summary)),
      options.onProgress && ((done) => options.onProgress!(done, summaries.length)),
    );
    return views.filter((v): v is ScheduleView => v !== undefined).sort((a, b) => a.secretId.localeCompare(b.secretId));
  }

  /**
   * Pause state and next run of every managed schedule, from the schedule listing alone: one paged call for the
   * whole fleet (`list` describes each schedule). The listing is Temporal's visibility, which follows a change
   * within moments.
   */
  async states(): Promise<Array<Pick<ScheduleView, 'secretId' | 'paused' | 'nextRunAt'>>> {
    return (await this.managedSummaries()).map((summary) => {
      const next = summary.info.nextActionTimes[0];
      return {
        secretId: secretIdOf(summary),
        paused: summary.state.paused,
        ...(next && !summary.state.paused ? { nextRunAt: next.toISOString() } : {}),
      };
    });
  }

  /** One schedule as `list` shows it, or undefined when it is gone. */
  private async view(secretId: string): Promise<ScheduleView | undefined> {
    const description = await this.describe(secretId);
    if (!description) return undefined;
    const recorded = recordedSettingsOf(description);
    const next = description.info.nextActionTimes[0];
    const last = description.info.recentActions.at(-1);
    return {
      secretId,
      schedule: recorded?.schedule ?? 'unknown',
      paused: description.state.paused,
      // Temporal answers '' for a schedule never paused with a note: no note.
      ...compact({ note: description.state.note || undefined }),
      ...(next && !description.state.paused ? { nextRunAt: next.toISOString() } : {}),
      ...(last
        ? { lastRun: { at: last.takenAt.toISOString(), result: await this.resultOf(last.action.workflow) } }
        : {}),
    };
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
      throw new NotRotatingError(
        secretId,
        'has no rotor schedule — declare it in rotor.yaml and run `rotor apply -f rotor.yaml`',
      );
    }
  }

  private async managedSummaries(): Promise<ScheduleSummary[]> {
    return (await this.summaries()).filter(isManaged);
  }

  /** Every schedule with rotor's id prefix, managed by rotor or not. */
  private async summaries(): Promise<ScheduleSummary[]> {
    const out: ScheduleSummary[] = [];
    for await (const summary of this.client.schedule.list())
      if (summary.scheduleId.startsWith(SCHEDULE_ID_PREFIX)) out.push(summary);
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

function isManaged(summary: ScheduleSummary): boolean {
  return summary.memo?.managedBy === MANAGED_BY;
}

function secretIdOf(summary: ScheduleSummary): string {
  return typeof summary.memo?.secretId === 'string'
    ? summary.memo.secretId
    : summary.scheduleId.slice(SCHEDULE_ID_PREFIX.length);
}
