import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/shared/duration';
import { InvalidInputError } from '../../src/shared/errors';

describe('parseDuration', () => {
  it('reads units and combinations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1500')).toBe(1500);
    expect(parseDuration(0)).toBe(0);
  });

  it('names the text it cannot read', () => {
    expect(() => parseDuration('30x', 'grace')).toThrow(InvalidInputError);
    expect(() => parseDuration('30x', 'grace')).toThrow('grace: "30x" is not a duration');
    expect(() => parseDuration('1h 30m')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
    expect(() => parseDuration(-1)).toThrow(/not a duration/);
  });
});

describe('formatDuration', () => {
  it('prints what people read', () => {
    expect(formatDuration(120)).toBe('120ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(5_400_000)).toBe('1h30m');
  });
});
