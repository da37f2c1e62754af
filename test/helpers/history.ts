import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { rotorWorkflowBundle } from './workflow-bundle';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Timestamp = { seconds: number; nanos: number } | null;

/**
 * The local activity a history event records, if it is one: Temporal's core writes each as a `core_local_activity`
 * marker whose first payload is JSON with the activity's type and when it completed (the worker's clock).
 */
export function localActivityOf(event: HistoryEvent): { type: string; completedMs: number } | undefined {
  const marker = event.markerRecordedEventAttributes;
  if (marker?.markerName !== 'core_local_activity') return undefined;
  const data = marker.details?.data?.payloads?.[0]?.data;
  if (!data) return undefined;
  const info = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type: string; complete_time: Timestamp };
  return {
    type: info.activity_type,
    completedMs: info.complete_time ? info.complete_time.seconds * 1000 + info.complete_time.nanos / 1e6 : NaN,
  };
}

/** The types of the local activities a history records, in order. */
export function localActivityTypes(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => localActivityOf(e)?.type ?? []);
}

/** The types of the ordinary activities a history schedules, in order. */
export function scheduledActivityTypes(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

/**
 * Replays the history of every workflow on `taskQueue` with the current workflow code, as a worker does after its
 * cache evicts a workflow or it restarts, and returns the failures (`[]` when all replay). Catches what live runs
 * alone cannot: code that issues its commands in another order on replay than it did live.
 */
export async function replayFailures(client: Client, taskQueue: string): Promise<string[]> {
  const workflowBundle = await rotorWorkflowBundle();
  const failures: string[] = [];
  let replayed = 0;
  for await (const execution of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    replayed++;
    await Worker.runReplayHistory({ workflowBundle }, history, execution.workflowId).catch((error: Error) =>
      failures.push(`${execution.workflowId}: ${error.message.slice(0, 300)}`),
    );
  }
  if (replayed === 0) failures.push(`no workflow on ${taskQueue} to replay`);
  return failures;
}
