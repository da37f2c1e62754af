import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  sleep,
  upsertSearchAttributes,
  uuid4,
} from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import { SearchAttribute } from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import { actorOf } from '../shared/types';
import type {
  AuditEvent,
  PreparedRotation,
  RotationEnd,
  RotationFailureDetails,
  RotationInput,
  RotationResult,
  StepInput,
  StepName,
} from '../shared/types';
import { DEFAULT_MAX_STEP_ATTEMPTS, prepareOptions, stepOptions, undoOptions } from './activity-options';
import { causeOf, RollbackRequested, ROTATION_FAILED, typeOf } from './failures';
import { watchConsumers, type BakeWindow } from './bake';
import { LOCAL_FIRST_PATCH, localFirst } from './local-first';
import { handleOperatorSignals } from './operator-signals';
import { createReporter } from './reporting';
import { createRotationState } from './rotation-state';
import { createStepRunner } from './step-runner';

export { consumerReportSignal } from './bake';
export {
  endGraceSignal,
  endGraceUpdate,
  extendGraceSignal,
  extendGraceUpdate,
  rollbackSignal,
  rollbackUpdate,
  statusQuery,
} from './operator-signals';
export { ROTATION_FAILED } from './failures';

/** Summaries for the Temporal UI on the grace timer and on a scheduled run's rotation; runs before it have none. */
export const UI_SUMMARY_PATCH = 'rotor-ui-summaries-v1';

/** A test step that reports `holdMs` (JWT signing keys) is followed by a durable wait before finish. */
export const HOLD_BEFORE_FINISH_PATCH = 'rotor-hold-before-finish-v1';

/** A cancelled rotation ends in phase `failed` (status, search attribute, memo); runs cancelled before it did not. */
export const CANCELLED_ENDS_PATCH = 'rotor-cancelled-ends-failed-v1';

/**
 * Rotates one secret: prepare → create → set → test → finish → grace (durable timer) → retire.
 *
 * - Compensation: the restore is registered before `set` is awaited (its side effect may land even when its result
 *   is lost); any later failure reinstates the previous version in the target and the store, in a scope that
 *   cancellation cannot interrupt.
 * - During grace, `rollback` reinstates the previous version, `extendGrace` and `endGrace` move the timer.
 * - `status` answers with phase, token, version ids and step timings; search attributes follow the phase.
 *
 * The token comes from `uuid4()` (deterministic on replay) and is the new version's id, so a retried step never
 * creates a second version. Only ids and outcome words cross the activity boundary.
 */
export async function rotateSecret(input: RotationInput): Promise<RotationResult> {
  const token = uuid4();
  const maxAttempts = input.maxStepAttempts ?? DEFAULT_MAX_STEP_ATTEMPTS;
  // A healthy rotation runs create → retire in one workflow task; compensation and rollback stay ordinary
  // activities. prepare stays one too: its result must be in history before anything changes, or a worker lost
  // mid-task would replay from the start and prepare again against labels the rotation itself has moved.
  const local = patched(LOCAL_FIRST_PATCH);
  const steps = localFirst<RotorActivities>(stepOptions(maxAttempts), local);
  const undo = proxyActivities<RotorActivities>(undoOptions(maxAttempts));
  const preflight = proxyActivities<RotorActivities>(prepareOptions(maxAttempts));

  const state = createRotationState(input, token);
  const { status } = state;
  let ended = false;
  /** What every step gets: ids, the token and what prepare found (set once prepare has run). */
  let stepInput: StepInput;
  const reporter = createReporter(input, { local });
  reporter.audit({
    kind: 'triggered',
    phase: 'preparing',
    actor: actorOf(input.trigger),
    detail: { graceMs: input.graceMs },
  });
  reporter.watchPhases(() => ({ seq: state.phaseSeq, phase: status.phase }));
  const requests = handleOperatorSignals(state, reporter);
  const bake = input.bake ? watchConsumers(state, reporter, requests, input.bake) : undefined;

  const run = createStepRunner(state, reporter, (name) => (name === 'create' || name === 'finish' ? token : undefined));

  /** Ends the rotation in `phase` after a failure: alert, outcome, audit settled; returns the failure to throw. */
  async function fail(
    step: string,
    error: unknown,
    what: string,
    phase: 'failed' | 'compensated' = 'failed',
  ): Promise<ApplicationFailure> {
    state.end(phase);
    const failure = ApplicationFailure.create({
      type: ROTATION_FAILED,
      message: `rotation of ${input.secretId} failed at ${step}: ${causeOf(error)}; ${what}`,
      nonRetryable: true,
      details: [{ step, errorType: typeOf(error), phase: status.phase } satisfies RotationFailureDetails],
    });
    reporter.alert(phase === 'compensated' ? 'compensated' : 'rotation-failed', failure.message, { phase, step });
    await record(phase, status.versions.current, {
      failedStep: step,
      ...(typeOf(error) ? { errorType: typeOf(error)! } : {}),
    });
    return failure;
  }

  /** Records the outcome (metrics, audit) and waits for the audit trail and alerts to settle. */
  async function record(
    outcome: RotationEnd['outcome'],
    versionId: string | undefined,
    detail: AuditEvent['detail'] = {},
  ): Promise<void> {
    ended = true;
    reporter.ended(
      { outcome, ...(status.rotator ? { rotator: status.rotator } : {}) },
      { durationMs: Date.now() - Date.parse(status.startedAt), ...(versionId ? { versionId } : {}), detail },
    );
    await reporter.settle();
  }

  try {
    return await rotate();
  } catch (error) {
    // Cancelled (Temporal UI, API) before it ended: the outcome is still recorded and the reporter settled.
    if (isCancellation(error) && !ended) {
      await CancellationScope.nonCancellable(async () => {
        state.end('failed', { publish: patched(CANCELLED_ENDS_PATCH) });
        await record('failed', status.versions.current, { cancelled: true });
      });
    }
    throw error;
  }

  /**
   * The new version is in the target and tested, but verifiers must learn it before it is used (a JWT signing key
   * in a cached JWKS): a durable wait, cut short only by a rollback (which then compensates).
   */
  async function holdBeforeFinish(holdMs: number): Promise<void> {
    state.enter('publishing');
    reporter.release();
    status.holdUntil = new Date(Date.now() + holdMs).toISOString();
    reporter.audit({ kind: 'held-before-finish', phase: 'publishing', detail: { holdMs } });
    await condition(() => requests.rollback !== undefined, holdMs, {
      summary: `publishing: the new version of ${input.secretId} becomes current at ${status.holdUntil}, once every verifier can know it`,
    });
  }

  /** The rotation itself; `rotateSecret` adds what must happen however it ends. */
  async function rotate(): Promise<RotationResult> {
    // prepare and create change nothing the previous credential depends on: no compensation.
    let prepared: PreparedRotation;
    try {
      prepared = await run('prepare', 'preparing', () =>
        preflight.prepareRotation({
          secretId: input.secretId,
          graceMs: input.graceMs,
          ...(input.overrides ? { overrides: input.overrides } : {}),
        }),
      );
      status.rotator = prepared.rotator;
      status.versions.current = prepared.currentVersionId;
      if (prepared.previousVersionId) status.versions.previous = prepared.previousVersionId;
      upsertSearchAttributes([{ key: SearchAttribute.rotator, value: prepared.rotator }]);
    } catch (error) {
      throw await fail('prepare', error, 'nothing was changed');
    }
    // The worker that prepared the rotation says where store writes go (a queue the cluster rate-limits fleet-wide):
    // there they are ordinary activities, or the cluster could not pace them.
    const writes = prepared.storeWritesTaskQueue
      ? proxyActivities<RotorActivities>({ ...stepOptions(maxAttempts), taskQueue: prepared.storeWritesTaskQueue })
      : steps;
    stepInput = {
      secretId: input.secretId,
      token,
      prepared,
      ...(input.passwordPolicy ? { passwordPolicy: input.passwordPolicy } : {}),
    };
    try {
      await run('create', 'creating', () => writes.createPending(stepInput));
      status.versions.pending = token;
    } catch (error) {
      throw await fail('create', error, 'the target was not touched');
    }

    // From here the target may hold the new credential (set's effect can land even when its result is lost): any
    // failure, or a rollback asked for before finish, reinstates the previous version.
    let failedStep: StepName = 'set';
    try {
      for (const [name, phase, call] of [
        ['set', 'setting', () => steps.setPending(stepInput)],
        ['test', 'testing', () => steps.testPending(stepInput)],
        ['finish', 'finishing', () => writes.finishRotation(stepInput)],
      ] as const) {
        if (requests.rollback) throw new RollbackRequested();
        failedStep = name;
        const report = await run(name, phase, call);
        if (name === 'test' && report.holdMs && patched(HOLD_BEFORE_FINISH_PATCH))
          await holdBeforeFinish(report.holdMs);
      }
    } catch (error) {
      try {
        await CancellationScope.nonCancellable(() =>
          run('compensate', 'compensating', () =>
            undo.reinstate({ ...stepInput, versionId: prepared.currentVersionId, mode: 'compensate' }),
          ),
        );
      } catch (compensationError) {
        throw await fail(
          failedStep,
          compensationError,
          `compensation failed too: version ${token} may still be AWSPENDING, left because the database may hold it. ` +
            `Once the database and the store answer, \`rotor check ${input.secretId}\` shows which version logs in, and ` +
            `\`rotor rotate ${input.secretId}\` converges: it logs in with whichever the database holds and sets it back to AWSCURRENT first`,
        );
      }
      status.versions = {
        current: prepared.currentVersionId,
        ...(prepared.previousVersionId ? { previous: prepared.previousVersionId } : {}),
      };
      if (error instanceof RollbackRequested) {
        state.end('rolled-back');
        reporter.alert(
          'rolled-back',
          `rotation of ${input.secretId} rolled back before finish: ${status.rollbackReason}`,
          { phase: 'rolled-back', step: failedStep },
        );
        await record('rolled-back', prepared.currentVersionId, { during: failedStep });
        return result('rolled-back', prepared.currentVersionId, prepared.previousVersionId);
      }
      throw await fail(
        failedStep,
        error,
        'compensated: the target and AWSCURRENT are as before the rotation',
        'compensated',
      );
    }

    status.versions = { current: token, previous: prepared.currentVersionId };
    requests.graceStartedAt = Date.now();
    requests.graceEndsAt = requests.graceStartedAt + input.graceMs;
    status.graceEndsAt = new Date(requests.graceEndsAt).toISOString();
    state.enter('grace');
    // Held audit events go out when the rotation first waits. Local-first runs release them only if grace really
    // waits: a rotation with no grace then appends its whole trail once, at its end.
    if (!local) reporter.release();
    const summarised = patched(UI_SUMMARY_PATCH);
    if (bake) {
      reporter.release();
      await graceWithBake(bake, prepared.currentVersionId);
    } else {
      while (!requests.rollback && !requests.endGrace && Date.now() < requests.graceEndsAt) {
        reporter.release();
        const before = requests.graceEndsAt;
        const moved = () => requests.rollback !== undefined || requests.endGrace || requests.graceEndsAt !== before;
        const waitMs = requests.graceEndsAt - Date.now();
        if (summarised)
          await condition(moved, waitMs, {
            summary: `grace: the previous credential of ${input.secretId} stays valid until ${status.graceEndsAt}`,
          });
        else await condition(moved, waitMs);
      }
    }

    if (requests.rollback) {
      try {
        await CancellationScope.nonCancellable(() =>
          run('rollback', 'rolling-back', () =>
            undo.reinstate({ ...stepInput, versionId: prepared.currentVersionId, mode: 'rollback' }),
          ),
        );
      } catch (error) {
        throw await fail('rollback', error, 'the new credential may still be current: check the target and the labels');
      }
      status.versions = { current: prepared.currentVersionId, previous: token };
      state.end('rolled-back');
      reporter.alert(
        'rolled-back',
        `rotation of ${input.secretId} rolled back during grace: ${status.rollbackReason}`,
        { phase: 'rolled-back' },
      );
      await record('rolled-back', prepared.currentVersionId, { during: 'grace' });
      return result('rolled-back', prepared.currentVersionId, token);
    }

    const retirement = prepared.retirement;
    let retirementNote: string | undefined;
    try {
      if (retirement && retirement.retire !== 'none' && retirement.liveSessions === 'wait') {
        retirementNote = await awaitSessions(retirement.maxWaitMs);
      }
      const retired = await run('retire', 'retiring', () =>
        steps.retirePrevious({
          ...stepInput,
          ...(retirement?.liveSessions === 'terminate' ? { terminateSessions: true } : {}),
        }),
      );
      if (retirement) retirementNote = [retired.outcome, retirementNote].filter(Boolean).join('; ');
    } catch (error) {
      throw await fail('retire', error, 'the new credential is current; the previous one was not retired');
    }
    state.end('completed');
    await record('completed', token, {
      previousVersionId: prepared.currentVersionId,
      ...(retirementNote ? { retirement: retirementNote } : {}),
    });
    return result('completed', token, prepared.currentVersionId, retirementNote);
  }

  /**
   * Grace with a bake window (only for rotations started with `bake`, so histories without one replay as before):
   * consumers' reports may roll back at any moment; grace ends when both its timer and the window have run out (the
   * window's verdict may extend it), or when an operator ends grace.
   */
  async function graceWithBake(window: BakeWindow, previousVersionId: string): Promise<void> {
    window.start(token, previousVersionId, requests.graceStartedAt);
    while (!requests.rollback && !requests.endGrace && (Date.now() < requests.graceEndsAt || window.open)) {
      const before = requests.graceEndsAt;
      const moved = () => requests.rollback !== undefined || requests.endGrace || requests.graceEndsAt !== before;
      const until = window.open
        ? Date.now() < requests.graceEndsAt
          ? Math.min(requests.graceEndsAt, window.endsAt)
          : window.endsAt
        : requests.graceEndsAt;
      const summary = window.open
        ? `bake: watching consumers' logins with the new credential of ${input.secretId} until ${new Date(window.endsAt).toISOString()}`
        : `grace: the previous credential of ${input.secretId} stays valid until ${status.graceEndsAt}`;
      await condition(moved, Math.max(1, until - Date.now()), { summary });
      if (!requests.rollback && window.open && Date.now() >= window.endsAt) window.decide();
    }
    if (requests.endGrace) window.endedByOperator();
  }

  /**
   * Waits on durable timers, bounded by `maxWaitMs`, until the previous login has no live session. Returns a note
   * when the bound was reached with sessions left: the rotation says so rather than hanging.
   */
  async function awaitSessions(maxWaitMs: number): Promise<string | undefined> {
    const deadline = Date.now() + maxWaitMs;
    const pollMs = Math.min(30_000, Math.max(1000, Math.floor(maxWaitMs / 20)));
    const count = async () => (status.liveSessions = (await steps.countLiveSessions(stepInput)).liveSessions ?? 0);
    let live = await count();
    if (live === 0) return undefined;
    status.sessionsWaitEndsAt = new Date(deadline).toISOString();
    state.enter('awaiting-sessions');
    if (local) reporter.release();
    reporter.alert(
      'awaiting-sessions',
      `retirement of the previous login of ${input.secretId} waits for ${live} live sessions, at the latest until ${status.sessionsWaitEndsAt}`,
      { phase: 'awaiting-sessions' },
    );
    while (live > 0 && Date.now() < deadline) {
      await sleep(Math.min(pollMs, deadline - Date.now()));
      live = await count();
    }
    return live > 0 ? `${live} live sessions left after waiting ${formatDuration(maxWaitMs)}` : undefined;
  }

  function result(
    outcome: RotationResult['outcome'],
    currentVersionId: string,
    previousVersionId?: string,
    retirementNote?: string,
  ): RotationResult {
    return {
      secretId: input.secretId,
      outcome,
      token,
      currentVersionId,
      ...(previousVersionId ? { previousVersionId } : {}),
      ...(retirementNote ? { retirement: retirementNote } : {}),
      status,
    };
  }
}
