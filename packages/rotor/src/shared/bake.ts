/**
 * The bake window after a rotation's `finish`: consumers report their logins with each version, and rotor rolls
 * back on its own when the new version fails where the previous one did not. Pure, for the workflow and tests.
 */
import { formatDuration, isLoginOutcome, type LoginOutcome } from 'rotor-consumers/core';

/** When to roll back automatically (rotor.yaml `bake`). */
export interface BakePolicy {
  /** How long after `finish` the evidence is watched before a verdict; retirement waits for it. */
  windowMs: number;
  /** Logins with the new version needed for any verdict. */
  minEvents: number;
  /** Instances that must have reported (for a pass) or failed (for a rollback). */
  minInstances: number;
  /**
   * The share of instances that may fail with the new version; more rolls back (0 to 1). An instance fails when more
   * than this share of the logins in its latest report are refused.
   */
  maxFailureShare: number;
  /** The longest a bake runs, extensions for too few samples included; then it ends inconclusive and is alerted. */
  maxWindowMs: number;
  /**
   * Automatic rollbacks of the secret in the last 24 hours after which the next one is withheld (the new version
   * stays; the `auto-rollback-withheld` alert asks an operator to decide); 0: never roll back automatically. Counted
   * from the audit trail when the rotation prepares. Absent (rotations started before the cap): no cap.
   */
  maxAutoRollbacksPerDay?: number;
}

export const DEFAULT_BAKE: Omit<BakePolicy, 'windowMs' | 'maxWindowMs'> = {
  minEvents: 20,
  minInstances: 2,
  maxFailureShare: 0.2,
  maxAutoRollbacksPerDay: 2,
};

/** The window over which automatic rollbacks are counted against `maxAutoRollbacksPerDay`. */
export const AUTO_ROLLBACK_CAP_WINDOW_MS = 24 * 3_600_000;

/** Whether a bake window fits in grace: the previous credential must keep working while the evidence comes in. */
export function bakeFitsGrace(policy: Pick<BakePolicy, 'windowMs'>, graceMs: number): boolean {
  return policy.windowMs <= graceMs;
}

/** A problem of a bake policy, named by its `rotor.yaml` field. */
export interface BakeProblem {
  field: 'window' | 'maxWindow' | 'minEvents' | 'minInstances' | 'maxFailureShare' | 'maxAutoRollbacksPerDay';
  message: string;
}

/**
 * Every reason a bake policy could not run with `graceMs` (none checked when it is not known yet), written once for
 * the config readers (each at its path) and the client (which refuses the rotation).
 */
export function bakeProblems(policy: BakePolicy, graceMs: number | undefined): BakeProblem[] {
  const problems: BakeProblem[] = [];
  const add = (field: BakeProblem['field'], message: string) => problems.push({ field, message });
  if (!(policy.windowMs > 0)) add('window', `${policy.windowMs} is not a positive duration`);
  if (!(policy.maxWindowMs >= policy.windowMs))
    add(
      'maxWindow',
      `${formatDuration(policy.maxWindowMs)} is shorter than the window (${formatDuration(policy.windowMs)})`,
    );
  if (!(Number.isInteger(policy.minEvents) && policy.minEvents >= 1))
    add('minEvents', `${policy.minEvents} is not a whole number of at least 1`);
  if (!(Number.isInteger(policy.minInstances) && policy.minInstances >= 1))
    add('minInstances', `${policy.minInstances} is not a whole number of at least 1`);
  if (!(policy.maxFailureShare >= 0 && policy.maxFailureShare < 1))
    add('maxFailureShare', `${policy.maxFailureShare} is not from 0 to below 1`);
  const cap = policy.maxAutoRollbacksPerDay;
  if (cap !== undefined && !(Number.isInteger(cap) && cap >= 0 && cap <= 100))
    add('maxAutoRollbacksPerDay', `${cap} is not a whole number from 0 to 100`);
  if (graceMs !== undefined && !bakeFitsGrace(policy, graceMs))
    add(
      'window',
      `${formatDuration(policy.windowMs)} is longer than grace (${formatDuration(graceMs)}): the bake must fit in grace, while the previous credential still works`,
    );
  return problems;
}

/** One line of a consumer report as it reaches the rotation: counts for one version from one instance. */
export interface ConsumerReportLine {
  instanceId: string;
  versionId: string;
  outcome: LoginOutcome;
  errorClass?: string;
  count: number;
}

/** The signal the report endpoint sends a rotation: what its consumers saw since the last one. */
export interface ConsumerReportSignal {
  reports: ConsumerReportLine[];
}

/** What consumers reported for one version. */
export interface VersionEvidence {
  successes: number;
  failures: number;
  /** Instances that reported anything for it. */
  instances: number;
  /** Instances whose latest report on it has refused logins beyond the allowed share: each instance is one vote. */
  failingInstances: number;
}

export type BakeVerdict = 'roll-back' | 'pass' | 'too-few-samples';

/** Counts of one instance for one version: all it reported, and its latest report. */
export interface InstanceCounts {
  successes: number;
  failures: number;
  latestSuccesses: number;
  latestFailures: number;
}

/** A tally's counts, to carry into the next run of the workflow (continue-as-new): version → instance → counts. */
export type TallySnapshot = Record<string, Record<string, InstanceCounts>>;

/**
 * Logins counted per version and instance; only the versions a rotation cares about. An instance is who the report
 * endpoint saw (token and address), and it is one vote, whatever counts it claims: it fails a version when its latest
 * report on that version has more than `maxFailureShare` of refused logins (what it sees now, not what it saw before
 * a credential broke or healed).
 */
export class BakeTally {
  readonly #byVersion = new Map<string, Map<string, InstanceCounts>>();
  /** Instances kept per version: a rotation carries them into its next run, so they stay well under a payload's 2 MB. */
  static readonly MAX_INSTANCES = 2000;

  constructor(
    readonly versions: readonly string[],
    readonly maxFailureShare: number,
    snapshot: TallySnapshot = {},
  ) {
    for (const [versionId, instances] of Object.entries(snapshot))
      if (versions.includes(versionId)) this.#byVersion.set(versionId, new Map(Object.entries(instances)));
  }

  /** Adds one report (a forward of the endpoint): the latest counts of each instance it names are these. */
  add(lines: readonly ConsumerReportLine[]): void {
    const seen = new Set<InstanceCounts>();
    for (const line of lines) {
      if (!line || !this.versions.includes(line.versionId) || !(line.count > 0) || !Number.isSafeInteger(line.count))
        continue;
      if (!isLoginOutcome(line.outcome) || typeof line.instanceId !== 'string') continue;
      let instances = this.#byVersion.get(line.versionId);
      if (!instances) this.#byVersion.set(line.versionId, (instances = new Map()));
      let counts = instances.get(line.instanceId);
      if (!counts) {
        if (instances.size >= BakeTally.MAX_INSTANCES) continue;
        instances.set(line.instanceId, (counts = { successes: 0, failures: 0, latestSuccesses: 0, latestFailures: 0 }));
      }
      if (!seen.has(counts)) {
        seen.add(counts);
        counts.latestSuccesses = counts.latestFailures = 0;
      }
      const plus = (n: number) => Math.min(Number.MAX_SAFE_INTEGER, n + line.count);
      if (line.outcome === 'success') {
        counts.successes = plus(counts.successes);
        counts.latestSuccesses = plus(counts.latestSuccesses);
      } else {
        counts.failures = plus(counts.failures);
        counts.latestFailures = plus(counts.latestFailures);
      }
    }
  }

  evidence(versionId: string): VersionEvidence {
    const evidence: VersionEvidence = { successes: 0, failures: 0, instances: 0, failingInstances: 0 };
    for (const c of this.#byVersion.get(versionId)?.values() ?? []) {
      evidence.successes += c.successes;
      evidence.failures += c.failures;
      evidence.instances++;
      if (c.latestFailures / (c.latestSuccesses + c.latestFailures) > this.maxFailureShare) evidence.failingInstances++;
    }
    return evidence;
  }

  snapshot(): TallySnapshot {
    const out: TallySnapshot = {};
    for (const [versionId, instances] of this.#byVersion) out[versionId] = Object.fromEntries(instances);
    return out;
  }
}

/** The share of instances that fail (0 with none). */
const failingShare = (e: VersionEvidence) => (e.instances === 0 ? 0 : e.failingInstances / e.instances);

/**
 * The verdict on the new version, by instances, each one vote (an instance fails when its latest report's logins fail
 * beyond `maxFailureShare`): roll back when more than that share of the instances fail, at least `minInstances` of them,
 * while the previous version is healthy (its failing share within the bound, or nothing reported); pass when enough
 * instances log in well (fewer failing instances than `minInstances` are those instances' own problem: the others
 * decide); otherwise too few samples. No verdict before `minEvents` logins.
 *
 * What this makes a single reporter unable to do: claimed counts weigh nothing beyond its one vote, so it cannot roll
 * back alone (`minInstances` ≥ 2) nor outvote the instances that really fail.
 */
export function bakeVerdict(policy: BakePolicy, next: VersionEvidence, previous: VersionEvidence): BakeVerdict {
  const events = next.successes + next.failures;
  if (events < policy.minEvents) return 'too-few-samples';
  const healthy = next.instances - next.failingInstances;
  if (failingShare(next) > policy.maxFailureShare) {
    // The previous version counts as failing only on the word of minInstances instances, as the new one does: one
    // host claiming it fails too cannot hold back the rollback the others' evidence asks for.
    const previousHealthy =
      failingShare(previous) <= policy.maxFailureShare || previous.failingInstances < policy.minInstances;
    if (next.failingInstances >= policy.minInstances && previousHealthy) return 'roll-back';
    return next.failingInstances < policy.minInstances && healthy >= policy.minInstances ? 'pass' : 'too-few-samples';
  }
  return next.instances >= policy.minInstances ? 'pass' : 'too-few-samples';
}

/** The evidence in one line for people (audit detail, alert): counts only. */
export function describeEvidence(next: VersionEvidence, previous: VersionEvidence): string {
  return (
    `new version: ${next.failures} of ${next.successes + next.failures} logins refused, ${next.failingInstances} of ${next.instances} instances failing; ` +
    `previous version: ${previous.failures} of ${previous.successes + previous.failures} refused, ${previous.failingInstances} of ${previous.instances} instances failing`
  );
}
