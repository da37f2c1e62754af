import { InvalidInputError } from './errors';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Shown with every refused duration. */
export const DURATION_EXAMPLES = '(examples: 90s, 15m, 1h30m, 30d)';

/**
 * Parses a duration with units: `250ms`, `90s`, `15m`, `1h30m`, `30d`, `1w`. A number without a unit is refused
 * (`60` could mean seconds to one reader and milliseconds to another), as is anything else that is not a duration.
 * Throws InvalidInputError naming `what` and the text, with examples.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    throw new InvalidInputError(`${what}: ${JSON.stringify(text)} has no unit ${DURATION_EXAMPLES}`);
  }
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== trimmed) {
    throw new InvalidInputError(`${what}: ${JSON.stringify(text)} is not a duration ${DURATION_EXAMPLES}`);
  }
  return Math.round(parts.reduce((sum, [, n, unit]) => sum + Number(n) * UNIT_MS[unit!]!, 0));
}

/** Formats milliseconds for people: 1h30m, 45s, 120ms. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const out: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, secs] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= secs) {
      out.push(`${Math.floor(rest / secs)}${unit}`);
      rest %= secs;
    }
  }
  return out.join('');
}
