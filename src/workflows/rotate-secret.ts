import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  isCancellation,
  defineSignal,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  uuid4,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import { QueryName, SearchAttribute, SignalName } from '../shared/constants';
import { formatDuration } from '../shared/duration';
import { ErrorType, NON_RETRYABLE_ERROR_TYPES } from '../shared/errors';
import { TERMINAL_PHASES } from '../shared/types';
import { createReporter } from './reporting';
import type {
  EndGraceSignal,
  ExtendGraceSignal,
  RotationFailureDetails,
  Phase,
  PreparedRotation,
  RollbackSignal,
  RotationInput,
  RotationResult,
  RotationStatus,
  AuditEvent,
  RotationEnd,
  StepInput,
  Trigger,
  StepName,
  StepReport,
} from '../shared/types';

export const statusQuery = defineQuery<RotationStatus>(QueryName.status);
export const rollbackSignal = defineSignal<[RollbackSignal]>(SignalName.rollback);
export const extendGraceSignal = defineSignal<[ExtendGraceSignal]>(SignalName.extendGrace);
export const endGraceSignal = defineSignal<[EndGraceSignal?]>(SignalName.endGrace);

/** Type of the failure a rotation ends with when it did not complete. */
export const ROTATION_FAILED = 'RotorRotationFailed';

const DEFAULT_MAX_STEP_ATTEMPTS = 6;

function stepOptions(maximumAttempts: number): ActivityOptions {
  return {
    // Steps are short: a database login, a few store calls. A worker that dies mid-step is noticed after this.
    startToCloseTimeout: '20s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '30s',
      maximumAttempts,
      nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
    },
  };
}

/** Raised inside the workflow when an operator's rollback arrives before finish: unwinds through compensation. */
class RollbackRequested extends Error {
  override readonly name = ErrorType.RollbackRequested;
}

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
  const steps = proxyActivities<RotorActivities>(stepOptions(maxAttempts));
  // Compensation must not give up while the store is briefly away: more attempts, longer backoff.
  const undo = proxyActivities<RotorActivities>(stepOptions(Math.max(maxAttempts * 3, 20)));

  const status: RotationStatus = {
    secretId: input.secretId,
    phase: 'preparing',
    token,
    versions: {},
    steps: [],
    startedAt: new Date().toISOString(),
    ...(input.trigger ? { trigger: input.trigger } : {}),
  };
  let rollback: RollbackSignal | undefined;
  let endGrace = false;
  let graceEndsAt = 0;
  let phaseSeq = 0;
  let ended = false;
  /** What every step gets: ids, the token and what prepare found (set once prepare has run). */
  let stepInput: StepInput;
  const report = createReporter(input);
  report.audit({ kind: 'triggered', phase: 'preparing', actor: actorOf(input.trigger), detail: { graceMs: input.graceMs } });
  report.watchPhases(() => ({ seq: phaseSeq, phase: status.phase }));

  setHandler(statusQuery, () => status);
  setHandler(rollbackSignal, (signal) => {
    if (rollback || status.phase === 'retiring' || status.phase === 'awaiting-sessions' || TERMINAL_PHASES.includes(status.phase)) return;
    rollback = signal ?? {};
    // Signals come from anywhere (the UI included): keep only short strings.
    status.rollbackReason = text(signal?.reason) ?? 'no reason given';
    const by = text(signal?.by);
    if (by) status.rollbackBy = by;
    report.audit({ kind: 'rollback-requested', phase: status.phase, actor: `signal:${by ?? 'ui-or-api'}`, detail: { reason: status.rollbackReason } });
    log.info('rollback requested', { secretId: input.secretId, by, phase: status.phase });
  });
  setHandler(extendGraceSignal, (signal) => {
    const byMs = signal?.byMs;
    const by = text(signal?.by);
    if (status.phase !== 'grace' || typeof byMs !== 'number' || !Number.isFinite(byMs) || !(byMs > 0)) return;
    graceEndsAt += byMs;
    status.graceEndsAt = new Date(graceEndsAt).toISOString();
    updateMemo();
    report.audit({ kind: 'grace-extended', phase: 'grace', actor: `signal:${by ?? 'ui-or-api'}`, detail: { byMs, graceEndsAt: status.graceEndsAt } });
  });
  setHandler(endGraceSignal, (signal) => {
    if (status.phase !== 'grace' || endGrace) return;
    endGrace = true;
    report.audit({ kind: 'grace-ended', phase: 'grace', actor: `signal:${text(signal?.by) ?? 'ui-or-api'}` });
  });

  /** The memo keeps a summary readable by `describe`, even when no worker is there to answer the query. */
  function updateMemo(): void {
    upsertMemo({
      phase: status.phase,
      token,
      rotator: status.rotator ?? null,
      graceEndsAt: status.graceEndsAt ?? null,
      lastError: status.lastError ?? null,
    });
  }

  function enter(phase: Phase): void {
    status.phase = phase;
    phaseSeq++;
    upsertSearchAttributes([{ key: SearchAttribute.phase, value: phase }]);
    updateMemo();
    log.info('rotation phase', { secretId: input.secretId, phase });
  }

  async function run<T extends StepReport>(name: StepName, phase: Phase, call: () => Promise<T>): Promise<T> {
    enter(phase);
    const started = Date.now();
    const record: RotationStatus['steps'][number] = { step: name, startedAt: new Date(started).toISOString() };
    status.steps.push(record);
    try {
      const stepReport = await call();
      record.attempts = stepReport.attempt;
      if (stepReport.outcome) record.outcome = stepReport.outcome;
      record.endedAt = new Date().toISOString();
      report.audit({
        kind: 'step',
        step: name,
        phase,
        outcome: stepReport.outcome ?? 'done',
        durationMs: Date.now() - started,
        ...(name === 'create' || name === 'finish' ? { versionId: token } : {}),
        detail: { attempts: stepReport.attempt },
      });
      return stepReport;
    } catch (error) {
      record.error = causeOf(error);
      record.endedAt = new Date().toISOString();
      status.lastError = `${name}: ${record.error}`;
      report.audit({ kind: 'step-failed', step: name, phase, outcome: typeOf(error) ?? 'error', durationMs: Date.now() - started, detail: { error: record.error } });
      throw error;
    }
  }

  /** Ends the rotation in `phase` after a failure: alert, outcome, audit settled; returns the failure to throw. */
  async function fail(step: string, error: unknown, what: string, phase: 'failed' | 'compensated' = 'failed'): Promise<ApplicationFailure> {
    enter(phase);
    if (phase === 'compensated') status.endedAt = new Date().toISOString();
    const failure = ApplicationFailure.create({
      type: ROTATION_FAILED,
      message: `rotation of ${input.secretId} failed at ${step}: ${causeOf(error)}; ${what}`,
      nonRetryable: true,
      details: [{ step, errorType: typeOf(error), phase: status.phase } satisfies RotationFailureDetails],
    });
    report.alert(phase === 'compensated' ? 'compensated' : 'rotation-failed', failure.message, { phase, step });
    await finish(phase, status.versions.current, { failedStep: step, ...(typeOf(error) ? { errorType: typeOf(error)! } : {}) });
    return failure;
  }

  /** Records the outcome (metrics, audit) and waits for the audit trail and alerts to settle. */
  async function finish(outcome: RotationEnd['outcome'], versionId: string | undefined, detail: AuditEvent['detail'] = {}): Promise<void> {
    ended = true;
    report.ended(
      { outcome, ...(status.rotator ? { rotator: status.rotator } : {}) },
      { durationMs: Date.now() - Date.parse(status.startedAt), ...(versionId ? { versionId } : {}), detail },
    );
    await report.settle();
  }

  try {
    return await rotate();
  } catch (error) {
    // Cancelled (Temporal UI, API) before it ended: the outcome is still recorded and the reporter settled.
    if (isCancellation(error) && !ended) {
      await CancellationScope.nonCancellable(() => finish('failed', status.versions.current, { cancelled: true }));
    }
    throw error;
  }

  /** The rotation itself; `rotateSecret` adds what must happen however it ends. */
  async function rotate(): Promise<RotationResult> {
    // prepare and create change nothing the previous credential depends on: no compensation.
    let prepared: PreparedRotation;
    try {
      prepared = await run('prepare', 'preparing', () => steps.prepareRotation({ secretId: input.secretId, ...(input.overrides ? { overrides: input.overrides } : {}) }));
      status.rotator = prepared.rotator;
      status.versions.current = prepared.currentVersionId;
      if (prepared.previousVersionId) status.versions.previous = prepared.previousVersionId;
      upsertSearchAttributes([{ key: SearchAttribute.rotator, value: prepared.rotator }]);
    } catch (error) {
      throw await fail('prepare', error, 'nothing was changed');
    }
    stepInput = {
      secretId: input.secretId,
      token,
      prepared,
      ...(input.passwordPolicy ? { passwordPolicy: input.passwordPolicy } : {}),
    };
    try {
      await run('create', 'creating', () => steps.createPending(stepInput));
      status.versions.pending = token;
    } catch (error) {
      throw await fail('create', error, 'the target was not touched');
    }

    const compensations: { step: StepName; phase: Phase; call: () => Promise<StepReport> }[] = [];
    let failedStep: StepName = 'set';
    try {
      compensations.push({
        step: 'compensate',
        phase: 'compensating',
        call: () => undo.reinstate({ ...stepInput, versionId: prepared.currentVersionId, mode: 'compensate' }),
      });
      for (const [name, phase, call] of [
        ['set', 'setting', () => steps.setPending(stepInput)],
        ['test', 'testing', () => steps.testPending(stepInput)],
        ['finish', 'finishing', () => steps.finishRotation(stepInput)],
      ] as const) {
        if (rollback) throw new RollbackRequested();
        failedStep = name;
        await run(name, phase, call);
      }
    } catch (error) {
      const unwinding = error instanceof RollbackRequested;
      try {
        await CancellationScope.nonCancellable(async () => {
          for (const c of compensations.reverse()) await run(c.step, c.phase, c.call);
        });
      } catch (compensationError) {
        throw await fail(failedStep, compensationError, 'compensation failed too: check the target and the labels by hand');
      }
      status.versions = { current: prepared.currentVersionId, ...(prepared.previousVersionId ? { previous: prepared.previousVersionId } : {}) };
      if (unwinding) {
        enter('rolled-back');
        status.endedAt = new Date().toISOString();
        report.alert('rolled-back', `rotation of ${input.secretId} rolled back before finish: ${status.rollbackReason}`, { phase: 'rolled-back', step: failedStep });
        await finish('rolled-back', prepared.currentVersionId, { during: failedStep });
        return result('rolled-back', prepared.currentVersionId, prepared.previousVersionId);
      }
      throw await fail(failedStep, error, 'compensated: the target and AWSCURRENT are as before the rotation', 'compensated');
    }

    status.versions = { current: token, previous: prepared.currentVersionId };
    graceEndsAt = Date.now() + input.graceMs;
    status.graceEndsAt = new Date(graceEndsAt).toISOString();
    enter('grace');
    while (!rollback && !endGrace && Date.now() < graceEndsAt) {
      const before = graceEndsAt;
      await condition(() => rollback !== undefined || endGrace || graceEndsAt !== before, graceEndsAt - Date.now());
    }

    if (rollback) {
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
      enter('rolled-back');
      status.endedAt = new Date().toISOString();
      report.alert('rolled-back', `rotation of ${input.secretId} rolled back during grace: ${status.rollbackReason}`, { phase: 'rolled-back' });
      await finish('rolled-back', prepared.currentVersionId, { during: 'grace' });
      return result('rolled-back', prepared.currentVersionId, token);
    }

    const retirement = prepared.retirement;
    let retirementNote: string | undefined;
    try {
      if (retirement && retirement.retire !== 'none' && retirement.liveSessions === 'wait') {
        retirementNote = await awaitSessions(retirement.maxWaitMs);
      }
      const report = await run('retire', 'retiring', () =>
        steps.retirePrevious({ ...stepInput, ...(retirement?.liveSessions === 'terminate' ? { terminateSessions: true } : {}) }),
      );
      if (retirement) retirementNote = [report.outcome, retirementNote].filter(Boolean).join('; ');
    } catch (error) {
      throw await fail('retire', error, 'the new credential is current; the previous one was not retired');
    }
    enter('completed');
    status.endedAt = new Date().toISOString();
    await finish('completed', token, {
      previousVersionId: prepared.currentVersionId,
      ...(retirementNote ? { retirement: retirementNote } : {}),
    });
    return result('completed', token, prepared.currentVersionId, retirementNote);
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
    enter('awaiting-sessions');
    report.alert(
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

  function result(outcome: RotationResult['outcome'], currentVersionId: string, previousVersionId?: string, retirementNote?: string): RotationResult {
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

/** A signal's free text, if it is text: at most 500 characters. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.slice(0, 500) : undefined;
}

/** Who started the rotation, for the audit trail: `schedule:<id>`, `cli:<user>`, ... */
function actorOf(trigger: Trigger | undefined): string {
  if (!trigger) return 'api:unknown';
  return trigger.by ? `${trigger.kind}:${trigger.by}` : trigger.kind;
}

/** The type of the innermost failure: rotor's error type when an activity raised one. */
function typeOf(error: unknown): string | undefined {
  let e: unknown = error;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof ApplicationFailure ? (e.type ?? undefined) : undefined;
}

/** The innermost message of an activity failure: rotor's typed, value-free message. */
function causeOf(error: unknown): string {
  let e: unknown = error;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure && e.type) return `${e.message} [${e.type}]`;
  return e instanceof Error ? e.message : String(e);
}
