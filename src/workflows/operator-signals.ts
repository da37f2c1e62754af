import { defineQuery, defineSignal, log, setHandler } from '@temporalio/workflow';
import { QueryName, SignalName } from '../shared/constants';
import {
  signalActor,
  TERMINAL_PHASES,
  type EndGraceSignal,
  type ExtendGraceSignal,
  type RollbackSignal,
  type RotationStatus,
} from '../shared/types';
import type { Reporter } from './reporting';
import type { RotationState } from './rotation-state';

export const statusQuery = defineQuery<RotationStatus>(QueryName.status);
export const rollbackSignal = defineSignal<[RollbackSignal]>(SignalName.rollback);
export const extendGraceSignal = defineSignal<[ExtendGraceSignal]>(SignalName.extendGrace);
export const endGraceSignal = defineSignal<[EndGraceSignal?]>(SignalName.endGrace);

/** What operators asked of a running rotation, through signals (the CLI, the client, the Temporal UI). */
export interface OperatorRequests {
  /** Set once a rollback was asked for while one could still happen. */
  rollback?: RollbackSignal;
  /** Grace should end now. */
  endGrace: boolean;
  /** When grace ends, in workflow time (ms); moved by extendGrace. */
  graceEndsAt: number;
}

/**
 * Answers the `status` query and takes the operators' signals: `rollback` (before finish it unwinds; during grace it
 * reinstates the previous version), `extendGrace` and `endGrace` (during grace only). A signal the rotation cannot
 * take in its phase is ignored. Signals come from anywhere, the UI included: only short strings are kept.
 */
export function handleOperatorSignals(state: RotationState, report: Reporter): OperatorRequests {
  const { status } = state;
  const requests: OperatorRequests = { endGrace: false, graceEndsAt: 0 };

  setHandler(statusQuery, () => status);
  setHandler(rollbackSignal, (signal) => {
    if (requests.rollback || status.phase === 'retiring' || status.phase === 'awaiting-sessions' || TERMINAL_PHASES.includes(status.phase)) return;
    requests.rollback = signal ?? {};
    status.rollbackReason = text(signal?.reason) ?? 'no reason given';
    const by = text(signal?.by);
    if (by) status.rollbackBy = by;
    report.audit({ kind: 'rollback-requested', phase: status.phase, actor: signalActor(by), detail: { reason: status.rollbackReason } });
    log.info('rollback requested', { secretId: status.secretId, by, phase: status.phase });
  });
  setHandler(extendGraceSignal, (signal) => {
    const byMs = signal?.byMs;
    const by = text(signal?.by);
    if (status.phase !== 'grace' || typeof byMs !== 'number' || !Number.isFinite(byMs) || !(byMs > 0)) return;
    requests.graceEndsAt += byMs;
    status.graceEndsAt = new Date(requests.graceEndsAt).toISOString();
    state.updateMemo();
    report.audit({ kind: 'grace-extended', phase: 'grace', actor: signalActor(by), detail: { byMs, graceEndsAt: status.graceEndsAt } });
  });
  setHandler(endGraceSignal, (signal) => {
    if (status.phase !== 'grace' || requests.endGrace) return;
    requests.endGrace = true;
    report.audit({ kind: 'grace-ended', phase: 'grace', actor: signalActor(text(signal?.by)) });
  });
  return requests;
}

/** A signal's free text, if it is text: at most 500 characters. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.slice(0, 500) : undefined;
}
