import { compact } from '../shared/compact';
import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  makeContinueAsNewFunc,
  proxyActivities,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { ErrorType, formatDuration } from 'rotor-consumers/core';
import type { RotorActivities } from '../activities';
import { ROTATION_ROLLED_BACK, SearchAttribute } from '../shared/constants';
import { actorOf } from '../shared/vocabulary';
import type { AuditEvent, RotationEnd } from '../shared/reporting';
import type {
  PreparedRotation,
  RotationFailureDetails,
  RotationInput,
  RotationResult,
  StepInput,
} from '../shared/rotation';
import type { StepName } from '../shared/vocabulary';
import { DEFAULT_MAX_STEP_ATTEMPTS, prepareOptions, stepOptions, undoOptions } from './activity-options';
import { watchConsumers, type BakeWindow } from './bake';
import { causeOf, RollbackRequested, ROTATION_FAILED, typeOf } from './failures';
import { LocalAttempts, localFirst } from './local-first';
import { readPatches, type PatchName } from './patches';
import { DEFAULT_OUTAGE_BUDGET_MS, rideThrough } from './ride-through';
import { handleOperatorSignals, type OperatorRequests } from './operator-signals';
import { createReporter, type Reporter } from './reporting';
import { createRotationState, type RotationState } from './rotation-state';
import { createStepRunner, type StepRunner } from './step-runner';
import { waitUntil } from './wait';

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

/**
 * Rotates one secret: prepare → create → set → test → (publish) → finish → grace (durable timer) → retire.
 *
 * - Compensation: the restore is registered before `set` is awaited (its side effect may land even when its result
 *   is lost); any later failure, or a rollback asked for before finish, reinstates the previous version in the
 *   target and the store, in a scope that cancellation cannot interrupt.
 * - During grace, `rollback` reinstates the previous version, `extendGrace` and `endGrace` move the timer.
 * - `status` answers with phase, token, version ids and step timings; search attributes follow the phase.
 *
 * The token comes from `uuid4()` (deterministic on replay) and is the new version's id, so a retried step never
 * creates a second version. Only ids and outcome words cross the activity boundary.
 */
export async function rotateSecret(input: RotationInput): Promise<RotationResult> {
  const rotation = beginRotation(input);
  try {
    // A run continued from an earlier one (its history reached the ceiling in grace) goes on waiting where it was.
    const step = input.resume?.step ?? (await rotate(rotation));
    await grace(rotation, step);
    if (rotation.requests.rollback) return await rollBack(rotation, step);
    return await retire(rotation, step);
  } catch (error) {
    // Cancelled (Temporal UI, API) before it ended: the outcome is still recorded and the reporter settled.
    if (isCancellation(error) && !rotation.ended) {
      await CancellationScope.nonCancellable(async () => {
        rotation.state.end('failed');
        await record(rotation, 'failed', rotation.state.status.versions.current, { cancelled: true });
      });
    }
    throw error;
  }
}

/** prepare → create → set → test → (publish) → finish; the step input for grace (a rollback before finish throws). */
async function rotate(rotation: Rotation): Promise<StepInput> {
  const { input } = rotation;
  const prepared = await prepare(rotation);
  const step: StepInput = {
    secretId: input.secretId,
    token: rotation.token,
    prepared,
    ...compact({ passwordPolicy: input.passwordPolicy }),
  };
  // The worker that prepared the rotation says where store writes go (a queue the cluster rate-limits fleet-wide):
  // there they are ordinary activities, or the cluster could not pace them.
  const writes = prepared.storeWritesTaskQueue
    ? proxyActivities<RotorActivities>({
        ...stepOptions(rotation.maxAttempts),
        taskQueue: prepared.storeWritesTaskQueue,
      })
    : rotation.steps;
  // A create that waits on an outside service (an ACME order) is an ordinary activity that heartbeats, never a
  // local attempt: a worker killed mid-order is noticed by its heartbeat, and the next attempt resumes the order.
  const creates = prepared.remoteCreate
    ? proxyActivities<RotorActivities>({
        ...stepOptions(rotation.maxAttempts),
        startToCloseTimeout: prepared.remoteCreate.timeoutMs,
        heartbeatTimeout: prepared.remoteCreate.heartbeatMs,
        ...compact({ taskQueue: prepared.storeWritesTaskQueue }),
      })
    : writes;
  await create(rotation, creates, step);
  await switchOver(rotation, writes, step);
  return step;
}

/** One rotation's context: what every phase below reads. Only `ended` changes after it is made. */
interface Rotation {
  readonly input: RotationInput;
  readonly token: string;
  /** The patches this run has (`readPatches`, read once, first). */
  readonly patches: Record<PatchName<'rotateSecret'>, boolean>;
  readonly maxAttempts: number;
  readonly state: RotationState;
  readonly reporter: Reporter;
  readonly requests: OperatorRequests;
  readonly bake: BakeWindow | undefined;
  readonly run: StepRunner;
  /** A step's call, run again while its target or store does not answer, within the rotation's outage budget. */
  rideThrough<T>(call: () => Promise<T>, abort?: () => boolean): Promise<T>;
  /** The steps, each tried first as a local activity (a healthy rotation runs create → retire in one workflow task). */
  readonly steps: RotorActivities;
  /** Compensation and rollback: ordinary activities. */
  readonly undo: RotorActivities;
  /** prepare: an ordinary activity, so its result is in history before anything changes (a worker lost mid-task
   * would otherwise replay from the start and prepare again against labels the rotation itself has moved). */
  readonly preflight: RotorActivities;
  ended: boolean;
}

function beginRotation(input: RotationInput): Rotation {
  const patches = readPatches('rotateSecret');
  const token = input.resume?.step.token ?? uuid4();
  const maxAttempts = input.maxStepAttempts ?? DEFAULT_MAX_STEP_ATTEMPTS;
  const state = createRotationState(input, token);
  const local = new LocalAttempts();
  const reporter = createReporter(input, { local });
  if (!input.resume)
    reporter.audit({
      kind: 'triggered',
      phase: 'preparing',
      actor: actorOf(input.trigger),
      detail: { graceMs: input.graceMs },
    });
  reporter.watchPhases(() => ({ seq: state.phaseSeq, phase: state.status.phase }));
  const resume = input.resume;
  const requests = handleOperatorSignals(
    state,
    reporter,
    resume && {
      graceStartedAt: resume.graceStartedAt,
      graceEndsAt: resume.graceEndsAt,
      endGrace: resume.endGrace === true,
      ...compact({ rollback: resume.rollback }),
    },
  );
  return {
    input,
    token,
    patches,
    maxAttempts,
    state,
    reporter,
    requests,
    bake: input.bake
      ? watchConsumers(state, reporter, requests, input.bake, resume?.bake, resume?.step.prepared.recentAutoRollbacks)
      : undefined,
    run: createStepRunner(state, reporter, (name) => (name === 'create' || name === 'finish' ? token : undefined)),
    rideThrough: (call, abort) => rideThrough(call, input.outageBudgetMs ?? DEFAULT_OUTAGE_BUDGET_MS, abort),
    steps: localFirst<RotorActivities>(stepOptions(maxAttempts), local),
    undo: proxyActivities<RotorActivities>(undoOptions(maxAttempts)),
    preflight: proxyActivities<RotorActivities>(prepareOptions(maxAttempts)),
    ended: false,
  };
}

/** prepare changes nothing: a failure ends the rotation with nothing to undo. */
async function prepare(r: Rotation): Promise<PreparedRotation> {
  const { input, state } = r;
  try {
    const prepared = await r.run('prepare', 'preparing', () =>
      r.rideThrough(() =>
        r.preflight.prepareRotation({
          secretId: input.secretId,
          graceMs: input.graceMs,
          ...compact({ overrides: input.overrides, bakes: input.bake ? true : undefined }),
        }),
      ),
    );
    state.status.rotator = prepared.rotator;
    state.status.versions.current = prepared.currentVersionId;
    if (prepared.previousVersionId) state.status.versions.previous = prepared.previousVersionId;
    upsertSearchAttributes([{ key: SearchAttribute.rotator, value: prepared.rotator }]);
    return prepared;
  } catch (error) {
    throw await fail(r, 'prepare', error, 'nothing was changed');
  }
}

/** create writes the new version as AWSPENDING; the target is not touched, so a failure needs no compensation. */
async function create(r: Rotation, writes: RotorActivities, step: StepInput): Promise<void> {
  try {
    await r.run('create', 'creating', () => r.rideThrough(() => writes.createPending(step)));
    r.state.status.versions.pending = r.token;
  } catch (error) {
    throw await fail(r, 'create', error, 'the target was not touched');
  }
}

/**
 * set → test → (publish) → finish. From `set` on the target may hold the new credential (set's effect can land even
 * when its result is lost): any failure, or a rollback asked for before finish, reinstates the previous version.
 * A rollback asked for before finish ends the rotation here (the rolled-back failure); otherwise it goes on to grace.
 */
async function switchOver(r: Rotation, writes: RotorActivities, step: StepInput): Promise<void> {
  const { input, requests, state } = r;
  const { prepared } = step;
  let failedStep: StepName = 'set';
  const next = (name: StepName): void => {
    if (requests.rollback) throw new RollbackRequested();
    failedStep = name;
  };
  try {
    // A rollback asked for while a step waits out its target ends the wait (and unwinds through compensation).
    const riding = <T>(call: () => Promise<T>) => r.rideThrough(call, () => requests.rollback !== undefined);
    next('set');
    await r.run('set', 'setting', () => riding(() => r.steps.setPending(step)));
    next('test');
    const tested = await r.run('test', 'testing', () => riding(() => r.steps.testPending(step)));
    if (tested.holdMs) await holdBeforeFinish(r, tested.holdMs);
    next('finish');
    const finished = await r.run('finish', 'finishing', () => riding(() => writes.finishRotation(step)));
    // A credential with a lifetime (a certificate): its end and renewal time, for `rotor status` and the UI.
    if (finished.lifetime) {
      const { notBefore, notAfter } = finished.lifetime;
      const from = Date.parse(notBefore);
      const renewsAt = new Date(from + (input.renewAt ?? 2 / 3) * (Date.parse(notAfter) - from)).toISOString();
      upsertMemo({ credential: { notBefore, notAfter, renewsAt } });
    }
  } catch (error) {
    try {
      await CancellationScope.nonCancellable(() =>
        r.run('compensate', 'compensating', () =>
          r.undo.reinstate({ ...step, versionId: prepared.currentVersionId, mode: 'compensate' }),
        ),
      );
    } catch (compensationError) {
      throw await fail(
        r,
        failedStep,
        compensationError,
        `compensation failed too: version ${r.token} may still be AWSPENDING, left because the database may hold it. ` +
          `Once the database and the store answer, \`rotor check ${input.secretId}\` shows which version logs in, and ` +
          `\`rotor rotate ${input.secretId}\` converges: it logs in with whichever the database holds and sets it back to AWSCURRENT first`,
        'failed',
        false,
      );
    }
    state.status.versions = {
      current: prepared.currentVersionId,
      ...compact({ previous: prepared.previousVersionId }),
    };
    if (!(error instanceof RollbackRequested)) {
      throw await fail(
        r,
        failedStep,
        error,
        'compensated: the target and AWSCURRENT are as before the rotation',
        'compensated',
      );
    }
    state.end('rolled-back');
    r.reporter.alert(
      'rolled-back',
      `rotation of ${input.secretId} rolled back before finish: ${state.status.rollbackReason}`,
      { phase: 'rolled-back', step: failedStep },
    );
    await record(r, 'rolled-back', prepared.currentVersionId, { during: failedStep });
    throw rolledBack(
      r,
      result(r, 'rolled-back', prepared.currentVersionId, prepared.previousVersionId),
      'before finish',
    );
  }
  state.status.versions = { current: r.token, previous: prepared.currentVersionId };
}

/**
 * The new version is in the target and tested, but verifiers must learn it before it is used (a JWT signing key
 * in a cached JWKS): a durable wait, cut short only by a rollback (which then compensates).
 */
async function holdBeforeFinish(r: Rotation, holdMs: number): Promise<void> {
  const { input, requests, state } = r;
  state.enter('publishing');
  r.reporter.release();
  const until = Date.now() + holdMs;
  state.status.holdUntil = new Date(until).toISOString();
  r.reporter.audit({ kind: 'held-before-finish', phase: 'publishing', detail: { holdMs } });
  await waitUntil({
    deadline: () => until,
    done: () => requests.rollback !== undefined,
    summary: () =>
      `publishing: the new version of ${input.secretId} becomes current at ${state.status.holdUntil}, once every verifier can know it`,
  });
}

/**
 * The durable grace period: until its end (which `extendGrace` moves), a rollback or `endGrace`. With a bake window,
 * consumers' reports may roll back at any moment, and grace ends when both its timer and the window have run out
 * (the window's verdict may extend it). Held audit events go out only if grace really waits: a rotation with no
 * grace appends its whole trail once, at its end.
 *
 * Grace may last days and take signals and Updates from anyone who can reach the workflow: when the run's history
 * reaches its ceiling (`historyFull`), the rotation continues as new, carrying where it was (`RotationResume`).
 */
async function grace(r: Rotation, step: StepInput): Promise<void> {
  const { input, requests, state, reporter, bake } = r;
  const resumed = input.resume;
  if (resumed) {
    // The grace times, requests and bake window came with the run (beginRotation, before any handler was set).
    upsertSearchAttributes([{ key: SearchAttribute.rotator, value: step.prepared.rotator }]);
  } else {
    requests.graceStartedAt = Date.now();
    requests.graceEndsAt = requests.graceStartedAt + input.graceMs;
    state.status.graceEndsAt = new Date(requests.graceEndsAt).toISOString();
  }
  state.enter('grace');
  const stopped = () => requests.rollback !== undefined || requests.endGrace;
  const graceSummary = () =>
    `grace: the previous credential of ${input.secretId} stays valid until ${state.status.graceEndsAt}`;
  let deadline = () => requests.graceEndsAt;
  if (!bake) {
    if (!stopped() && Date.now() < requests.graceEndsAt) reporter.release();
    await waitUntil({ deadline, done: () => stopped() || historyFull(), summary: graceSummary });
  } else {
    reporter.release();
    if (!resumed) bake.start(r.token, step.prepared.currentVersionId, requests.graceStartedAt);
    bake.capAutoRollbacks(step.prepared.recentAutoRollbacks);
    deadline = () =>
      bake.open
        ? Date.now() < requests.graceEndsAt
          ? Math.min(requests.graceEndsAt, bake.endsAt)
          : bake.endsAt
        : requests.graceEndsAt;
    await waitUntil({
      deadline,
      done: () => stopped() || historyFull(),
      summary: () =>
        bake.open
          ? `bake: watching consumers' logins with the new credential of ${input.secretId} until ${new Date(bake.endsAt).toISOString()}`
          : graceSummary(),
      // The window's verdict, once its time is up: it may roll back, extend the window, or pass.
      woken: () => {
        if (!requests.rollback && bake.open && Date.now() >= bake.endsAt) bake.decide();
      },
    });
    if (requests.endGrace) bake.endedByOperator();
  }
  if (!stopped() && Date.now() < deadline()) await continueInNewRun(r, step);
}

/**
 * The most events a rotation's run records before it continues as new during grace; Temporal's own suggestion
 * (`continueAsNewSuggested`, from the server's history count and size limits) comes first when it is lower. A run's
 * history therefore ends a few events past the lower of the two (the events of its last workflow task), far from
 * Temporal's 51,200-event limit, however many signals and Updates arrive. docs/operations.md states it.
 */
export const HISTORY_CEILING = 10_000;

/** Below this a run never continues as new, whatever Temporal suggests: a resumed run's input alone must not loop it. */
const MIN_HISTORY_TO_CONTINUE = 200;

function historyFull(): boolean {
  const info = workflowInfo();
  if (info.historyLength < MIN_HISTORY_TO_CONTINUE) return false;
  return info.continueAsNewSuggested || info.historyLength >= HISTORY_CEILING;
}

/**
 * Ends this run and continues the rotation in a new one, where it was: the audit trail and alerts of this run settled
 * first (none is lost with the run), then the grace times, the bake window's counts and any request taken meanwhile
 * carried. Nothing after the idle check can take a request: handlers run only between workflow activations.
 */
async function continueInNewRun(r: Rotation, step: StepInput): Promise<never> {
  const { input, requests, state, bake } = r;
  do await r.reporter.settle();
  while (!r.reporter.idle());
  // A cancel that came while the trail settled (its appends cannot be cancelled) ends this rotation here, recorded.
  if (CancellationScope.current().consideredCancelled) throw new CancelledFailure('cancelled while continuing as new');
  const carried = bake?.carry();
  // The search attributes (the secret, its phase: how `rotor status` finds it) and the memo go along as they are.
  const { typedSearchAttributes, memo } = workflowInfo();
  return makeContinueAsNewFunc<typeof rotateSecret>({ typedSearchAttributes, ...compact({ memo }) })({
    ...input,
    resume: {
      step,
      status: state.status,
      graceStartedAt: requests.graceStartedAt,
      graceEndsAt: requests.graceEndsAt,
      ...compact({ rollback: requests.rollback, endGrace: requests.endGrace || undefined, bake: carried }),
    },
  });
}

/** A rollback asked for during grace: the previous version is reinstated in the target and the store. */
async function rollBack(r: Rotation, step: StepInput): Promise<never> {
  const { input, state } = r;
  const previous = step.prepared.currentVersionId;
  try {
    await CancellationScope.nonCancellable(() =>
      r.run('rollback', 'rolling-back', () => r.undo.reinstate({ ...step, versionId: previous, mode: 'rollback' })),
    );
  } catch (error) {
    throw await fail(
      r,
      'rollback',
      error,
      'the new credential may still be current: check the target and the labels',
      'failed',
      false,
    );
  }
  state.status.versions = { current: previous, previous: r.token };
  state.end('rolled-back');
  r.reporter.alert(
    'rolled-back',
    `rotation of ${input.secretId} rolled back during grace: ${state.status.rollbackReason}`,
    { phase: 'rolled-back' },
  );
  await record(r, 'rolled-back', previous, { during: 'grace' });
  throw rolledBack(r, result(r, 'rolled-back', previous, r.token), 'during grace');
}

/** After grace: waits for the previous login's sessions when the policy says so, then retires it. */
async function retire(r: Rotation, step: StepInput): Promise<RotationResult> {
  const { prepared } = step;
  const retirement = prepared.retirement;
  let note: string | undefined;
  try {
    if (retirement && retirement.retire !== 'none' && retirement.liveSessions === 'wait')
      note = await awaitSessions(r, step, retirement.maxWaitMs);
    const retired = await r.run('retire', 'retiring', () =>
      r.rideThrough(() =>
        r.steps.retirePrevious({
          ...step,
          ...(retirement?.liveSessions === 'terminate' ? { terminateSessions: true } : {}),
        }),
      ),
    );
    if (retirement) note = [retired.outcome, note].filter(Boolean).join('; ');
  } catch (error) {
    throw await fail(r, 'retire', error, 'the new credential is current; the previous one was not retired');
  }
  r.state.end('completed');
  await record(r, 'completed', r.token, {
    previousVersionId: prepared.currentVersionId,
    ...compact({ retirement: note }),
  });
  return result(r, 'completed', r.token, prepared.currentVersionId, note);
}

/**
 * Waits on durable timers, bounded by `maxWaitMs`, until the previous login has no live session. Returns a note
 * when the bound was reached with sessions left: the rotation says so rather than hanging.
 */
async function awaitSessions(r: Rotation, step: StepInput, maxWaitMs: number): Promise<string | undefined> {
  const { input, state } = r;
  const deadline = Date.now() + maxWaitMs;
  const pollMs = Math.min(30_000, Math.max(1000, Math.floor(maxWaitMs / 20)));
  const count = async () => (state.status.liveSessions = (await r.steps.countLiveSessions(step)).liveSessions ?? 0);
  let live = await count();
  if (live === 0) return undefined;
  state.status.sessionsWaitEndsAt = new Date(deadline).toISOString();
  state.enter('awaiting-sessions');
  r.reporter.release();
  r.reporter.alert(
    'awaiting-sessions',
    `retirement of the previous login of ${input.secretId} waits for ${live} live sessions, at the latest until ${state.status.sessionsWaitEndsAt}`,
    { phase: 'awaiting-sessions' },
  );
  while (live > 0 && Date.now() < deadline) {
    await sleep(Math.min(pollMs, deadline - Date.now()));
    live = await count();
  }
  return live > 0 ? `${live} live sessions left after waiting ${formatDuration(maxWaitMs)}` : undefined;
}

/** Ends the rotation in `phase` after a failure: alert, outcome, audit settled; returns the failure to throw. */
async function fail(
  r: Rotation,
  step: string,
  error: unknown,
  what: string,
  phase: 'failed' | 'compensated' = 'failed',
  riddenThrough = true,
): Promise<ApplicationFailure> {
  const { input, state } = r;
  state.end(phase);
  const unreachable =
    riddenThrough && typeOf(error) === ErrorType.Unavailable
      ? ` (it did not answer for ${formatDuration(input.outageBudgetMs ?? DEFAULT_OUTAGE_BUDGET_MS)}, the outage budget)`
      : '';
  const failure = ApplicationFailure.create({
    type: ROTATION_FAILED,
    message: `rotation of ${input.secretId} failed at ${step}: ${causeOf(error)}${unreachable}; ${what}`,
    nonRetryable: true,
    details: [{ step, errorType: typeOf(error), phase: state.status.phase } satisfies RotationFailureDetails],
  });
  r.reporter.alert(phase === 'compensated' ? 'compensated' : 'rotation-failed', failure.message, { phase, step });
  await record(r, phase, state.status.versions.current, {
    failedStep: step,
    ...(typeOf(error) ? { errorType: typeOf(error)! } : {}),
  });
  return failure;
}

/** Records the outcome (metrics, audit) and waits for the audit trail and alerts to settle. */
async function record(
  r: Rotation,
  outcome: RotationEnd['outcome'],
  versionId: string | undefined,
  detail: AuditEvent['detail'] = {},
): Promise<void> {
  const { status } = r.state;
  r.ended = true;
  r.reporter.ended(
    { outcome, ...compact({ rotator: status.rotator }) },
    { durationMs: Date.now() - Date.parse(status.startedAt), ...compact({ versionId }), detail },
  );
  await r.reporter.settle();
}

/**
 * How a rolled-back rotation ends: a failure of its own type (the Temporal UI shows it FAILED, not like a completed
 * rotation), carrying the result for the client.
 */
function rolledBack(r: Rotation, res: RotationResult, when: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ROTATION_ROLLED_BACK,
    message:
      `rotation of ${r.input.secretId} rolled back ${when}: ${r.state.status.rollbackReason ?? 'no reason given'}; ` +
      `version ${res.currentVersionId} is AWSCURRENT again`,
    nonRetryable: true,
    details: [res],
  });
}

function result(
  r: Rotation,
  outcome: RotationResult['outcome'],
  currentVersionId: string,
  previousVersionId?: string,
  retirementNote?: string,
): RotationResult {
  return {
    secretId: r.input.secretId,
    outcome,
    token: r.token,
    currentVersionId,
    ...compact({ previousVersionId }),
    ...compact({ retirement: retirementNote }),
    ...(outcome === 'completed'
      ? { rollBack: `rotor rollback ${r.input.secretId} reinstates the previous version (not Reset)` }
      : {}),
    status: r.state.status,
  };
}
