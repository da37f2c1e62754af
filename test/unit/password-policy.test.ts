import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PASSWORD_POLICY,
  generatePassword,
  resolvePasswordPolicy,
} from '../../packages/rotor/src/rotators/password-policy';
import { InvalidInputError } from 'rotor-consumers/core';

describe('generatePassword', () => {
  it('makes 32 characters of every class by default, none of the excluded ones', () => {
    for (let i = 0; i < 200; i++) {
      const password = generatePassword();
      expect(password).toHaveLength(32);
      expect(password).toMatch(/[A-Z]/);
      expect(password).toMatch(/[a-z]/);
      expect(password).toMatch(/[0-9]/);
      expect(password).toMatch(/[^A-Za-z0-9]/);
      for (const c of DEFAULT_PASSWORD_POLICY.excludeCharacters) expect(password).not.toContain(c);
    }
  });

  it('never repeats itself', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => generatePassword()));
    expect(seen.size).toBe(1000);
  });

  it('honours length, excluded classes and excluded characters', () => {
    const password = generatePassword({ length: 64, excludePunctuation: true, excludeCharacters: 'aeiouAEIOU01' });
    expect(password).toHaveLength(64);
    expect(password).toMatch(/^[A-Za-z0-9]+$/);
    expect(password).not.toMatch(/[aeiouAEIOU01]/);
  });

  it('uses every allowed character over many draws', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++)
      for (const c of generatePassword({ length: 64 })) counts.set(c, (counts.get(c) ?? 0) + 1);
    // 26 + 26 + 10 letters and digits, 32 punctuation less the 11 excluded (space is not punctuation)
    expect(counts.size).toBe(26 + 26 + 10 + 32 - 11);
  });
});

describe('resolvePasswordPolicy', () => {
  it('rejects policies no password can satisfy', () => {
    expect(() => resolvePasswordPolicy({ length: 4 })).toThrow(InvalidInputError);
    expect(() => resolvePasswordPolicy({ length: 10.5 })).toThrow(/length 10.5/);
    expect(() =>
      resolvePasswordPolicy({
        excludeLowercase: true,
        excludeUppercase: true,
        excludeNumbers: true,
        excludePunctuation: true,
      }),
    ).toThrow(/every character is excluded/);
  });
});
