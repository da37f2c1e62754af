import { compact } from '../shared/compact';
import { storableText } from '../shared/audit-text';
import { log } from '@temporalio/activity';
import { msUntilWindowOpens } from '../schedules/window';
import { InvalidInputError } from 'rotor-consumers/core';
import type { Alert, AlertDelivery, AuditEvent, RotationEnd } from '../shared/reporting';
import type { WindowConfig } from '../shared/rotation';
import type { ActivityDeps, AuditSink } from './ports';

/**
 * What a rotation tells the outside world, as activities: audit events, alerts, its outcome in the metrics, and the
 * wait for a schedule's window. None of them sees a secret value.
 */
export function createReportingActivities({
  audit,
  alerts,
  metrics,
}: Pick<ActivityDeps, 'audit' | 'alerts' | 'metrics'>) {
  return {
    /**
     * Appends a rotation's audit events, in order. Idempotent: the audit store writes each event id once, so a
     * retried attempt does not duplicate. Without an audit store (no ROTOR_AUDIT_URL) the events only reach the log.
     */
    async appendAudit(events: AuditEvent[]): Promise<{ appended: number; duplicates: number }> {
      let appended = 0;
      let duplicates = 0;
      for (const event of events) {
        if (!audit) {
          log.info('audit event (no audit store configured)', { ...event });
          continue;
        }
        if ((await appendOrNote(audit, event)) === 'appended') appended++;
        else duplicates++;
      }
      return { appended, duplicates };
    },

    /** Sends an alert to its routes; a route that cannot be reached is reported, not thrown, so it can be audited. */
    async notify({ alert, routes }: { alert: Alert; routes: string[] }): Promise<AlertDelivery[]> {
      if (!alerts) {
        log.warn('alert not sent: no alert routes configured on this worker', {
          kind: alert.kind,
          secretId: alert.secretId,
        });
        return routes.map((route) => ({
          route,
          ok: false,
          attempts: 0,
          error: 'no alert routes are configured on this worker (rotor worker -f rotor.yaml)',
        }));
      }
      const deliveries = await alerts.notify(alert, routes);
      for (const d of deliveries) {
        const fields = { kind: alert.kind, secretId: alert.secretId, route: d.route, attempts: d.attempts };
        if (d.ok) log.info('alert sent', fields);
        else log.warn('alert not delivered', { ...fields, error: d.error });
      }
      return deliveries;
    },

    /** How long a scheduled rotation waits for its allowed window (a local activity: pure, time-zone aware). */
    async untilWindowOpens({ window }: { window: WindowConfig }): Promise<number> {
      return msUntilWindowOpens(new Date(), window);
    },

    /** Counts the rotation's outcome in the worker's metrics. */
    async rotationEnded(end: RotationEnd): Promise<void> {
      metrics?.rotationEnded(end.rotator ?? 'unknown', end.outcome, end.secretId);
    },
  };
}

/**
 * Appends `event`; if the store refuses it (a field it cannot hold), appends under the same id a record that says
 * so, so one bad event neither blocks nor silently drops the rest of its batch.
 */
async function appendOrNote(audit: AuditSink, event: AuditEvent): Promise<'appended' | 'duplicate'> {
  try {
    return await audit.append(event);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const { eventId, at, secretId, workflowId, runId, kind } = event;
    log.warn('audit event refused, recorded as refused', { eventId, kind, error: error.message });
    return audit.append({
      eventId,
      at,
      secretId,
      ...compact({ workflowId }),
      ...compact({ runId }),
      kind,
      detail: { refused: storableText(error.message, 500) },
    });
  }
}
