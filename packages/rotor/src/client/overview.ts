import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { rotationWorkflowId, SearchAttribute } from '../shared/constants';
import { mapLimit } from './concurrency';
import type { Phase } from '../shared/vocabulary';
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
  /** A short-lived credential template's live leases and the logins they hold now. */
  leases?: LeaseCount;
  /** A credential with a lifetime (a certificate), as its latest completed rotation made it: its end, its renewal. */
  credential?: { notAfter: string; renewsAt: string };
}

export interface LeaseCount {
  live: number;
  logins: number;
}

/**
 * Live leases and the logins they hold, per template, from one visibility listing of the running lease workflows
 * (each keeps its live logins in its memo). `taskQueue` narrows it to one worker fleet's.
 */
export async function leaseCounts(client: Client, taskQueue?: string): Promise<Map<string, LeaseCount>> {
  const counts = new Map<string, LeaseCount>();
  const query = `WorkflowType = 'dynamicLease' AND ExecutionStatus = 'Running'${taskQueue ? ` AND TaskQueue = '${taskQueue}'` : ''}`;
  for await (const info of client.workflow.list({ query })) {
    const secretId = info.typedSearchAttributes.get(SearchAttribute.secretId);
    if (!secretId) continue;
    const logins = memoOf(info).liveLogins;
    // A lease whose logins are all revoked is ending (its last audit rows): no longer live.
    if (logins === 0) continue;
    const count = counts.get(secretId) ?? { live: 0, logins: 0 };
    count.live++;
    count.logins += Number(logins ?? 0);
    counts.set(secretId, count);
  }
  return counts;
}

/**
 * The managed secrets (those with a schedule), and any other secret whose rotation is running now; with `all`,
 * every secret Temporal still keeps rotations of. Visibility listings only, never a call per secret: the schedules
 * (ScheduleManager.states), then the rotations (see rotationQueries). `onProgress` counts the rotations read.
 */
export async function secretsOverview(
  client: Client,
  schedules: ScheduleManager,
  options: { all?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<SecretOverview[]> {
  const states = await schedules.states();
  const runs = new Map<string, WorkflowExecutionInfo[]>();
  const seen = new Set<string>();
  let read = 0;
  await mapLimit(
    rotationQueries(
      states.map((st) => st.secretId),
      Boolean(options.all),
    ),
    8,
    async (query) => {
      for await (const info of client.workflow.list({ query })) {
        options.onProgress?.(++read, 0);
        const secretId =
          info.typedSearchAttributes.get(SearchAttribute.secretId) ?? secretIdOfWorkflow(info.workflowId);
        if (!secretId || info.workflowId !== rotationWorkflowId(secretId) || seen.has(info.runId)) continue;
        seen.add(info.runId);
        runs.set(secretId, [...(runs.get(secretId) ?? []), info]);
      }
    },
  );
  // This fleet's leases: those of the schedules' task queue (another fleet's are its own status).
  const leases = await leaseCounts(client, schedules.taskQueue);
  const scheduled = new Map(states.map((st) => [st.secretId, st]));
  const running = [...runs].filter(([, history]) => history.some((r) => r.status.name === 'RUNNING')).map(([id]) => id);
  const others = options.all ? [...runs.keys()] : running;
  const ids = [...new Set([...scheduled.keys(), ...others, ...leases.keys()])].sort((a, b) => a.localeCompare(b));
  return ids.map((secretId) => {
    const history = (runs.get(secretId) ?? []).sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
    const schedule = scheduled.get(secretId);
    const latest = history[0];
    const lastCompleted = history.find((r) => r.status.name === 'COMPLETED' && memoOf(r).phase === 'completed');
    // A run that continued as new (a long grace, its history at the ceiling) is the same rotation going on.
    const lastFailed = history.find(
      (r) => !['RUNNING', 'COMPLETED', 'CONTINUED_AS_NEW'].includes(r.status.name) && !rolledBack(r),
    );
    return {
      secretId,
      state: latest ? stateOf(latest) : 'never rotated',
      ...(latest && phaseOf(latest) ? { phase: phaseOf(latest)! } : {}),
      paused: schedule?.paused ?? false,
      ...(lastCompleted?.closeTime ? { lastRotatedAt: lastCompleted.closeTime.toISOString() } : {}),
      ...(schedule?.nextRunAt ? { nextDueAt: schedule.nextRunAt } : {}),
      ...(lastFailed ? { lastFailure: failureOf(lastFailed) } : {}),
      ...(latest ? { runId: latest.runId } : {}),
      ...(leases.has(secretId) ? { leases: leases.get(secretId)! } : {}),
      ...credentialOf(lastCompleted),
    };
  });
}

/** Secret ids that can go in a visibility query's string literal as they are. */
const QUERYABLE_ID = /^[A-Za-z0-9/_+=.@:-]+$/;
const IDS_PER_QUERY = 100;

/**
 * The visibility queries that find the rotations the overview needs: every rotation with `all`; otherwise the
 * running ones and those of the managed secrets (in chunks of 100 ids), so the cost follows the fleet, not how
 * many runs Temporal still keeps. An id that cannot be quoted safely falls back to reading every rotation.
 */
export function rotationQueries(managed: string[], all: boolean): string[] {
  const base = `WorkflowType = 'rotateSecret'`;
  if (all || managed.some((id) => !QUERYABLE_ID.test(id))) return [base];
  const chunks: string[] = [];
  for (let i = 0; i < managed.length; i += IDS_PER_QUERY) {
    const ids = managed.slice(i, i + IDS_PER_QUERY).map((id) => `'${id}'`);
    chunks.push(`${base} AND ${SearchAttribute.secretId.name} IN (${ids.join(', ')})`);
  }
  return [`${base} AND ExecutionStatus = 'Running'`, ...chunks];
}

function credentialOf(run: WorkflowExecutionInfo | undefined): Pick<SecretOverview, 'credential'> {
  const credential = run
    ? (memoOf(run).credential as { notAfter?: unknown; renewsAt?: unknown } | undefined)
    : undefined;
  return typeof credential?.notAfter === 'string' && typeof credential.renewsAt === 'string'
    ? { credential: { notAfter: credential.notAfter, renewsAt: credential.renewsAt } }
    : {};
}

/** A rotation that was rolled back ends FAILED (to stand out in the Temporal UI) but did what it was asked. */
function rolledBack(run: WorkflowExecutionInfo): boolean {
  return run.status.name === 'FAILED' && phaseOf(run) === 'rolled-back';
}

function stateOf(run: WorkflowExecutionInfo): SecretOverview['state'] {
  if (run.status.name === 'COMPLETED' || rolledBack(run)) return 'idle';
  if (run.status.name !== 'RUNNING' && run.status.name !== 'CONTINUED_AS_NEW') return 'failed';
  const phase = phaseOf(run);
  if (phase === 'grace') return 'in grace';
  if (phase === 'awaiting-sessions') return 'awaiting sessions';
  return 'rotating';
}

function phaseOf(run: WorkflowExecutionInfo): Phase | undefined {
  return (
    (run.typedSearchAttributes.get(SearchAttribute.phase) as Phase | undefined) ??
    (memoOf(run).phase as Phase | undefined)
  );
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
