import { InvalidInputError } from './errors';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses durations such as `90s`, `15m`, `1h30m`, `30d` or a plain number of milliseconds.
 * Throws InvalidInputError naming the text when it is not a duration.
 */
export function parseDuration(text: string | number, what = 'duration'): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return Math.floor(text);
    throw new InvalidInputError(`${what}: ${text} is not a duration`);
  }
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new InvalidInputError(`${what}: ${JSON.stringify(text)} is not a duration (examples: 90s, 15m, 1h30m, 30d)`);
  }
  return Math.round(parts.reduce((sum, [, n, unit]) => sum + Number(n) * UNIT_MS[unit!]!, 0));
}

/** Formats milliseconds for people: 1h30m, 45s, 120ms. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const out: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, secs] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= secs) {
      out.push(`${Math.floor(rest / secs)}${unit}`);
      rest %= secs;
    }
  }
  return out.join('');
}
