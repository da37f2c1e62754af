import { defineSignal, log, setHandler } from '@temporalio/workflow';
import {
  AUTO_ROLLBACK_CAP_WINDOW_MS,
  bakeVerdict,
  BakeTally,
  describeEvidence,
  type BakePolicy,
  type ConsumerReportSignal,
} from '../shared/bake';
import { SignalName } from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import type { BakeCarry } from '../shared/rotation';
import type { BakeStatus } from '../shared/status';
import type { OperatorRequests } from './operator-signals';
import type { Reporter } from './reporting';
import type { RotationState } from './rotation-state';

export const consumerReportSignal = defineSignal<[ConsumerReportSignal]>(SignalName.consumerReport);

/** The most report lines one signal may carry; more are dropped (the endpoint batches far fewer). */
const MAX_LINES = 1000;
export const BAKE_ACTOR = 'rotor:bake';

/** A rotation's bake window: open from `finish` until a verdict; retirement waits while it is open. */
export interface BakeWindow {
  readonly open: boolean;
  /** When the window's verdict is due, in workflow time (ms). */
  readonly endsAt: number;
  start(nextVersionId: string, previousVersionId: string, startedAt: number): void;
  /** What the next run needs to go on with the open window; undefined when it is closed. */
  carry(): BakeCarry | undefined;
  /** At `endsAt`: pass, extend (too few samples) or end inconclusive (alerted) once the longest bake is reached. */
  decide(): void;
  /** Grace ended by an operator: the window closes with it. */
  endedByOperator(): void;
  /**
   * The secret's automatic rollbacks before this rotation (prepare's `recentAutoRollbacks`): with the policy's
   * `maxAutoRollbacksPerDay`, one more within 24 hours is withheld and alerted instead. Undefined: none known.
   */
  capAutoRollbacks(times: string[] | undefined): void;
}

/**
 * Takes consumers' reports (the `consumerReport` signal, sent by the report endpoint) while the window is open, and
 * asks for a rollback the moment the evidence says the new version fails where the previous one did not. Each
 * verdict is audited with the counts; an automatic rollback also alerts, through the rollback's own alert.
 */
export function watchConsumers(
  state: RotationState,
  reporter: Reporter,
  requests: OperatorRequests,
  policy: BakePolicy,
  carried?: BakeCarry,
  earlier?: string[],
): BakeWindow {
  const { status } = state;
  let tally: BakeTally | undefined;
  let next = '';
  let previous = '';
  let startedAt = 0;
  let endsAt = 0;
  let open = false;
  // A continued run knows them from its start: reports held for it are judged before grace() runs again.
  let earlierAutoRollbacks: string[] = earlier ?? [];

  const evidence = () => ({ next: tally!.evidence(next), previous: tally!.evidence(previous) });
  const publish = (patch: Partial<BakeStatus> = {}) => {
    status.bake = { ...status.bake!, ...evidence(), endsAt: new Date(endsAt).toISOString(), ...patch };
  };
  const detail = () => {
    const e = evidence();
    return {
      versionId: next,
      newSuccesses: e.next.successes,
      newFailures: e.next.failures,
      newInstances: e.next.instances,
      newFailingInstances: e.next.failingInstances,
      previousSuccesses: e.previous.successes,
      previousFailures: e.previous.failures,
    };
  };
  const close = (verdict: NonNullable<BakeStatus['verdict']>) => {
    open = false;
    publish({ verdict });
  };

  // A window carried from an earlier run is open before the handler is set: reports held for the new run count.
  if (carried) {
    next = carried.next;
    previous = carried.previous;
    tally = new BakeTally([next, previous], policy.maxFailureShare, carried.tally);
    startedAt = carried.startedAt;
    endsAt = carried.endsAt;
    open = true;
  }

  setHandler(consumerReportSignal, (signal) => {
    if (!open || !tally || requests.rollback || status.phase !== 'grace') return;
    const lines = Array.isArray(signal?.reports) ? signal.reports.slice(0, MAX_LINES) : [];
    tally.add(lines);
    publish();
    const e = evidence();
    if (bakeVerdict(policy, e.next, e.previous) !== 'roll-back') return;
    if (withheld()) return;
    const reason = `automatic: consumers' logins failed with the new version (${describeEvidence(e.next, e.previous)})`;
    requests.rollback = { reason, by: BAKE_ACTOR };
    status.rollbackReason = reason;
    status.rollbackBy = BAKE_ACTOR;
    close('rolled-back');
    reporter.audit({ kind: 'auto-rollback', phase: 'grace', actor: BAKE_ACTOR, detail: detail() });
    log.warn('automatic rollback', { secretId: status.secretId, ...detail() });
  });

  /**
   * Whether the daily cap withholds the rollback the evidence asks for: then the window closes, the new version stays
   * (grace goes on, so the previous credential still works), and the withheld rollback is audited and alerted.
   */
  const withheld = (): boolean => {
    const max = policy.maxAutoRollbacksPerDay;
    if (max === undefined) return false; // a rotation started before the cap
    const since = Date.now() - AUTO_ROLLBACK_CAP_WINDOW_MS;
    const lastDay = earlierAutoRollbacks.filter((at) => Date.parse(at) > since).length;
    if (lastDay < max) return false;
    close('rollback-withheld');
    const counts = { ...detail(), autoRollbacksLastDay: lastDay, maxAutoRollbacksPerDay: max };
    reporter.audit({ kind: 'auto-rollback-withheld', phase: 'grace', actor: BAKE_ACTOR, detail: counts });
    reporter.alert(
      'auto-rollback-withheld',
      `rotation of ${status.secretId}: consumers' logins fail with the new version (${describeEvidence(evidence().next, evidence().previous)}), ` +
        `but ${lastDay} automatic rollbacks in the last 24 h reached bake.maxAutoRollbacksPerDay (${max}): the new version stays. ` +
        `Roll back by hand with \`rotor rollback ${status.secretId}\` while grace lasts (until ${status.graceEndsAt ?? 'its end'})`,
      { phase: 'grace' },
    );
    log.warn('automatic rollback withheld by the daily cap', { secretId: status.secretId, ...counts });
    return true;
  };

  return {
    get open() {
      return open;
    },
    get endsAt() {
      return endsAt;
    },
    start(nextVersionId, previousVersionId, at) {
      next = nextVersionId;
      previous = previousVersionId;
      tally = new BakeTally([next, previous], policy.maxFailureShare);
      startedAt = at;
      endsAt = at + policy.windowMs;
      open = true;
      status.bake = { endsAt: new Date(endsAt).toISOString(), extensions: 0, ...evidence() };
    },
    carry() {
      return open && tally ? { next, previous, startedAt, endsAt, tally: tally.snapshot() } : undefined;
    },
    decide() {
      if (!open) return;
      const e = evidence();
      const verdict = bakeVerdict(policy, e.next, e.previous);
      if (verdict === 'pass') {
        close('passed');
        reporter.audit({ kind: 'bake-passed', phase: 'grace', actor: BAKE_ACTOR, detail: detail() });
      } else if (endsAt + policy.windowMs - startedAt <= policy.maxWindowMs) {
        endsAt += policy.windowMs;
        publish({ extensions: status.bake!.extensions + 1 });
        reporter.audit({
          kind: 'bake-extended',
          phase: 'grace',
          actor: BAKE_ACTOR,
          detail: { ...detail(), bakeEndsAt: status.bake!.endsAt },
        });
      } else {
        close('inconclusive');
        reporter.audit({ kind: 'bake-inconclusive', phase: 'grace', actor: BAKE_ACTOR, detail: detail() });
        reporter.alert(
          'bake-inconclusive',
          `rotation of ${status.secretId}: too few consumer reports after ${formatDuration(policy.maxWindowMs)} of baking ` +
            `(${describeEvidence(e.next, e.previous)}; ${policy.minEvents} logins from ${policy.minInstances} instances needed); retirement goes ahead`,
          { phase: 'grace' },
        );
      }
    },
    endedByOperator() {
      if (open) close('ended-by-operator');
    },
    capAutoRollbacks(times) {
      earlierAutoRollbacks = times ?? [];
    },
  };
}
