import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bakeVerdict, BakeTally, type BakePolicy, type VersionEvidence } from '../../packages/rotor/src/shared/bake';

const policy: BakePolicy = {
  windowMs: 60_000,
  minEvents: 20,
  minInstances: 2,
  maxFailureShare: 0.2,
  maxWindowMs: 240_000,
};
const evidence = (
  successes: number,
  failures: number,
  instances: number,
  failingInstances: number,
): VersionEvidence => ({ successes, failures, instances, failingInstances });
const quiet = evidence(0, 0, 0, 0);

describe('bakeVerdict', () => {
  it('rolls back when the new version fails beyond the share, from enough instances, while the previous is healthy', () => {
    expect(bakeVerdict(policy, evidence(10, 30, 3, 3), quiet)).toBe('roll-back');
    expect(bakeVerdict(policy, evidence(10, 30, 3, 3), evidence(100, 1, 2, 1))).toBe('roll-back');
  });

  it('does not roll back when the previous version fails as much: rolling back would not help', () => {
    expect(bakeVerdict(policy, evidence(10, 30, 3, 3), evidence(10, 30, 3, 3))).toBe('too-few-samples');
  });

  it('leaves one noisy instance out: the others decide', () => {
    expect(bakeVerdict(policy, evidence(20, 50, 3, 1), quiet)).toBe('pass');
    expect(bakeVerdict(policy, evidence(5, 50, 2, 1), quiet)).toBe('too-few-samples');
  });

  it('needs minEvents and minInstances for any verdict', () => {
    expect(bakeVerdict(policy, evidence(19, 0, 5, 0), quiet)).toBe('too-few-samples');
    expect(bakeVerdict(policy, evidence(0, 19, 5, 5), quiet)).toBe('too-few-samples');
    expect(bakeVerdict(policy, evidence(100, 0, 1, 0), quiet)).toBe('too-few-samples');
    expect(bakeVerdict(policy, evidence(100, 0, 2, 0), quiet)).toBe('pass');
    expect(bakeVerdict(policy, evidence(80, 20, 2, 2), quiet)).toBe('pass');
  });

  it('never rolls back on fewer than minEvents logins or fewer failing instances than minInstances (property)', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.nat(100), fc.nat(10), fc.nat(10), (s, f, instances, failing) => {
        const e = evidence(s, f, Math.max(instances, failing), Math.min(failing, f));
        if (bakeVerdict(policy, e, quiet) === 'roll-back') {
          expect(s + f).toBeGreaterThanOrEqual(policy.minEvents);
          expect(e.failingInstances).toBeGreaterThanOrEqual(policy.minInstances);
          expect(f / (s + f)).toBeGreaterThan(policy.maxFailureShare);
        }
      }),
    );
  });
});

describe('BakeTally', () => {
  it('counts per version and instance, and ignores other versions, bad counts and instances past the cap', () => {
    const tally = new BakeTally(['next', 'prev']);
    tally.add({ instanceId: 'a', versionId: 'next', outcome: 'success', count: 5 });
    tally.add({ instanceId: 'a', versionId: 'next', outcome: 'auth-failure', errorClass: '28P01', count: 2 });
    tally.add({ instanceId: 'b', versionId: 'next', outcome: 'auth-failure', count: 1 });
    tally.add({ instanceId: 'c', versionId: 'other', outcome: 'auth-failure', count: 100 });
    tally.add({ instanceId: 'd', versionId: 'next', outcome: 'auth-failure', count: -3 });
    tally.add({ instanceId: 'e', versionId: 'next', outcome: 'auth-failure', count: 1.5 });
    tally.add({ instanceId: 'f', versionId: 'next', outcome: 'nonsense' as 'success', count: 1 });
    expect(tally.evidence('next')).toEqual({ successes: 5, failures: 3, instances: 2, failingInstances: 2 });
    expect(tally.evidence('prev')).toEqual(quiet);
    expect(tally.evidence('other')).toEqual(quiet);
  });
});
