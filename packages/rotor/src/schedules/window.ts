/**
 * Allowed windows: the hours (and weekdays) of a time zone in which a scheduled rotation may start. Pure; runs in
 * an activity so a change of the time-zone database never changes a recorded workflow.
 */
import type { Weekday } from '../shared/vocabulary';
import type { WindowConfig } from '../shared/rotation';

const BY_JS_DAY: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MINUTE = 60_000;
/** A window recurs at least weekly; looking eight days ahead always finds the next opening. */
const HORIZON_MINUTES = 8 * 24 * 60;

/** Milliseconds from `now` until the window is open: 0 when it is open now. */
export function msUntilWindowOpens(now: Date, window: WindowConfig): number {
  const local = localClock(window.timezone);
  if (isOpen(local(now), window)) return 0;
  // Walk minute boundaries (the window's edges are whole minutes) until it opens.
  const firstBoundary = Math.ceil(now.getTime() / MINUTE) * MINUTE;
  for (let i = 0; i <= HORIZON_MINUTES; i++) {
    const at = firstBoundary + i * MINUTE;
    if (isOpen(local(new Date(at)), window)) return at - now.getTime();
  }
  throw new RangeError(`window ${window.start}-${window.end} ${window.timezone} never opens`);
}

interface LocalTime {
  weekday: number;
  minutes: number;
}

function isOpen({ weekday, minutes }: LocalTime, window: WindowConfig): boolean {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  const dayAllowed = (d: number) => !window.days || window.days.includes(BY_JS_DAY[(d + 7) % 7]!);
  if (start < end) return minutes >= start && minutes < end && dayAllowed(weekday);
  // Crosses midnight: the part after midnight belongs to the window that opened the day before.
  if (minutes >= start) return dayAllowed(weekday);
  return minutes < end && dayAllowed(weekday - 1);
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

/** A function giving the weekday and minute of the day of an instant in `timeZone`. */
function localClock(timeZone: string): (at: Date) => LocalTime {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  });
  return (at) => {
    const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
    return {
      weekday: BY_JS_DAY.indexOf(String(parts.weekday).toLowerCase().slice(0, 3) as Weekday),
      minutes: Number(parts.hour) * 60 + Number(parts.minute),
    };
  };
}
