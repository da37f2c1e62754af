import { compact } from '../shared/compact';
import { CancellationScope, condition, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { storableText } from '../shared/audit-text';
import type { RotorActivities } from '../activities';
import { formatDuration } from 'rotor-consumers/core';
import { ALERT_OPTIONS, AUDIT_OPTIONS } from './activity-options';
import { localFirst, type LocalAttempts } from './local-first';
import type { AlertKind, AuditEvent, RotationEnd } from '../shared/reporting';
import type { Phase } from '../shared/vocabulary';
import type { RotationInput } from '../shared/rotation';

/** Phases that are long by design: grace and publishing wait on purpose, awaiting-sessions has its own alert and bound. */
const STUCK_EXEMPT: readonly Phase[] = ['grace', 'publishing', 'awaiting-sessions'];

/** What a rotation tells the outside world: audit events, alerts and its outcome, all through activities. */
export interface Reporter {
  /** Appends an event to the audit trail (batched, in order, never blocking the rotation). */
  audit(event: Omit<AuditEvent, 'eventId' | 'at' | 'secretId' | 'workflowId' | 'runId'>): void;
  /** The rotation waits now (grace, publishing, sessions): appends what is held, and every later event at once. */
  release(): void;
  /** Sends an alert to the secret's routes; a delivery that fails is audited. */
  alert(kind: AlertKind, message: string, fields?: { phase?: Phase; step?: string }): void;
  /** Raises a `stuck` alert when a working phase lasts longer than the budget. */
  watchPhases(current: () => { seq: number; phase: Phase }): void;
  /** Records the outcome for metrics and the audit trail. */
  ended(
    end: Omit<RotationEnd, 'secretId'>,
    event: { versionId?: string; durationMs: number; detail?: AuditEvent['detail'] },
  ): void;
  /** Waits until every audit append and alert has been delivered or given up on. */
  settle(): Promise<void>;
  /** Whether nothing is held, being appended or being delivered (checked right before the run continues as new). */
  idle(): boolean;
}

/**
 * The rotation's reporter. Audit appends retry until they land (the audit trail must not lose an event); an alert
 * is tried by the worker with its own backoff, and a failed delivery becomes an audit event. Its activities run in
 * non-cancellable scopes, so a cancelled rotation still records how it ended. With `local` (the run's LocalAttempts),
 * appends and the outcome run local-first (the last append of a healthy rotation then costs no workflow task of its
 * own), one local attempt at a time with the steps', and alerts wait until none is in flight.
 */
export function createReporter(input: RotationInput, options: { local?: LocalAttempts } = {}): Reporter {
  const { workflowId, runId } = workflowInfo();
  const attempts = options.local;
  const record = attempts
    ? localFirst<RotorActivities>(AUDIT_OPTIONS, attempts)
    : proxyActivities<RotorActivities>(AUDIT_OPTIONS);
  const deliver = proxyActivities<RotorActivities>(ALERT_OPTIONS);
  const routes = input.reporting?.alerts ?? [];
  const pending: Promise<unknown>[] = [];
  let buffer: AuditEvent[] = [];
  let flushing: Promise<void> | undefined;
  let sequence = 0;
  let done = false;
  // Audit events of the working phases are held until the rotation first waits (grace, publishing, sessions), fails
  // a step, or ends, then appended in one batch: every event, in order, without an append (and the workflow task its
  // completion brings) between steps. Held events are part of the workflow's state: a worker that crashes replays
  // them from history, none is lost.
  let holding = true;

  function flush(): Promise<void> {
    if (!flushing && buffer.length > 0) {
      flushing = (async () => {
        while (buffer.length > 0) {
          const batch = buffer;
          buffer = [];
          try {
            await CancellationScope.nonCancellable(() => record.appendAudit(batch));
          } catch (error) {
            // Only a non-retryable rejection gets here: a bug in rotor, not an outage. The rotation goes on.
            log.error('audit events rejected', {
              secretId: input.secretId,
              events: batch.length,
              error: (error as Error).message,
            });
          }
        }
        flushing = undefined;
      })();
      pending.push(flushing);
    }
    return flushing ?? Promise.resolve();
  }

  const reporter: Reporter = {
    audit(event) {
      buffer.push({
        ...clean(event),
        eventId: `${workflowId}/${runId}/${sequence++}`,
        at: new Date().toISOString(),
        secretId: input.secretId,
        workflowId,
        runId,
      });
      if (!holding || event.kind === 'step-failed') void flush();
    },

    release() {
      holding = false;
      if (buffer.length > 0) void flush();
    },

    alert(kind, message, fields = {}) {
      if (routes.length === 0) return;
      const alert = {
        kind,
        message,
        secretId: input.secretId,
        workflowId,
        runId,
        at: new Date().toISOString(),
        ...fields,
      };
      pending.push(
        CancellationScope.nonCancellable(async () => {
          // No command while a step's local attempt runs (LocalAttempts): the alert leaves when it has ended.
          await attempts?.idle();
          return deliver.notify({ alert, routes });
        }).then(
          (deliveries) => {
            for (const d of deliveries) {
              reporter.audit({
                kind: d.ok ? 'alert-sent' : 'alert-failed',
                outcome: kind,
                detail: { route: d.route, attempts: d.attempts, ...compact({ error: d.error }) },
              });
            }
          },
          (error: Error) => {
            log.warn('alert not delivered', { secretId: input.secretId, kind, error: error.message });
            reporter.audit({
              kind: 'alert-failed',
              outcome: kind,
              detail: { routes: routes.join(','), error: error.message },
            });
          },
        ),
      );
    },

    watchPhases(current) {
      const budget = input.reporting?.stuckPhaseBudgetMs;
      if (!budget || routes.length === 0) return;
      // Not cancellable: a cancelled rotation still compensates, and a compensation that hangs must still alert.
      // The watch ends when the reporter settles.
      void CancellationScope.nonCancellable(async () => {
        while (!done) {
          const { seq, phase } = current();
          const moved = await condition(() => done || current().seq !== seq, budget);
          if (done || moved) continue;
          if (!STUCK_EXEMPT.includes(phase)) {
            reporter.alert(
              'stuck',
              `rotation of ${input.secretId} has been ${phase} for more than ${formatDuration(budget)}`,
              { phase },
            );
          }
          await condition(() => done || current().seq !== seq);
        }
      });
    },

    ended(end, event) {
      reporter.audit({ kind: 'outcome', outcome: end.outcome, ...event });
      pending.push(CancellationScope.nonCancellable(() => record.rotationEnded({ ...end, secretId: input.secretId })));
    },

    async settle() {
      done = true;
      holding = false;
      let settled = false;
      const drain = async () => {
        // Alerts settle into audit events, which may start another flush: wait until nothing is left.
        while (pending.length > 0) await pending.shift();
        await flush();
      };
      const draining = drain().then(() => (settled = true));
      const budget = input.reporting?.stuckPhaseBudgetMs;
      if (
        budget &&
        routes.length > 0 &&
        !(await CancellationScope.nonCancellable(() => condition(() => settled, budget)))
      ) {
        // Appends retry until the audit database answers; meanwhile the rotation stays open. Say so.
        reporter.alert(
          'stuck',
          `rotation of ${input.secretId} has ended, but its audit trail has not been written for ${formatDuration(budget)}: check the audit database (ROTOR_AUDIT_URL)`,
        );
      }
      await draining;
      await drain();
    },

    idle() {
      return buffer.length === 0 && flushing === undefined && pending.length === 0;
    },
  };
  return reporter;
}

/**
 * An event the audit store accepts: texts as `storableText` makes them, detail values primitive. Signals
 * can carry anything, and one refused event must not cost the others of its batch.
 */
function clean<E extends Partial<AuditEvent>>(event: E): E {
  const cut = (v: string) => storableText(v);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(event)) out[key] = typeof value === 'string' ? cut(value) : value;
  if (event.detail) {
    out.detail = Object.fromEntries(
      Object.entries(event.detail).map(([k, v]) => [
        k,
        v === null || typeof v === 'number' || typeof v === 'boolean'
          ? v
          : cut(typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))),
      ]),
    );
  }
  return out as E;
}

/**
 * For workflows other than a rotation (leases, re-wraps): appends one audit event of `secretId` at `step`, its id the
 * run's and a sequence number (names, ids and counts: never a value).
 */
export function workflowAuditor(
  secretId: string,
  step: string,
): (kind: AuditEvent['kind'], fields: Pick<AuditEvent, 'outcome' | 'actor' | 'detail'>) => Promise<unknown> {
  const { appendAudit } = proxyActivities<RotorActivities>(AUDIT_OPTIONS);
  const { workflowId, runId } = workflowInfo();
  let sequence = 0;
  return (kind, fields) =>
    appendAudit([
      {
        eventId: `${workflowId}/${runId}/${sequence++}`,
        at: new Date().toISOString(),
        secretId,
        workflowId,
        runId,
        kind,
        step,
        ...fields,
      },
    ]);
}
