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
    expect(bakeVerdict(policy, evidence(10, 30, 3, 3), evidence(100, 1, 4, 0))).toBe('roll-back');
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
    expect(bakeVerdict(policy, evidence(80, 20, 2, 0), quiet)).toBe('pass');
  });

  it('never rolls back on fewer than minEvents logins, fewer failing instances than minInstances, or a failing share within the bound (property)', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.nat(100), fc.nat(10), fc.nat(10), (s, f, instances, failing) => {
        const e = evidence(s, f, Math.max(instances, failing), Math.min(failing, f));
        if (bakeVerdict(policy, e, quiet) === 'roll-back') {
          expect(s + f).toBeGreaterThanOrEqual(policy.minEvents);
          expect(e.failingInstances).toBeGreaterThanOrEqual(policy.minInstances);
          expect(e.failingInstances / e.instances).toBeGreaterThan(policy.maxFailureShare);
        }
      }),
    );
  });
});

/** Ten instances that really logged in, as the report endpoint names them (token and address). */
function realFleet(tally: BakeTally, version: string, outcome: 'success' | 'auth-failure') {
  for (let i = 1; i <= 10; i++) tally.add([{ instanceId: `apps@10.0.0.${i}`, versionId: version, outcome, count: 50 }]);
}

describe('one reporter against the fleet', () => {
  it('cannot force a rollback: a million refused logins are one vote against ten', () => {
    const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
    realFleet(tally, 'next', 'success');
    tally.add([{ instanceId: 'apps@10.9.9.9', versionId: 'next', outcome: 'auth-failure', count: 1_000_000 }]);
    tally.add([{ instanceId: 'apps@10.9.9.9', versionId: 'next', outcome: 'auth-failure', count: 1_000_000 }]);
    expect(bakeVerdict(policy, tally.evidence('next'), tally.evidence('prev'))).toBe('pass');
  });

  it('cannot hold back a rollback by claiming the previous version fails too: that is one vote as well', () => {
    const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
    realFleet(tally, 'next', 'auth-failure'); // the fleet moved to the new version, and it fails
    tally.add([{ instanceId: 'apps@10.9.9.9', versionId: 'prev', outcome: 'auth-failure', count: 1_000_000 }]);
    expect(bakeVerdict(policy, tally.evidence('next'), tally.evidence('prev'))).toBe('roll-back');
  });

  it('cannot mask ten instances that fail: a million good logins are one vote', () => {
    const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
    realFleet(tally, 'next', 'auth-failure');
    tally.add([{ instanceId: 'apps@10.9.9.9', versionId: 'next', outcome: 'success', count: 1_000_000 }]);
    expect(bakeVerdict(policy, tally.evidence('next'), tally.evidence('prev'))).toBe('roll-back');
  });

  it('cannot roll back alone, whatever it claims (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ outcome: fc.constantFrom('success', 'auth-failure'), count: fc.integer({ min: 1, max: 1e6 }) }),
          {
            maxLength: 20,
          },
        ),
        (lines) => {
          const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
          for (const l of lines)
            tally.add([
              {
                instanceId: 'apps@10.9.9.9',
                versionId: 'next',
                outcome: l.outcome as 'success',
                count: l.count,
              },
            ]);
          expect(bakeVerdict(policy, tally.evidence('next'), tally.evidence('prev'))).not.toBe('roll-back');
        },
      ),
    );
  });
});

describe('BakeTally', () => {
  it('counts per version and instance, and ignores other versions, bad counts and instances past the cap', () => {
    const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
    tally.add([{ instanceId: 'a', versionId: 'next', outcome: 'success', count: 5 }]);
    tally.add([{ instanceId: 'a', versionId: 'next', outcome: 'auth-failure', errorClass: '28P01', count: 2 }]);
    tally.add([{ instanceId: 'b', versionId: 'next', outcome: 'auth-failure', count: 1 }]);
    tally.add([{ instanceId: 'c', versionId: 'other', outcome: 'auth-failure', count: 100 }]);
    tally.add([{ instanceId: 'd', versionId: 'next', outcome: 'auth-failure', count: -3 }]);
    tally.add([{ instanceId: 'e', versionId: 'next', outcome: 'auth-failure', count: 1.5 }]);
    tally.add([{ instanceId: 'f', versionId: 'next', outcome: 'nonsense' as 'success', count: 1 }]);
    expect(tally.evidence('next')).toEqual({ successes: 5, failures: 3, instances: 2, failingInstances: 2 });
    expect(tally.evidence('prev')).toEqual(quiet);
    expect(tally.evidence('other')).toEqual(quiet);
  });

  it('judges each instance by its latest report: one that recovered is healthy, one that broke is failing, and the totals stay', () => {
    const tally = new BakeTally(['next', 'prev'], policy.maxFailureShare);
    const report = (instanceId: string, successes: number, failures: number) =>
      tally.add([
        { instanceId, versionId: 'next', outcome: 'success', count: successes },
        { instanceId, versionId: 'next', outcome: 'auth-failure', count: failures },
      ]);
    report('healed', 0, 9);
    report('broke', 200, 0);
    expect(tally.evidence('next')).toMatchObject({ instances: 2, failingInstances: 1 });
    report('healed', 10, 1);
    report('broke', 0, 3);
    expect(tally.evidence('next')).toEqual({ successes: 210, failures: 13, instances: 2, failingInstances: 1 });
    const carried = new BakeTally(['next', 'prev'], policy.maxFailureShare, tally.snapshot());
    expect(carried.evidence('next')).toEqual(tally.evidence('next'));
  });
});
