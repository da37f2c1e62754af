/**
 * Alerts to Slack-compatible incoming webhooks. An alert carries ids, words and times only, never a value.
 *
 * A webhook URL is itself a credential (Slack's embeds a token), and so may be the optional header: neither
 * appears in an error message. Targets are named by `name`.
 */

import type { Alert, AlertKind } from '../shared/reporting';

export type { Alert, AlertKind } from '../shared/reporting';

/** Where alerts go. `url` and `header.value` are secrets: they are sent, never printed. */
export interface WebhookTarget {
  name: string;
  url: string;
  header?: { name: string; value: string };
}

export interface DeliveryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** Wait before the second attempt; doubles after each failure (default 500). */
  initialDelayMs?: number;
  /** Ceiling on any wait, `Retry-After` included (default 10 000). */
  maxDelayMs?: number;
  /** Time allowed for each attempt (default 5000). */
  timeoutMs?: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

/** Thrown by `deliverAlert` when the last attempt failed, or at once on a 4xx other than 429. */
export class AlertDeliveryError extends Error {
  constructor(
    readonly target: string,
    readonly attempts: number,
    detail: string,
    readonly lastStatus?: number,
  ) {
    super(
      `alert delivery to webhook ${JSON.stringify(target)} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${detail}`,
    );
    this.name = 'AlertDeliveryError';
  }
}

const TITLES: Record<AlertKind, string> = {
  'rotation-failed': 'Rotation failed',
  compensated: 'Rotation compensated',
  'rolled-back': 'Rotation rolled back',
  'awaiting-sessions': 'Waiting for sessions to end',
  stuck: 'Rotation stuck',
  'bake-inconclusive': 'Bake window ended without enough evidence',
  'auto-rollback-withheld': 'Automatic rollback withheld: daily cap reached',
  'certificate-expiring': 'Certificate expiring without a renewal',
};

/**
 * The alert as Slack's incoming webhooks take it (`text` for notifications, `blocks` for the message), plus a
 * `rotor` object holding the alert's fields for receivers that are not Slack. Texts are cut to Slack's limits,
 * since Slack refuses an oversized block with a 400 that no retry would fix.
 */
export function slackPayload(alert: Alert): object {
  const title = TITLES[alert.kind];
  const fields = [
    ['Kind', alert.kind],
    ['Secret', alert.secretId],
    ['Phase', alert.phase],
    ['Step', alert.step],
    ['Workflow', alert.workflowId],
    ['Run', alert.runId],
  ].flatMap(([label, value]) => (value ? [{ type: 'mrkdwn', text: cut(`*${label}*\n${mrkdwn(value)}`, 2000) }] : []));
  const link = alert.uiUrl ? ` <${alert.uiUrl}|Open in Temporal UI>` : '';
  return {
    text: cut(`${title}: ${mrkdwn(alert.secretId)}: ${mrkdwn(alert.message)}${link}`, 3000),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: cut(`${title}: ${alert.secretId}`, 150) } },
      { type: 'section', fields },
      { type: 'section', text: { type: 'mrkdwn', text: cut(mrkdwn(alert.message), 3000) } },
      ...(alert.uiUrl
        ? [
            {
              type: 'actions',
              elements: [
                { type: 'button', text: { type: 'plain_text', text: 'Open in Temporal UI' }, url: alert.uiUrl },
              ],
            },
          ]
        : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `rotor · ${mrkdwn(alert.at)}` }] },
    ],
    rotor: {
      kind: alert.kind,
      secretId: alert.secretId,
      workflowId: alert.workflowId,
      runId: alert.runId,
      phase: alert.phase,
      step: alert.step,
      message: alert.message,
      uiUrl: alert.uiUrl,
      at: alert.at,
    },
  };
}

/**
 * POSTs the alert as JSON to `target`. Network errors, timeouts, 429 and 5xx are retried with exponential
 * backoff (a numeric `Retry-After` is honoured, capped at `maxDelayMs`); any other non-2xx answer is final.
 * Resolves with the attempt that succeeded and its status; throws AlertDeliveryError otherwise.
 */
export async function deliverAlert(
  target: WebhookTarget,
  alert: Alert,
  options: DeliveryOptions = {},
): Promise<{ attempts: number; status: number }> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const initialDelayMs = options.initialDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 5000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (target.header) headers[target.header.name] = target.header.value;
  const request = { method: 'POST', headers, body: JSON.stringify(slackPayload(alert)) };

  for (let attempt = 1; ; attempt++) {
    const result = await attemptOnce(options.fetch ?? fetch, target.url, request, timeoutMs);
    if (result.delivered) return { attempts: attempt, status: result.status };
    if (!result.retryable)
      throw new AlertDeliveryError(target.name, attempt, `${result.detail} (not retried)`, result.status);
    if (attempt >= attempts) throw new AlertDeliveryError(target.name, attempt, result.detail, result.status);
    await sleep(Math.min(maxDelayMs, result.retryAfterMs ?? initialDelayMs * 2 ** (attempt - 1)));
  }
}

type AttemptResult =
  | { delivered: true; status: number }
  | { delivered: false; retryable: boolean; detail: string; status?: number; retryAfterMs?: number };

async function attemptOnce(
  doFetch: typeof fetch,
  url: string,
  request: RequestInit,
  timeoutMs: number,
): Promise<AttemptResult> {
  let response: Response;
  try {
    response = await doFetch(url, { ...request, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    return { delivered: false, retryable: true, detail: describeFetchError(err, timeoutMs) };
  }
  // Drain the body so the connection can be reused; what the receiver says does not matter.
  await response.arrayBuffer().catch(() => undefined);
  const status = response.status;
  if (response.ok) return { delivered: true, status };
  return {
    delivered: false,
    retryable: status === 429 || status >= 500,
    detail: `HTTP ${status}`,
    status,
    retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
  };
}

/** Names the failure without the error's own message, which may quote the URL. */
function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no answer within ${timeoutMs}ms`;
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return typeof code === 'string' ? `network error (${code})` : 'network error';
}

/** `Retry-After` in seconds; the HTTP-date form is ignored and backoff applies. */
function retryAfterMs(header: string | null): number | undefined {
  return header && /^\d+$/.test(header.trim()) ? Number(header.trim()) * 1000 : undefined;
}

function mrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
