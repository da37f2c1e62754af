import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { rotationWorkflowId, SearchAttribute } from '../shared/constants';
import type { Phase } from '../shared/types';
import type { ScheduleManager } from './schedule-manager';

/** One managed secret as `rotor status` shows it: the view an on-call engineer opens first. */
export interface SecretOverview {
  secretId: string;
  /** idle, rotating, in grace, awaiting sessions, failed, never rotated; with a detail in `phase`. */
  state: 'idle' | 'rotating' | 'in grace' | 'awaiting sessions' | 'failed' | 'never rotated';
  phase?: Phase;
  paused: boolean;
  /** When a rotation last completed (within Temporal's retention). */
  lastRotatedAt?: string;
  nextDueAt?: string;
  lastFailure?: { at: string; message: string };
  /** The latest rotation's run, for `rotor status <secretId>` and the UI. */
  runId?: string;
}

/**
 * The managed secrets (those with a schedule), and any other secret whose rotation is running now; with `all`,
 * every secret Temporal still keeps rotations of. One visibility listing of rotations, plus the schedules' own
 * descriptions (one call per schedule, see ScheduleManager.list).
 */
export async function secretsOverview(
  client: Client,
  schedules: ScheduleManager,
  options: { all?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<SecretOverview[]> {
  const runs = new Map<string, WorkflowExecutionInfo[]>();
  for await (const info of client.workflow.list({ query: `WorkflowType = 'rotateSecret'` })) {
    const secretId = info.typedSearchAttributes.get(SearchAttribute.secretId) ?? secretIdOfWorkflow(info.workflowId);
    if (!secretId || info.workflowId !== rotationWorkflowId(secretId)) continue;
    runs.set(secretId, [...(runs.get(secretId) ?? []), info]);
  }
  const scheduled = new Map((await schedules.list(options.onProgress ? { onProgress: options.onProgress } : {})).map((s) => [s.secretId, s]));
  const running = [...runs].filter(([, history]) => history.some((r) => r.status.name === 'RUNNING')).map(([id]) => id);
  const others = options.all ? [...runs.keys()] : running;
  const ids = [...new Set([...scheduled.keys(), ...others])].sort((a, b) => a.localeCompare(b));
  return ids.map((secretId) => {
    const history = (runs.get(secretId) ?? []).sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
    const schedule = scheduled.get(secretId);
    const latest = history[0];
    const lastCompleted = history.find((r) => r.status.name === 'COMPLETED' && memoOf(r).phase === 'completed');
    const lastFailed = history.find((r) => r.status.name !== 'RUNNING' && r.status.name !== 'COMPLETED');
    return {
      secretId,
      state: latest ? stateOf(latest) : 'never rotated',
      ...(latest && phaseOf(latest) ? { phase: phaseOf(latest)! } : {}),
      paused: schedule?.paused ?? false,
      ...(lastCompleted?.closeTime ? { lastRotatedAt: lastCompleted.closeTime.toISOString() } : {}),
      ...(schedule?.nextRunAt ? { nextDueAt: schedule.nextRunAt } : {}),
      ...(lastFailed ? { lastFailure: failureOf(lastFailed) } : {}),
      ...(latest ? { runId: latest.runId } : {}),
    };
  });
}

function stateOf(run: WorkflowExecutionInfo): SecretOverview['state'] {
  if (run.status.name === 'COMPLETED') return 'idle';
  if (run.status.name !== 'RUNNING') return 'failed';
  const phase = phaseOf(run);
  if (phase === 'grace') return 'in grace';
  if (phase === 'awaiting-sessions') return 'awaiting sessions';
  return 'rotating';
}

function phaseOf(run: WorkflowExecutionInfo): Phase | undefined {
  return (run.typedSearchAttributes.get(SearchAttribute.phase) as Phase | undefined) ?? (memoOf(run).phase as Phase | undefined);
}

function failureOf(run: WorkflowExecutionInfo): { at: string; message: string } {
  const memo = memoOf(run);
  const status = run.status.name.toLowerCase().replace('_', ' ');
  const phase = typeof memo.phase === 'string' && memo.phase !== status ? `${memo.phase}` : status;
  const message = typeof memo.lastError === 'string' ? `${phase}: ${memo.lastError}` : phase;
  return { at: (run.closeTime ?? run.startTime).toISOString(), message };
}

function memoOf(run: WorkflowExecutionInfo): Record<string, unknown> {
  return (run.memo ?? {}) as Record<string, unknown>;
}

function secretIdOfWorkflow(workflowId: string): string | undefined {
  const prefix = rotationWorkflowId('');
  return workflowId.startsWith(prefix) ? workflowId.slice(prefix.length) : undefined;
}
