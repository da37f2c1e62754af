import { storableText } from '../shared/audit-text';
import { ApplicationFailure, defineQuery, defineSignal, defineUpdate, log, setHandler } from '@temporalio/workflow';
import { MAX_GRACE, MAX_GRACE_MS, QueryName, SignalName, UpdateName } from '../shared/constants';
import { signalActor, TERMINAL_PHASES } from '../shared/vocabulary';
import {
  type EndGraceSignal,
  type ExtendGraceSignal,
  type OperatorAnswer,
  type RollbackSignal,
  type RotationStatus,
} from '../shared/status';
import type { Reporter } from './reporting';
import type { RotationState } from './rotation-state';

export const statusQuery = defineQuery<RotationStatus>(QueryName.status);
export const rollbackSignal = defineSignal<[RollbackSignal]>(SignalName.rollback);
export const extendGraceSignal = defineSignal<[ExtendGraceSignal]>(SignalName.extendGrace);
export const endGraceSignal = defineSignal<[EndGraceSignal?]>(SignalName.endGrace);
/** The same requests as Workflow Updates: answered at once, accepted or refused with the reason (CLI and client). */
export const rollbackUpdate = defineUpdate<OperatorAnswer, [RollbackSignal]>(UpdateName.rollback);
export const extendGraceUpdate = defineUpdate<OperatorAnswer, [ExtendGraceSignal]>(UpdateName.extendGrace);
export const endGraceUpdate = defineUpdate<OperatorAnswer, [EndGraceSignal]>(UpdateName.endGrace);

/** What operators asked of a running rotation (the CLI, the client, the Temporal UI). */
export interface OperatorRequests {
  /** Set once a rollback was asked for while one could still happen. */
  rollback?: RollbackSignal;
  /** Grace should end now. */
  endGrace: boolean;
  /** When grace ends, in workflow time (ms); moved by extendGrace. */
  graceEndsAt: number;
  /** When grace began (finish), in workflow time (ms): extensions stay within MAX_GRACE of it. */
  graceStartedAt: number;
}

/**
 * Answers the `status` query and takes the operators' requests: `rollback` (before finish it unwinds; during grace
 * it reinstates the previous version), `extendGrace` and `endGrace` (during grace only). Each comes as a signal (the
 * Temporal UI; a request the rotation cannot take in its phase is ignored and logged) and as an Update whose
 * validator refuses it with the reason. Requests come from anywhere, the UI included: only short strings are kept.
 */
export function handleOperatorSignals(
  state: RotationState,
  report: Reporter,
  carried?: Partial<OperatorRequests>,
): OperatorRequests {
  const { status } = state;
  // A run continued from an earlier one starts with its requests and grace times, before any handler runs: requests
  // held for the new run are delivered as the handlers are set.
  const requests: OperatorRequests = { endGrace: false, graceEndsAt: 0, graceStartedAt: 0, ...carried };

  /** Why a request cannot be taken now, or undefined when it can. */
  const refusal = {
    rollback(): string | undefined {
      if (requests.rollback) return 'a rollback was already requested';
      if (TERMINAL_PHASES.includes(status.phase)) return `the rotation has ended (${status.phase})`;
      if (status.phase === 'retiring' || status.phase === 'awaiting-sessions') {
        return `the rotation is ${status.phase}: the previous credential is being retired; once the rotation has ended, rotor rollback reinstates it`;
      }
      return undefined;
    },
    extendGrace(signal: ExtendGraceSignal | undefined): string | undefined {
      const byMs = signal?.byMs;
      if (typeof byMs !== 'number' || !Number.isFinite(byMs) || !(byMs > 0))
        return `byMs: ${JSON.stringify(byMs)} is not a positive number of milliseconds`;
      if (status.phase !== 'grace') return `the rotation is ${status.phase}: grace can be extended only during grace`;
      if (requests.graceEndsAt + byMs - requests.graceStartedAt > MAX_GRACE_MS)
        return `the grace period would exceed the maximum of ${MAX_GRACE}`;
      return undefined;
    },
    endGrace(): string | undefined {
      if (status.phase !== 'grace') return `the rotation is ${status.phase}: grace can be ended only during grace`;
      if (requests.endGrace) return 'grace was already ended';
      return undefined;
    },
  };

  const apply = {
    rollback(signal: RollbackSignal | undefined): OperatorAnswer {
      requests.rollback = signal ?? {};
      status.rollbackReason = text(signal?.reason) ?? 'no reason given';
      const by = text(signal?.by);
      if (by) status.rollbackBy = by;
      report.audit({
        kind: 'rollback-requested',
        phase: status.phase,
        actor: signalActor(by),
        detail: { reason: status.rollbackReason },
      });
      log.info('rollback requested', { secretId: status.secretId, by, phase: status.phase });
      return { accepted: true, phase: status.phase };
    },
    extendGrace(signal: ExtendGraceSignal): OperatorAnswer {
      requests.graceEndsAt += signal.byMs;
      status.graceEndsAt = new Date(requests.graceEndsAt).toISOString();
      state.updateMemo();
      report.audit({
        kind: 'grace-extended',
        phase: 'grace',
        actor: signalActor(text(signal.by)),
        detail: { byMs: signal.byMs, graceEndsAt: status.graceEndsAt },
      });
      return { accepted: true, phase: status.phase, graceEndsAt: status.graceEndsAt };
    },
    endGrace(signal: EndGraceSignal | undefined): OperatorAnswer {
      requests.endGrace = true;
      report.audit({ kind: 'grace-ended', phase: 'grace', actor: signalActor(text(signal?.by)) });
      return { accepted: true, phase: status.phase };
    },
  };

  /** A signal the rotation cannot take is dropped: the Temporal UI shows it in the history, the log says why. */
  const ignored = (name: string, reason: string) =>
    log.info('operator signal ignored', { secretId: status.secretId, signal: name, reason });
  /**
   * Refuses an Update with its reason alone: an ApplicationFailure without a stack trace, so the Temporal UI shows the
   * reason, not the worker's source paths.
   */
  const refuse = (reason: string | undefined) => {
    if (!reason) return;
    const refused = ApplicationFailure.create({ type: 'RotorRequestRefused', message: reason, nonRetryable: true });
    refused.stack = `RotorRequestRefused: ${reason}`;
    throw refused;
  };

  setHandler(statusQuery, () => status);
  setHandler(rollbackSignal, (signal) => {
    const reason = refusal.rollback();
    if (reason) ignored('rollback', reason);
    else apply.rollback(signal);
  });
  setHandler(extendGraceSignal, (signal) => {
    const reason = refusal.extendGrace(signal);
    if (reason) ignored('extendGrace', reason);
    else apply.extendGrace(signal);
  });
  setHandler(endGraceSignal, (signal) => {
    const reason = refusal.endGrace();
    if (reason) ignored('endGrace', reason);
    else apply.endGrace(signal);
  });
  setHandler(rollbackUpdate, (signal) => apply.rollback(signal), {
    validator: (_signal) => refuse(refusal.rollback()),
  });
  setHandler(extendGraceUpdate, (signal) => apply.extendGrace(signal), {
    validator: (signal) => refuse(refusal.extendGrace(signal)),
  });
  setHandler(endGraceUpdate, (signal) => apply.endGrace(signal), {
    validator: (_signal) => refuse(refusal.endGrace()),
  });
  return requests;
}

/** A request's free text, if it is text: storable in the audit trail, at most 500 characters. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? storableText(value, 500) : undefined;
}
