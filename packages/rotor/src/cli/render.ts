import { formatDuration } from 'rotor-consumers/core';
import type { BakeStatus, RotationStatus, StepRecord } from '../shared/status';

const MARK: Record<string, string> = { ok: '✓', failed: '✗', running: '…' };

/** One line of the step timeline: mark, step, duration, attempts and outcome (never a value). */
export function stepLine(record: StepRecord): string {
  const state = record.error ? 'failed' : record.endedAt ? 'ok' : 'running';
  const took = record.endedAt ? formatDuration(Date.parse(record.endedAt) - Date.parse(record.startedAt)) : '';
  const attempts = record.attempts && record.attempts > 1 ? ` (attempt ${record.attempts})` : '';
  const detail = record.error ?? record.outcome ?? '';
  return `  ${MARK[state]} ${record.step.padEnd(11)}${took.padStart(8)}  ${detail}${attempts}`;
}

/** Prints each step once, when it ends, and each phase change; feed it successive statuses. */
export function createTimelinePrinter(write: (line: string) => void): (status: RotationStatus) => void {
  const printed = new Set<string>();
  let lastPhase: string | undefined;
  return (status) => {
    status.steps.forEach((record, index) => {
      const key = `${index}:${record.step}`;
      if (record.endedAt && !printed.has(key)) {
        printed.add(key);
        write(stepLine(record));
      }
    });
    if (status.phase !== lastPhase) {
      lastPhase = status.phase;
      if (status.phase === 'grace' && status.graceEndsAt) {
        write(`  ⧗ grace      until ${status.graceEndsAt}: rollback possible until then, then retire`);
        if (status.bake) write(`  ⧗ bake       watching consumers' logins until ${status.bake.endsAt}`);
      }
      if (status.phase === 'publishing' && status.holdUntil) {
        write(
          `  ⧗ publishing until ${status.holdUntil}: the new key is published; it signs once every verifier can know it`,
        );
      }
      if (status.phase === 'awaiting-sessions') {
        write(
          `  ⧗ sessions   ${status.liveSessions ?? '?'} live on the previous login; retiring when they end (at the latest ${status.sessionsWaitEndsAt})`,
        );
      }
    }
  };
}

/** The full status as people read it. */
export function renderStatus(status: RotationStatus): string {
  const lines = [
    `secret     ${status.secretId}`,
    `phase      ${status.phase}`,
    `rotator    ${status.rotator ?? '-'}`,
    `token      ${status.token || '-'}`,
    `current    ${status.versions.current ?? '-'}`,
    `previous   ${status.versions.previous ?? '-'}`,
    `pending    ${status.versions.pending ?? '-'}`,
    `started    ${status.startedAt}`,
  ];
  if (status.holdUntil && status.phase === 'publishing')
    lines.push(`published  the new version becomes current at ${status.holdUntil}`);
  if (status.graceEndsAt) lines.push(`grace end  ${status.graceEndsAt}`);
  if (status.bake) lines.push(`bake       ${bakeLine(status.bake)}`);
  if (status.sessionsWaitEndsAt)
    lines.push(
      `sessions   ${status.liveSessions ?? '?'} live on the previous login; waiting until ${status.sessionsWaitEndsAt}`,
    );
  if (status.endedAt) lines.push(`ended      ${status.endedAt}`);
  if (status.trigger)
    lines.push(`trigger    ${status.trigger.kind}${status.trigger.by ? ` by ${status.trigger.by}` : ''}`);
  if (status.rollbackReason) lines.push(`rollback   ${status.rollbackReason}`);
  if (status.lastError) lines.push(`last error ${status.lastError}`);
  if (status.steps.length > 0) lines.push('steps', ...status.steps.map(stepLine));
  return lines.join('\n');
}

/** The bake window in one line: its verdict or its end, and what consumers reported. Counts only. */
export function bakeLine(bake: BakeStatus): string {
  const { next, previous } = bake;
  const when = bake.verdict ?? `open until ${bake.endsAt}${bake.extensions ? ` (extended ${bake.extensions}×)` : ''}`;
  return (
    `${when}; new version: ${next.successes} logins, ${next.failures} refused, from ${next.instances} instances; ` +
    `previous: ${previous.successes} logins, ${previous.failures} refused`
  );
}

/** A plain table: a header row and left-aligned columns, as `kubectl get` prints them. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "in 3h12m" / "5m ago" for a time, relative to now. */
export function relativeTime(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const delta = Date.parse(iso) - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}
