import { describe, expect, it } from 'vitest';
import { readEnv } from '../../packages/rotor/src/config/env';
import { retirementFromTags } from '../../packages/rotor/src/rotators/retirement';
import { formatDuration, parseDuration } from 'rotor-consumers/core';
import { InvalidInputError, InvalidSecretError } from 'rotor-consumers/core';

describe('parseDuration', () => {
  it('reads units and combinations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('1w')).toBe(7 * 86_400_000);
  });

  it('names the text it cannot read', () => {
    expect(() => parseDuration('30x', 'grace')).toThrow(InvalidInputError);
    expect(() => parseDuration('30x', 'grace')).toThrow(
      'grace: "30x" is not a duration (examples: 90s, 15m, 1h30m, 30d)',
    );
    expect(() => parseDuration('1h 30m')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
    expect(() => parseDuration('-1s')).toThrow(/not a duration/);
  });

  it('refuses a number without a unit, naming the value and showing examples', () => {
    for (const bare of ['60', '0', '1500', ' 60 ', '1.5']) {
      expect(() => parseDuration(bare, '--grace')).toThrow(InvalidInputError);
      expect(() => parseDuration(bare, '--grace')).toThrow(
        `--grace: ${JSON.stringify(bare)} has no unit (examples: 90s, 15m, 1h30m, 30d)`,
      );
    }
  });
});

describe('durations without a unit outside the CLI', () => {
  it('ROTOR_DEFAULT_GRACE=60 is refused, naming the variable', () => {
    expect(() => readEnv({ ROTOR_DEFAULT_GRACE: '60' })).toThrow(/ROTOR_DEFAULT_GRACE: .*"60" has no unit/);
    expect(readEnv({ ROTOR_DEFAULT_GRACE: '60s' }).ROTOR_DEFAULT_GRACE).toBe(60_000);
  });

  it('the rotor:live-sessions-max-wait tag without a unit is refused', () => {
    expect(() => retirementFromTags('s', { 'rotor:live-sessions-max-wait': '60' })).toThrow(InvalidSecretError);
    expect(() => retirementFromTags('s', { 'rotor:live-sessions-max-wait': '60' })).toThrow(/"60" has no unit/);
    expect(retirementFromTags('s', { 'rotor:live-sessions-max-wait': '60s' }).maxWaitMs).toBe(60_000);
  });
});

describe('formatDuration', () => {
  it('prints what people read', () => {
    expect(formatDuration(120)).toBe('120ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(5_400_000)).toBe('1h30m');
  });
});
