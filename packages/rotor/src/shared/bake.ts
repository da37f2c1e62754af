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
  /** The share of the new version's logins that may fail; more rolls back (0 to 1). */
  maxFailureShare: number;
  /** The longest a bake runs, extensions for too few samples included; then it ends inconclusive and is alerted. */
  maxWindowMs: number;
}

export const DEFAULT_BAKE: Omit<BakePolicy, 'windowMs' | 'maxWindowMs'> = {
  minEvents: 20,
  minInstances: 2,
  maxFailureShare: 0.2,
};

/** Whether a bake window fits in grace: the previous credential must keep working while the evidence comes in. */
export function bakeFitsGrace(policy: Pick<BakePolicy, 'windowMs'>, graceMs: number): boolean {
  return policy.windowMs <= graceMs;
}

/** A problem of a bake policy, named by its `rotor.yaml` field. */
export interface BakeProblem {
  field: 'window' | 'maxWindow' | 'minEvents' | 'minInstances' | 'maxFailureShare';
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
  /** Instances that reported at least one refused login. */
  failingInstances: number;
}

export type BakeVerdict = 'roll-back' | 'pass' | 'too-few-samples';

/** Logins counted per version and instance; only the versions a rotation cares about. */
export class BakeTally {
  readonly #byVersion = new Map<string, Map<string, { successes: number; failures: number }>>();
  static readonly MAX_INSTANCES = 10_000;

  constructor(readonly versions: readonly string[]) {}

  add(line: ConsumerReportLine): void {
    if (!this.versions.includes(line.versionId) || !(line.count > 0) || !Number.isSafeInteger(line.count)) return;
    if (!isLoginOutcome(line.outcome)) return;
    let instances = this.#byVersion.get(line.versionId);
    if (!instances) this.#byVersion.set(line.versionId, (instances = new Map()));
    let counts = instances.get(line.instanceId);
    if (!counts) {
      if (instances.size >= BakeTally.MAX_INSTANCES) return;
      instances.set(line.instanceId, (counts = { successes: 0, failures: 0 }));
    }
    if (line.outcome === 'success') counts.successes += line.count;
    else counts.failures += line.count;
  }

  evidence(versionId: string): VersionEvidence {
    const evidence: VersionEvidence = { successes: 0, failures: 0, instances: 0, failingInstances: 0 };
    for (const counts of this.#byVersion.get(versionId)?.values() ?? []) {
      evidence.successes += counts.successes;
      evidence.failures += counts.failures;
      evidence.instances++;
      if (counts.failures > 0) evidence.failingInstances++;
    }
    return evidence;
  }
}

const share = (e: VersionEvidence) => (e.successes + e.failures === 0 ? 0 : e.failures / (e.successes + e.failures));

/**
 * The verdict on the new version: roll back when it fails more than the allowed share of at least `minEvents`
 * logins, from at least `minInstances` instances, while the previous version is healthy (its own share within the
 * bound, or nothing reported); pass with enough samples from enough instances (failures from fewer than
 * `minInstances` instances are theirs alone: one noisy instance neither rolls back nor blocks a pass when enough others
 * log in); otherwise too few samples.
 */
export function bakeVerdict(policy: BakePolicy, next: VersionEvidence, previous: VersionEvidence): BakeVerdict {
  const events = next.successes + next.failures;
  if (events < policy.minEvents) return 'too-few-samples';
  const healthyInstances = next.instances - next.failingInstances;
  if (share(next) > policy.maxFailureShare) {
    const previousHealthy = share(previous) <= policy.maxFailureShare;
    if (next.failingInstances >= policy.minInstances && previousHealthy) return 'roll-back';
    // Failures from fewer instances than it takes are those instances' own problem: the others decide.
    return next.failingInstances < policy.minInstances && healthyInstances >= policy.minInstances
      ? 'pass'
      : 'too-few-samples';
  }
  return next.instances >= policy.minInstances ? 'pass' : 'too-few-samples';
}

/** The evidence in one line for people (audit detail, alert): counts only. */
export function describeEvidence(next: VersionEvidence, previous: VersionEvidence): string {
  return (
    `new version: ${next.failures} of ${next.successes + next.failures} logins refused, from ${next.failingInstances} of ${next.instances} instances; ` +
    `previous version: ${previous.failures} of ${previous.successes + previous.failures} refused`
  );
}
