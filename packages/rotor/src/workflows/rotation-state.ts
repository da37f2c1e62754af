import { compact } from '../shared/compact';
import { log, setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { SearchAttribute } from '../shared/constants';
import { actorOf, type Phase, type RotationOutcomeWord } from '../shared/vocabulary';
import { type RotationInput } from '../shared/rotation';
import { type RotationStatus } from '../shared/status';

/** Where a rotation is, as the `status` query, the memo and the RotorPhase search attribute show it. */
export interface RotationState {
  readonly status: RotationStatus;
  /** Increases at every phase change: the stuck-phase watch compares it. */
  readonly phaseSeq: number;
  /** Enters a working phase: status, search attribute and memo follow. */
  enter(phase: Phase): void;
  /** Every ending goes through here: the terminal phase and the end time, together. */
  end(phase: RotationOutcomeWord): void;
  /** Writes the memo again (after the grace period moved). */
  updateMemo(): void;
}

/** A rotation's state, from its start, or as an earlier run of it left it (`input.resume`, continue-as-new). */
export function createRotationState(input: RotationInput, token: string): RotationState {
  const status: RotationStatus = input.resume?.status ?? {
    secretId: input.secretId,
    phase: 'preparing',
    token,
    versions: {},
    steps: [],
    startedAt: new Date().toISOString(),
    ...compact({ trigger: input.trigger }),
  };
  let phaseSeq = 0;

  /** The Temporal UI's "current details": what the rotation is doing now, at a glance (no command, replay-safe). */
  function describeNow(): void {
    const parts = [
      `**${status.phase}**`,
      status.operation === 'rollback' ? `roll back ${input.secretId}` : `rotate ${input.secretId}`,
    ];
    if (status.rotator) parts.push(status.rotator);
    parts.push(actorOf(input.trigger));
    if (status.phase === 'grace' && status.graceEndsAt) parts.push(`grace until ${status.graceEndsAt}`);
    if (status.lastError && (status.phase === 'failed' || status.phase === 'compensated'))
      parts.push(`last error: ${status.lastError}`);
    // Once it has ended the UI offers only Reset and Start Workflow Like This One, neither of which rolls back.
    const hint = rollBackHint();
    if (hint) parts.push(`to roll back: ${hint}`);
    setCurrentDetails(parts.join(' · '));
  }

  /** How to roll back once the run has ended with its new version current (completed, or failed after finish). */
  function rollBackHint(): string | undefined {
    const ended = status.phase === 'completed' || status.phase === 'failed';
    if (!ended || status.operation === 'rollback' || status.versions.current !== token) return undefined;
    return `\`rotor rollback ${input.secretId}\` (not Reset)`;
  }

  /** The memo keeps a summary readable by `describe`, even when no worker is there to answer the query. */
  function updateMemo(): void {
    describeNow();
    upsertMemo({
      phase: status.phase,
      token,
      rotator: status.rotator ?? null,
      graceEndsAt: status.graceEndsAt ?? null,
      lastError: status.lastError ?? null,
      rollBack: rollBackHint() ?? null,
    });
  }

  function enter(phase: Phase): void {
    status.phase = phase;
    phaseSeq++;
    upsertSearchAttributes([{ key: SearchAttribute.phase, value: phase }]);
    updateMemo();
    log.info('rotation phase', { secretId: input.secretId, phase });
  }

  return {
    status,
    get phaseSeq() {
      return phaseSeq;
    },
    enter,
    end(phase) {
      enter(phase);
      status.endedAt = new Date().toISOString();
    },
    updateMemo,
  };
}
