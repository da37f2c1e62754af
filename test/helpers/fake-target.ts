import type { Rotator } from '../../packages/rotor/src/rotators/rotator';
import { CredentialsRejectedError, TestFailedError } from 'rotor-consumers/core';

/** The value of a fake secret: one account's password. */
export interface FakeSecret {
  user: string;
  password: string;
}

/**
 * A target system in memory (one password per user) and a single-user rotator for it: enough to unit-test the
 * engine's label moves without a database. `accepts` is what the target would let in right now.
 */
export function fakeTarget(): {
  rotator: Rotator<FakeSecret>;
  passwords: Map<string, string>;
  accepts(s: FakeSecret): boolean;
} {
  const passwords = new Map<string, string>();
  const accepts = (s: FakeSecret) => passwords.get(s.user) === s.password;
  const converge = (secretId: string, want: FakeSecret, via: FakeSecret[]) => {
    if (accepts(want)) return 'already-set';
    if (!via.some(accepts)) throw new CredentialsRejectedError(secretId, 'no version logs in', true);
    passwords.set(want.user, want.password);
    return 'changed';
  };
  const rotator: Rotator<FakeSecret> = {
    kind: 'fake-single-user',
    parse: (_secretId, raw) => JSON.parse(raw) as FakeSecret,
    target: (s) => `fake://${s.user}`,
    check: async (secretId, { current, fallbacks }) => {
      if (![current, ...fallbacks].some(accepts))
        throw new CredentialsRejectedError(secretId, 'no version logs in', true);
      return accepts(current) ? 'current-logs-in' : 'fallback-logs-in';
    },
    nextValue: (_secretId, current) => JSON.stringify({ ...current, password: `${current.password}+` }),
    set: async (secretId, { pending, current, fallbacks }) => converge(secretId, pending, [current, ...fallbacks]),
    test: async (secretId, value) => {
      if (!accepts(value)) throw new TestFailedError(secretId, `${value.user} cannot log in`);
    },
    restore: async (secretId, { want, via }) => converge(secretId, want, via),
    retire: async () => 'nothing-to-retire',
  };
  return { rotator, passwords, accepts };
}
