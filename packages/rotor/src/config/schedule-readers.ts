import { CronExpressionParser } from 'cron-parser';
import { formatDuration } from 'rotor-consumers/core';
import { WEEKDAYS, type Weekday } from '../shared/vocabulary';
import { type WindowConfig } from '../shared/rotation';
import { compact, describe, type Checker, type Node } from './checker';
import type { ScheduleConfig } from './types';

/* rotor.yaml's schedules: `every` or `cron`, jitter and the allowed window; and how a schedule reads for people. */

const MIN_EVERY_MS = 60_000;
const SCHEDULE_KEYS = ['every', 'offset', 'cron', 'timezone', 'jitter', 'window', 'renewAt', 'check', 'alertBefore'];
const LIFETIME_KEYS = ['renewAt', 'check', 'alertBefore'];
/** How often a `renewAt` schedule looks at the certificate unless told: hourly, as certbot's timers and cert-manager do. */
const DEFAULT_CHECK_MS = 3_600_000;
const MIN_CHECK_MS = 10_000;
const WINDOW_KEYS = ['start', 'end', 'timezone', 'days'];
/** The only macros kept: they are 5-field expressions in disguise, which Temporal reads too. */
const CRON_MACROS = ['@hourly', '@daily', '@weekly', '@monthly'];
const CLOCK = /^([01]\d|2[0-3]):[0-5]\d$/;

/** A schedule for people: "every 30d (jitter 30m, window 02:00-05:00 Europe/Berlin mon-fri)", "cron 0 3 * * 1 UTC". */
export function describeSchedule(s: ScheduleConfig): string {
  const head =
    s.kind === 'every'
      ? `every ${formatDuration(s.everyMs)}`
      : s.kind === 'cron'
        ? `cron ${s.cron} ${s.timezone}`
        : `renew at ${Math.round(s.renewAt * 100)}% of lifetime`;
  const details: string[] = [];
  if (s.kind === 'lifetime') details.push(`checked every ${formatDuration(s.checkEveryMs)}`);
  if (s.kind === 'lifetime' && s.alertBeforeMs !== undefined)
    details.push(`alert ${formatDuration(s.alertBeforeMs)} before expiry`);
  if (s.kind === 'every' && s.offsetMs !== undefined) details.push(`offset ${formatDuration(s.offsetMs)}`);
  if (s.jitterMs !== undefined) details.push(`jitter ${formatDuration(s.jitterMs)}`);
  if (s.window) {
    const days = s.window.days ? ` ${describeDays(s.window.days)}` : '';
    details.push(`window ${s.window.start}-${s.window.end} ${s.window.timezone}${days}`);
  }
  return details.length > 0 ? `${head} (${details.join(', ')})` : head;
}

/** Days in week order, runs of three or more as ranges: "mon-fri", "mon,wed,sat". */
function describeDays(days: readonly Weekday[]): string {
  const sorted = WEEKDAYS.filter((d) => days.includes(d));
  const runs: Weekday[][] = [];
  for (const day of sorted) {
    const run = runs.at(-1);
    if (run && WEEKDAYS.indexOf(run.at(-1)!) + 1 === WEEKDAYS.indexOf(day)) run.push(day);
    else runs.push([day]);
  }
  return runs.map((run) => (run.length >= 3 ? `${run[0]}-${run.at(-1)}` : run.join(','))).join(',');
}

/** A schedule: exactly one of `every` (with `offset`) or `cron` (with `timezone`); `jitter` and `window` go with both. */
export function readSchedule(c: Checker, node: Node): ScheduleConfig | undefined {
  const schedule = c.section(node, SCHEDULE_KEYS);
  if (!schedule) return undefined;
  const everyMs = c.duration(schedule.at('every'), MIN_EVERY_MS);
  const offsetMs = c.duration(schedule.at('offset'), 0);
  const cron = readCron(c, schedule.at('cron'));
  const timezone = readTimeZone(c, schedule.at('timezone'));
  const jitterMs = c.duration(schedule.at('jitter'), 0);
  // A window's hours are read in the cron's time zone unless it names its own.
  const window = readWindow(c, schedule.at('window'), schedule.has('cron') ? timezone : undefined);
  const isEvery = schedule.has('every');
  const kinds = ['every', 'cron', 'renewAt'].filter((k) => schedule.has(k));
  if (kinds.length !== 1) {
    return c.add(
      schedule.path,
      `needs exactly one of every, cron or renewAt${kinds.length > 1 ? `, got ${kinds.join(' and ')}` : ''}`,
    );
  }
  if (schedule.has('renewAt')) {
    for (const key of ['offset', 'timezone'])
      if (schedule.has(key)) c.add(schedule.at(key).path, 'does not apply to renewAt schedules');
    const renewAt = readShare(c, schedule.at('renewAt'));
    const checkEveryMs = c.duration(schedule.at('check'), MIN_CHECK_MS) ?? DEFAULT_CHECK_MS;
    const alertBeforeMs = c.duration(schedule.at('alertBefore'), 0);
    return renewAt === undefined
      ? undefined
      : compact<ScheduleConfig>({ kind: 'lifetime', renewAt, checkEveryMs, jitterMs, alertBeforeMs, window });
  }
  for (const key of LIFETIME_KEYS)
    if (schedule.has(key)) c.add(schedule.at(key).path, 'only applies to renewAt schedules');
  if (!isEvery) {
    if (schedule.has('offset')) c.add(schedule.at('offset').path, 'only applies to every schedules');
    return cron === undefined
      ? undefined
      : compact<ScheduleConfig>({ kind: 'cron', cron, timezone: timezone ?? 'UTC', jitterMs, window });
  }
  if (schedule.has('timezone')) c.add(schedule.at('timezone').path, 'only applies to cron schedules');
  if (everyMs === undefined) return undefined;
  for (const [key, ms] of [
    ['offset', offsetMs],
    ['jitter', jitterMs],
  ] as const) {
    const at = schedule.at(key);
    if (ms !== undefined && ms >= everyMs)
      c.add(at.path, `${describe(at.value)} must be shorter than every (${formatDuration(everyMs)})`);
  }
  return compact<ScheduleConfig>({ kind: 'every', everyMs, offsetMs, jitterMs, window });
}

/** A share of a lifetime: `67%` or `2/3`, from 10% to 95% (a certificate renewed later has no time to be retried). */
function readShare(c: Checker, node: Node): number | undefined {
  const text = typeof node.value === 'number' ? String(node.value) : c.string(node);
  if (text === undefined) return undefined;
  const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  const fraction = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const share = percent ? Number(percent[1]) / 100 : fraction ? Number(fraction[1]) / Number(fraction[2]) : NaN;
  if (Number.isFinite(share) && share >= 0.1 && share <= 0.95) return share;
  return c.add(node.path, `${JSON.stringify(node.value)} is not a share of the lifetime from 10% to 95% (67% or 2/3)`);
}

/** A 5-field cron expression (or @hourly, @daily, @weekly, @monthly) that cron-parser accepts. */
function readCron(c: Checker, node: Node): string | undefined {
  const text = c.string(node);
  if (text === undefined) return undefined;
  const expression = text.trim();
  const reason = cronProblem(expression);
  if (reason === undefined) return expression;
  return c.add(node.path, `${JSON.stringify(text)} is not a 5-field cron expression: ${reason}`);
}

function cronProblem(expression: string): string | undefined {
  if (expression.startsWith('@')) {
    return CRON_MACROS.includes(expression) ? undefined : `the only macros allowed are ${CRON_MACROS.join(', ')}`;
  }
  const fields = expression.split(/\s+/).filter((f) => f !== '').length;
  if (fields !== 5)
    return `it has ${fields} field${fields === 1 ? '' : 's'}, not minute hour day-of-month month day-of-week`;
  try {
    CronExpressionParser.parse(expression);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** An IANA zone; its case is corrected ("europe/berlin" -> "Europe/Berlin") because Temporal's lookup is exact. */
function readTimeZone(c: Checker, node: Node): string | undefined {
  const text = c.string(node);
  if (text === undefined) return undefined;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en-US', { timeZone: text }).resolvedOptions().timeZone;
  } catch {
    return c.add(node.path, `${JSON.stringify(text)} is not an IANA time zone`);
  }
  return resolved.toLowerCase() === text.toLowerCase() ? resolved : text;
}

function readWindow(c: Checker, node: Node, defaultTimeZone = 'UTC'): WindowConfig | undefined {
  const window = c.section(node, WINDOW_KEYS);
  if (!window) return undefined;
  const start = readClock(c, window.at('start'));
  const end = readClock(c, window.at('end'));
  if (start !== undefined && start === end) {
    c.add(window.at('end').path, `${JSON.stringify(end)} equals start; leave window out to allow any time`);
  }
  const timezone = readTimeZone(c, window.at('timezone')) ?? defaultTimeZone;
  const days = readDays(c, window.at('days'));
  if (start === undefined || end === undefined) return undefined;
  return compact({ start, end, timezone, days });
}

function readClock(c: Checker, node: Node): string | undefined {
  if (!c.present(node, ' (HH:MM)')) return undefined;
  const text = c.string(node);
  if (text === undefined || CLOCK.test(text)) return text;
  return c.add(node.path, `${JSON.stringify(text)} is not a time of day as HH:MM (00:00 to 23:59)`);
}

function readDays(c: Checker, node: Node): Weekday[] | undefined {
  const items = c.list(node);
  if (!items) return undefined;
  if (items.length === 0) return c.add(node.path, 'is empty; list at least one day or leave days out');
  const days: Weekday[] = [];
  for (const item of items) {
    const day = c.oneOf(item, WEEKDAYS);
    if (day === undefined) continue;
    if (days.includes(day)) c.add(item.path, `${JSON.stringify(day)} is listed twice`);
    else days.push(day);
  }
  return days;
}

/** The keys given; the policy is also checked as a whole (a password must be possible). */
