import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotationWorkflowId, SearchAttribute } from '../../packages/rotor/src/shared/constants';
import { ErrorType } from 'rotor-consumers/core';
import type { Phase } from '../../packages/rotor/src/shared/vocabulary';
import type { RetirementPolicy, RotationInput, RotationResult } from '../../packages/rotor/src/shared/rotation';
import { rolledBackResult } from '../../packages/rotor/src/client/rotation-client';
import {
  endGraceSignal,
  extendGraceSignal,
  rollbackSignal,
  rotateSecret,
  ROTATION_FAILED,
  statusQuery,
} from '../../packages/rotor/src/workflows';
import { uniqueName } from '../helpers/env';
import { failing, fakeActivities, gate, slowStep, type Recorded } from '../helpers/fake-activities';
import { timeSkipping } from '../helpers/time-skipping';

const DAY = 86_400_000;

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
});

afterAll(async () => {
  await env?.teardown();
});

/** Starts a rotation on a fresh task queue with the given fakes and runs `body` while a worker serves it. */
async function withRotation<T>(
  fakes: Recorded,
  body: (handle: WorkflowHandle<typeof rotateSecret>) => Promise<T>,
  input: Partial<RotationInput> = {},
): Promise<T> {
  const taskQueue = uniqueName('wf');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: fakes.activities,
  });
  const secretId = input.secretId ?? uniqueName('prod/db/app');
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(rotateSecret, {
      workflowId: rotationWorkflowId(secretId),
      taskQueue,
      args: [{ secretId, graceMs: DAY, maxStepAttempts: 2, ...input }],
    });
    return body(handle);
  });
}

/**
 * The rotation's result: a rolled-back rotation ends as a failure of type RotorRolledBack (so the Temporal UI lists
 * it FAILED) carrying its result, read back as the client does.
 */
async function resultOf(handle: WorkflowHandle<typeof rotateSecret>): Promise<RotationResult> {
  try {
    return await handle.result();
  } catch (error) {
    const rolled = error instanceof WorkflowFailedError ? rolledBackResult(error.cause) : undefined;
    if (rolled) return rolled;
    throw error;
  }
}

/** `prepareRotation` of an alternating pair with a retirement policy. */
function alternatingPair(retirement: RetirementPolicy) {
  return async () => ({
    attempt: 1,
    rotator: 'postgres-alternating-users',
    currentVersionId: 'version-current',
    retirement,
  });
}

async function phaseOf(handle: WorkflowHandle<typeof rotateSecret>): Promise<Phase> {
  return (await handle.query(statusQuery)).phase;
}

/** Polls the status query until the rotation reaches `phase` (queries do not advance time-skipped time). */
async function waitForPhase(handle: WorkflowHandle<typeof rotateSecret>, phase: Phase): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await phaseOf(handle)) === phase) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`rotation never reached ${phase}; it is ${await phaseOf(handle)}`);
}

async function failureOf(promise: Promise<unknown>): Promise<WorkflowFailedError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WorkflowFailedError) return error;
    throw error;
  }
  throw new Error('the rotation did not fail');
}

describe('rotateSecret', () => {
  it('runs create, set, test, finish, a 24-hour grace and retire, passing only ids and the token', async () => {
    const fakes = fakeActivities();
    const result = await withRotation(fakes, (handle) => resultOf(handle));
    expect(fakes.names()).toEqual([
      'prepareRotation',
      'createPending',
      'setPending',
      'testPending',
      'finishRotation',
      'retirePrevious',
    ]);
    expect(result.outcome).toBe('completed');
    expect(result.currentVersionId).toBe(result.token);
    expect(result.previousVersionId).toBe('version-current');
    expect(result.token).toMatch(/^[0-9a-f-]{36}$/);
    const { status } = result;
    expect(status.phase).toBe('completed');
    const finish = status.steps.find((s) => s.step === 'finish')!;
    expect(Date.parse(status.graceEndsAt!) - Date.parse(finish.endedAt!)).toBe(DAY);
    const retire = status.steps.find((s) => s.step === 'retire')!;
    expect(Date.parse(retire.startedAt)).toBeGreaterThanOrEqual(Date.parse(status.graceEndsAt!));
    // Every step got the same token, and only ids: the inputs are the whole payload.
    for (const call of fakes.steps().slice(1))
      expect(call.input).toMatchObject({ token: result.token, prepared: { currentVersionId: 'version-current' } });
    expect(JSON.stringify(fakes.calls)).not.toMatch(/password/i);
  });

  it("runs a healthy rotation's steps after prepare local-first: prepare the only activity scheduled in history", async () => {
    const fakes = fakeActivities();
    const events = await withRotation(
      fakes,
      async (handle) => {
        await resultOf(handle);
        return (await handle.fetchHistory()).events ?? [];
      },
      { graceMs: 0, reporting: { alerts: [] } },
    );
    expect(fakes.calls.map((c) => [c.name, c.local])).toEqual([
      ['prepareRotation', false],
      ['createPending', true],
      ['setPending', true],
      ['testPending', true],
      ['finishRotation', true],
      ['retirePrevious', true],
      ['rotationEnded', true],
      ['appendAudit', true], // with no grace to wait through, the whole trail in one append at the end
    ]);
    expect(fakes.auditEvents().map((e) => e.step ?? e.kind)).toEqual([
      'triggered',
      'prepare',
      'create',
      'set',
      'test',
      'finish',
      'retire',
      'outcome',
    ]);
    // prepare's result is in history before anything changes; the rest ran in the next workflow task.
    expect(events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean)).toEqual([
      'prepareRotation',
    ]);
    expect(events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')).toHaveLength(7);
    expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(2);
  });

  it('goes on as an ordinary activity with the attempts left after a retryable failure of the local attempt, never after a final one', async () => {
    let createCalls = 0;
    const fakes = fakeActivities({
      createPending: async () => {
        if (++createCalls === 1) throw new Error('store did not answer');
        return { attempt: 1, outcome: 'created' };
      },
      testPending: failing(ErrorType.TestFailed, 'the new password does not log in'),
    });
    const failure = await withRotation(fakes, (handle) => failureOf(handle.result()), { maxStepAttempts: 3 });
    const localOf = (name: string) => fakes.calls.filter((c) => c.name === name).map((c) => c.local);
    expect(localOf('createPending')).toEqual([true, false]);
    expect(localOf('testPending')).toEqual([true, false, false]); // 3 attempts: the local one and two ordinary
    expect(localOf('reinstate')).toEqual([false]); // compensation is always an ordinary activity
    expect(failure.cause?.message).toMatch(/failed at test/);

    const final = fakeActivities({
      setPending: async () => {
        const { ApplicationFailure } = await import('@temporalio/common');
        throw ApplicationFailure.nonRetryable(
          'neither AWSCURRENT nor AWSPREVIOUS logs in',
          ErrorType.CredentialsRejected,
        );
      },
    });
    await withRotation(final, (handle) => failureOf(handle.result()), { maxStepAttempts: 3 });
    expect(final.calls.filter((c) => c.name === 'setPending').map((c) => c.local)).toEqual([true]);
  });

  it("counts the local attempt in a step's attempts, and runs ordinary activities only with a single attempt per step", async () => {
    let setCalls = 0;
    const fakes = fakeActivities({
      setPending: async () =>
        ++setCalls === 1 ? Promise.reject(new Error('connection reset')) : { attempt: 1, outcome: 'changed' },
    });
    const result = await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0 });
    expect(result.status.steps.find((s) => s.step === 'set')?.attempts).toBe(2);
    expect(result.status.steps.find((s) => s.step === 'test')?.attempts).toBe(1);

    const single = fakeActivities();
    await withRotation(single, (handle) => resultOf(handle), { graceMs: 0, maxStepAttempts: 1 });
    expect(single.steps().every((c) => !c.local)).toBe(true);
  });

  it('answers the status query at each phase and moves the RotorPhase search attribute', async () => {
    const gates = { set: gate(), test: gate(), finish: gate() };
    const fakes = fakeActivities({
      setPending: slowStep(async () => (await gates.set.wait, { attempt: 1, outcome: 'changed' })),
      testPending: slowStep(async () => (await gates.test.wait, { attempt: 1, outcome: 'passed' })),
      finishRotation: slowStep(async () => (await gates.finish.wait, { attempt: 1, outcome: 'finished' })),
    });
    await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'setting');
      const setting = await handle.query(statusQuery);
      expect(setting.rotator).toBe('postgres-single-user');
      expect(setting.versions).toEqual({
        current: 'version-current',
        previous: 'version-previous',
        pending: setting.token,
      });
      expect(setting.steps.map((s) => [s.step, s.outcome])).toEqual([
        ['prepare', 'postgres-single-user'],
        ['create', 'created'],
        ['set', undefined],
      ]);
      expect((await handle.describe()).typedSearchAttributes.get(SearchAttribute.phase)).toBe('setting');
      gates.set.open();
      await waitForPhase(handle, 'testing');
      gates.test.open();
      await waitForPhase(handle, 'finishing');
      gates.finish.open();
      await waitForPhase(handle, 'grace');
      const grace = await handle.query(statusQuery);
      expect(grace.versions).toEqual({ current: grace.token, previous: 'version-current' });
      expect(grace.graceEndsAt).toBeDefined();
      const description = await handle.describe();
      expect(description.typedSearchAttributes.get(SearchAttribute.phase)).toBe('grace');
      expect(description.typedSearchAttributes.get(SearchAttribute.rotator)).toBe('postgres-single-user');
      expect(description.memo).toMatchObject({ phase: 'grace', token: grace.token });
      await resultOf(handle);
      expect(await phaseOf(handle)).toBe('completed');
    });
  });

  it('rolls back during grace: reinstates the previous version and does not retire', async () => {
    const fakes = fakeActivities();
    const { result, ended } = await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'grace');
      await handle.signal(rollbackSignal, { reason: 'app errors after rotation', by: 'oncall' });
      const rotation = await resultOf(handle);
      return { result: rotation, ended: await failureOf(handle.result()), status: (await handle.describe()).status };
    });
    // The Temporal UI lists it FAILED with its own type, never like a completed rotation.
    expect(ended.cause).toMatchObject({ type: 'RotorRolledBack' });
    expect(ended.cause?.message).toMatch(
      /rolled back during grace: app errors after rotation; version version-current is AWSCURRENT again/,
    );
    expect(result.outcome).toBe('rolled-back');
    expect(result.currentVersionId).toBe('version-current');
    expect(result.previousVersionId).toBe(result.token);
    expect(result.status.rollbackReason).toBe('app errors after rotation');
    expect(fakes.names()).not.toContain('retirePrevious');
    const reinstate = fakes.calls.find((c) => c.name === 'reinstate');
    expect(reinstate?.input).toMatchObject({ mode: 'rollback', versionId: 'version-current', token: result.token });
  });

  it('extends grace on extendGrace and retires only when the longer period has passed', async () => {
    const fakes = fakeActivities();
    await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'grace');
      const before = Date.parse((await handle.query(statusQuery)).graceEndsAt!);
      await handle.signal(extendGraceSignal, { byMs: 2 * DAY });
      const after = Date.parse((await handle.query(statusQuery)).graceEndsAt!);
      expect(after - before).toBe(2 * DAY);
      await env.sleep(2 * DAY);
      expect(await phaseOf(handle)).toBe('grace');
      expect(fakes.names()).not.toContain('retirePrevious');
      await env.sleep(DAY + 1000);
      await resultOf(handle);
      expect(fakes.names()).toContain('retirePrevious');
    });
  });

  it('ends grace at once on endGrace', async () => {
    const fakes = fakeActivities();
    const result = await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'grace');
      await handle.signal(endGraceSignal);
      return resultOf(handle);
    });
    const { status } = result;
    const retire = status.steps.find((s) => s.step === 'retire')!;
    expect(Date.parse(retire.startedAt)).toBeLessThan(Date.parse(status.graceEndsAt!));
    expect(result.outcome).toBe('completed');
  });

  it('restores the previous password when the test step fails', async () => {
    const fakes = fakeActivities({
      testPending: failing(ErrorType.TestFailed, 'secret s: test of the pending credential failed'),
    });
    const failure = await withRotation(fakes, async (handle) => {
      const failed = await failureOf(handle.result());
      expect(await phaseOf(handle)).toBe('compensated');
      return failed;
    });
    expect(fakes.names()).toEqual([
      'prepareRotation',
      'createPending',
      'setPending',
      'testPending',
      'testPending',
      'reinstate',
    ]);
    expect(fakes.steps().at(-1)?.input).toMatchObject({ mode: 'compensate', versionId: 'version-current' });
    expect(failure.cause).toMatchObject({ type: ROTATION_FAILED });
    expect(failure.cause?.message).toMatch(
      /failed at test: .*test of the pending credential failed.*compensated: the target and AWSCURRENT are as before/,
    );
  });

  it('compensates when finish fails, after its retries (no outage budget)', async () => {
    const fakes = fakeActivities({ finishRotation: failing(ErrorType.Unavailable, 'store did not answer') });
    const failure = await withRotation(fakes, (handle) => failureOf(handle.result()), { outageBudgetMs: 0 });
    expect(fakes.names().filter((n) => n === 'finishRotation')).toHaveLength(2);
    expect(fakes.names().at(-1)).toBe('reinstate');
    expect(failure.cause?.message).toMatch(/failed at finish: store did not answer/);
  });

  it('rides out a store that does not answer for the outage budget, on durable pauses, then compensates and says so', async () => {
    const fakes = fakeActivities({ finishRotation: failing(ErrorType.Unavailable, 'store did not answer') });
    const failure = await withRotation(fakes, (handle) => failureOf(handle.result()), { outageBudgetMs: 60_000 });
    // Rounds of two attempts, 10 s apart, for a minute: several rounds, then compensation.
    expect(fakes.names().filter((n) => n === 'finishRotation').length).toBeGreaterThanOrEqual(8);
    expect(fakes.names().at(-1)).toBe('reinstate');
    expect(failure.cause?.message).toMatch(
      /failed at finish: store did not answer.*\(it did not answer for 1m, the outage budget\)/,
    );
  });

  it('a store that answers again within the outage budget: the rotation completes', async () => {
    let failures = 5;
    const fakes = fakeActivities({
      createPending: async () => {
        if (failures-- > 0) {
          const { ApplicationFailure } = await import('@temporalio/common');
          throw ApplicationFailure.create({ type: ErrorType.Unavailable, message: 'store did not answer' });
        }
        return { attempt: 1, outcome: 'created' };
      },
    });
    const result = await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0 });
    expect(result.outcome).toBe('completed');
    expect(fakes.names().filter((n) => n === 'createPending')).toHaveLength(6);
  });

  it('compensates when set fails without retry, since its change may have landed', async () => {
    const fakes = fakeActivities({
      setPending: async () => {
        const { ApplicationFailure } = await import('@temporalio/common');
        throw ApplicationFailure.nonRetryable(
          'neither AWSCURRENT nor AWSPREVIOUS logs in',
          ErrorType.CredentialsRejected,
        );
      },
    });
    await withRotation(fakes, (handle) => failureOf(handle.result()));
    expect(fakes.names()).toEqual(['prepareRotation', 'createPending', 'setPending', 'reinstate']);
  });

  it('does not compensate when create fails', async () => {
    const fakes = fakeActivities({ createPending: failing(ErrorType.Unavailable, 'store did not answer') });
    const failure = await withRotation(
      fakes,
      async (handle) => {
        const failed = await failureOf(handle.result());
        expect(await phaseOf(handle)).toBe('failed');
        return failed;
      },
      { outageBudgetMs: 0 },
    );
    expect(fakes.names()).toEqual(['prepareRotation', 'createPending', 'createPending']);
    expect(failure.cause?.message).toMatch(/failed at create: .*the target was not touched/);
  });

  it('fails without touching anything when prepare finds an invalid secret', async () => {
    const fakes = fakeActivities({
      prepareRotation: async () => {
        const { ApplicationFailure } = await import('@temporalio/common');
        throw ApplicationFailure.nonRetryable('secret s is not valid: host: is required', ErrorType.InvalidSecret);
      },
    });
    const failure = await withRotation(fakes, (handle) => failureOf(handle.result()));
    expect(fakes.names()).toEqual(['prepareRotation']);
    expect(failure.cause?.message).toMatch(
      /failed at prepare: secret s is not valid: host: is required \[RotorInvalidSecret\]; nothing was changed/,
    );
  });

  it("waits for the previous login's live sessions before retiring, on durable timers", async () => {
    const counts = [2, 1, 0];
    const fakes = fakeActivities({
      prepareRotation: alternatingPair({ retire: 'disable-login', liveSessions: 'wait', maxWaitMs: DAY }),
      countLiveSessions: async () => {
        const liveSessions = counts.shift() ?? 0;
        return { attempt: 1, liveSessions };
      },
      retirePrevious: async () => ({ attempt: 1, outcome: 'disabled-login' }),
    });
    const result = await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'awaiting-sessions');
        const waiting = await handle.query(statusQuery);
        expect(waiting.liveSessions).toBe(2);
        expect((await handle.describe()).typedSearchAttributes.get(SearchAttribute.phase)).toBe('awaiting-sessions');
        return resultOf(handle);
      },
      { graceMs: 0 },
    );
    expect(fakes.names().filter((n) => n === 'countLiveSessions')).toHaveLength(3);
    expect(fakes.names().at(-1)).toBe('retirePrevious');
    expect(result.retirement).toBe('disabled-login');
  });

  it('says so in its result when the wait for live sessions reaches its bound', async () => {
    const fakes = fakeActivities({
      prepareRotation: alternatingPair({ retire: 'scramble-password', liveSessions: 'wait', maxWaitMs: 3_600_000 }),
      countLiveSessions: async () => ({ attempt: 1, liveSessions: 1 }),
      retirePrevious: async () => ({ attempt: 1, outcome: 'scrambled-password' }),
    });
    const result = await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0 });
    expect(result.outcome).toBe('completed');
    expect(result.retirement).toBe('scrambled-password; 1 live sessions left after waiting 1h');
  });

  it('does not wait when the policy terminates sessions, and asks retire to end them', async () => {
    const fakes = fakeActivities({
      prepareRotation: alternatingPair({ retire: 'disable-login', liveSessions: 'terminate', maxWaitMs: 3_600_000 }),
    });
    await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0 });
    expect(fakes.names()).not.toContain('countLiveSessions');
    expect(fakes.steps().at(-1)?.input).toMatchObject({ terminateSessions: true });
  });

  it('unwinds through compensation when rollback arrives before finish', async () => {
    const setGate = gate();
    const fakes = fakeActivities({
      setPending: slowStep(async () => (await setGate.wait, { attempt: 1, outcome: 'changed' })),
    });
    const result = await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'setting');
      await handle.signal(rollbackSignal, { reason: 'wrong secret' });
      setGate.open();
      return resultOf(handle);
    });
    expect(result.outcome).toBe('rolled-back');
    expect(result.currentVersionId).toBe('version-current');
    // set's local attempt, then its ordinary activity, which the rollback waits for: then compensation.
    expect(fakes.names()).toEqual(['prepareRotation', 'createPending', 'setPending', 'setPending', 'reinstate']);
    expect(fakes.steps().at(-1)?.input).toMatchObject({ mode: 'compensate' });
  });
});

describe('rotateSecret: a new version that must be published before it is used (JWT signing keys)', () => {
  const HOLD = 15 * 60_000;

  it('waits holdMs after test on a durable timer in phase publishing, audited, before finish', async () => {
    const fakes = fakeActivities({ testPending: async () => ({ attempt: 1, outcome: 'passed', holdMs: HOLD }) });
    const result = await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'publishing');
        const holding = await handle.query(statusQuery);
        expect(fakes.names()).not.toContain('finishRotation');
        const testEnded = Date.parse(holding.steps.find((s) => s.step === 'test')!.endedAt!);
        expect(Date.parse(holding.holdUntil!) - testEnded).toBeGreaterThanOrEqual(HOLD);
        return resultOf(handle);
      },
      { graceMs: 60_000 },
    );
    expect(result.outcome).toBe('completed');
    const finish = result.status.steps.find((s) => s.step === 'finish')!;
    expect(Date.parse(finish.startedAt)).toBeGreaterThanOrEqual(Date.parse(result.status.holdUntil!));
    expect(fakes.auditEvents().find((e) => e.kind === 'held-before-finish')).toMatchObject({
      phase: 'publishing',
      detail: { holdMs: HOLD },
    });
  });

  it('compensates when a rollback arrives while publishing, and never finishes', async () => {
    const fakes = fakeActivities({ testPending: async () => ({ attempt: 1, outcome: 'passed', holdMs: HOLD }) });
    const result = await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'publishing');
      await handle.signal(rollbackSignal, { reason: 'the JWKS endpoint is misconfigured' });
      return resultOf(handle);
    });
    expect(result.outcome).toBe('rolled-back');
    expect(fakes.names()).toEqual(['prepareRotation', 'createPending', 'setPending', 'testPending', 'reinstate']);
    expect(fakes.steps().at(-1)?.input).toMatchObject({ mode: 'compensate' });
  });

  it("passes the rotation's grace to prepare, which JWT signing keys check against token lifetime", async () => {
    const fakes = fakeActivities();
    await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 90_000 });
    expect(fakes.calls.find((c) => c.name === 'prepareRotation')?.input).toMatchObject({ graceMs: 90_000 });
  });
});

describe('rotateSecret reporting: audit trail, alerts, outcome', () => {
  const reporting = { alerts: ['oncall'], stuckPhaseBudgetMs: 2000 };

  it('holds audit events through the working phases and appends them in one batch when grace begins', async () => {
    const finishGate = gate();
    const fakes = fakeActivities({
      finishRotation: slowStep(async () => (await finishGate.wait, { attempt: 1, outcome: 'finished' })),
    });
    await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'finishing');
        expect(fakes.names()).toEqual([
          'prepareRotation',
          'createPending',
          'setPending',
          'testPending',
          'finishRotation',
          'finishRotation',
        ]);
        expect(fakes.calls.filter((c) => c.name === 'appendAudit')).toEqual([]);
        finishGate.open();
        await waitForPhase(handle, 'grace');
        const appended = await (async () => {
          for (let i = 0; i < 200; i++) {
            const batches = fakes.calls.filter((c) => c.name === 'appendAudit');
            if (batches.length > 0) return batches;
            await new Promise((r) => setTimeout(r, 25));
          }
          return [];
        })();
        expect(appended).toHaveLength(1);
        expect((appended[0]!.input as { kind: string; step?: string }[]).map((e) => e.step ?? e.kind)).toEqual([
          'triggered',
          'prepare',
          'create',
          'set',
          'test',
          'finish',
        ]);
        await handle.signal(endGraceSignal, { by: 'test' });
        await resultOf(handle);
      },
      { reporting },
    );
  });

  it('appends at once when a step fails, without waiting for the rotation to end', async () => {
    const compensateGate = gate();
    const fakes = fakeActivities({
      testPending: failing(ErrorType.TestFailed, 'the new password does not log in'),
      reinstate: async () => (await compensateGate.wait, { attempt: 1, outcome: 'changed' }),
    });
    const failure = withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'compensating');
        for (let i = 0; i < 200 && !fakes.calls.some((c) => c.name === 'appendAudit'); i++)
          await new Promise((r) => setTimeout(r, 25));
        const kinds = fakes.calls
          .filter((c) => c.name === 'appendAudit')
          .flatMap((c) => (c.input as { kind: string }[]).map((e) => e.kind));
        expect(kinds).toContain('step-failed');
        compensateGate.open();
        return resultOf(handle);
      },
      { reporting, maxStepAttempts: 1 },
    );
    await expect(failure).rejects.toThrow();
  });

  it('audits the trigger, every step with its duration and the outcome, under ids unique to the run', async () => {
    const fakes = fakeActivities();
    const result = await withRotation(fakes, (handle) => resultOf(handle), {
      trigger: { kind: 'cli', by: 'alice' },
      reporting,
    });
    const events = fakes.auditEvents();
    expect(events.map((e) => [e.kind, e.step ?? e.outcome])).toEqual([
      ['triggered', undefined],
      ['step', 'prepare'],
      ['step', 'create'],
      ['step', 'set'],
      ['step', 'test'],
      ['step', 'finish'],
      ['step', 'retire'],
      ['outcome', 'completed'],
    ]);
    expect(events[0]).toMatchObject({ actor: 'cli:alice', secretId: result.secretId });
    expect(events.find((e) => e.step === 'create')).toMatchObject({ versionId: result.token, outcome: 'created' });
    expect(events.at(-1)).toMatchObject({ versionId: result.token, detail: { previousVersionId: 'version-current' } });
    for (const event of events.filter((e) => e.kind === 'step')) expect(event.durationMs).toBeGreaterThanOrEqual(0);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    expect(events.map((e) => e.eventId.split('/').at(-1))).toEqual(events.map((_, i) => String(i)));
    expect(fakes.calls.filter((c) => c.name === 'rotationEnded').map((c) => c.input)).toEqual([
      { secretId: result.secretId, rotator: 'postgres-single-user', outcome: 'completed' },
    ]);
    expect(fakes.alerts()).toEqual([]);
  });

  it('alerts on compensation and audits the failed step, the compensation and the outcome', async () => {
    const fakes = fakeActivities({
      testPending: failing(ErrorType.TestFailed, 'secret s: test of the pending credential failed'),
    });
    await withRotation(fakes, (handle) => failureOf(handle.result()), { reporting });
    expect(fakes.alerts().map((a) => [a.kind, a.step])).toEqual([['compensated', 'test']]);
    expect(fakes.alerts()[0]!.message).toMatch(/failed at test/);
    const kinds = fakes.auditEvents().map((e) => `${e.kind}:${e.step ?? e.outcome}`);
    expect(kinds).toEqual(
      expect.arrayContaining(['step-failed:test', 'step:compensate', 'outcome:compensated', 'alert-sent:compensated']),
    );
    expect(fakes.calls.find((c) => c.name === 'rotationEnded')?.input).toMatchObject({ outcome: 'compensated' });
  });

  it('alerts that the rotation failed when compensation fails too', async () => {
    const fakes = fakeActivities({
      testPending: failing(ErrorType.TestFailed, 'test failed'),
      reinstate: failing(ErrorType.CredentialsRejected, 'no version logs in'),
    });
    await withRotation(fakes, (handle) => failureOf(handle.result()), { reporting });
    expect(fakes.alerts().map((a) => a.kind)).toEqual(['rotation-failed']);
    expect(fakes.calls.find((c) => c.name === 'rotationEnded')?.input).toMatchObject({ outcome: 'failed' });
  });

  it('audits a rollback request with its operator and alerts on the rollback', async () => {
    const fakes = fakeActivities();
    await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'grace');
        await handle.signal(rollbackSignal, { reason: 'app errors', by: 'bob' });
        return resultOf(handle);
      },
      { reporting },
    );
    expect(fakes.auditEvents().find((e) => e.kind === 'rollback-requested')).toMatchObject({
      actor: 'signal:bob',
      detail: { reason: 'app errors' },
    });
    expect(fakes.alerts().map((a) => a.kind)).toEqual(['rolled-back']);
    expect(fakes.auditEvents().find((e) => e.kind === 'outcome')).toMatchObject({ outcome: 'rolled-back' });
    expect(fakes.auditEvents().at(-1)).toMatchObject({ kind: 'alert-sent', outcome: 'rolled-back' });
  });

  it('alerts when retirement waits on live sessions', async () => {
    const counts = [2, 0];
    const fakes = fakeActivities({
      prepareRotation: alternatingPair({ retire: 'disable-login', liveSessions: 'wait', maxWaitMs: DAY }),
      countLiveSessions: async () => ({ attempt: 1, liveSessions: counts.shift() ?? 0 }),
    });
    await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0, reporting });
    expect(fakes.alerts().map((a) => [a.kind, a.phase])).toEqual([['awaiting-sessions', 'awaiting-sessions']]);
    expect(fakes.alerts()[0]!.message).toMatch(/waits for 2 live sessions/);
  });

  it('alerts once when a working phase outlasts the budget, and never for grace', async () => {
    const fakes = fakeActivities({
      setPending: slowStep(
        async () => (await new Promise((r) => setTimeout(r, 5000)), { attempt: 1, outcome: 'changed' }),
      ),
    });
    await withRotation(fakes, (handle) => resultOf(handle), { reporting });
    expect(fakes.alerts().map((a) => [a.kind, a.phase])).toEqual([['stuck', 'setting']]);
    expect(fakes.alerts()[0]!.message).toMatch(/has been setting for more than 2\.0s/);
  });

  it('audits an alert that could not be delivered', async () => {
    const fakes = fakeActivities({
      testPending: failing(ErrorType.TestFailed, 'test failed'),
      notify: async ({ routes }) => routes.map((route) => ({ route, ok: false, attempts: 5, error: 'HTTP 500' })),
    });
    await withRotation(fakes, (handle) => failureOf(handle.result()), { reporting });
    expect(fakes.auditEvents().find((e) => e.kind === 'alert-failed')).toMatchObject({
      outcome: 'compensated',
      detail: { route: 'oncall', attempts: 5, error: 'HTTP 500' },
    });
  });

  it('alerts when the audit trail cannot be written after the rotation ended, and ends once it is', async () => {
    let outcomeAppends = 0;
    const fakes = fakeActivities({
      appendAudit: async (events) => {
        // The audit database is away for the outcome's append: its first 4 attempts fail (the local one, then
        // ordinary activities with Temporal's backoff).
        if (events.some((e) => e.kind === 'outcome') && ++outcomeAppends < 5)
          throw new Error('audit database unreachable');
        return { appended: events.length, duplicates: 0 };
      },
    });
    const result = await withRotation(fakes, (handle) => resultOf(handle), { graceMs: 0, reporting });
    expect(result.outcome).toBe('completed');
    expect(fakes.alerts().map((a) => a.kind)).toEqual(['stuck']);
    expect(fakes.alerts()[0]!.message).toMatch(/has ended, but its audit trail has not been written for 2\.0s/);
    expect(fakes.auditEvents().filter((e) => e.kind === 'outcome')).toHaveLength(5);
  });

  it('records the outcome of a rotation cancelled during grace, and ends cancelled', async () => {
    const fakes = fakeActivities();
    const failure = await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'grace');
        await handle.cancel();
        return failureOf(handle.result());
      },
      { reporting },
    );
    expect(failure.cause).toBeInstanceOf(CancelledFailure);
    expect(fakes.auditEvents().find((e) => e.kind === 'outcome')).toMatchObject({
      outcome: 'failed',
      detail: { cancelled: true },
    });
    expect(fakes.calls.find((c) => c.name === 'rotationEnded')?.input).toMatchObject({ outcome: 'failed' });
    expect(fakes.names()).not.toContain('retirePrevious');
  });

  it('a rotation cancelled during grace shows phase failed with its end time, not grace', async () => {
    const fakes = fakeActivities();
    const { status, phase } = await withRotation(fakes, async (handle) => {
      await waitForPhase(handle, 'grace');
      await handle.cancel();
      await failureOf(handle.result());
      const described = await handle.describe();
      return {
        status: await handle.query(statusQuery),
        phase: described.typedSearchAttributes.get(SearchAttribute.phase),
      };
    });
    expect(status.phase).toBe('failed');
    expect(status.endedAt).toBeDefined();
    expect(Date.parse(status.endedAt!)).toBeGreaterThanOrEqual(Date.parse(status.startedAt));
    expect(phase).toBe('failed');
  });

  it('compensates, alerts and audits a rotation cancelled during set', async () => {
    const setGate = gate();
    const fakes = fakeActivities({
      setPending: slowStep(async () => (await setGate.wait, { attempt: 1, outcome: 'changed' })),
    });
    await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'setting');
        await handle.cancel();
        // The rotation does not wait for the cancelled step: it compensates at once. The step ends only afterwards
        // (the time-skipping server refuses a cancel request that crosses the step's completion).
        await waitForPhase(handle, 'compensated');
        setGate.open();
        return failureOf(handle.result());
      },
      { reporting },
    );
    expect(fakes.names().at(-1)).toBe('reinstate');
    expect(fakes.alerts().map((a) => a.kind)).toEqual(['compensated']);
    expect(fakes.auditEvents().find((e) => e.kind === 'outcome')?.outcome).toBe('compensated');
  });

  it('keeps signals from anywhere to short text, and ignores a grace extension that is not a number', async () => {
    const fakes = fakeActivities();
    await withRotation(
      fakes,
      async (handle) => {
        await waitForPhase(handle, 'grace');
        const before = (await handle.query(statusQuery)).graceEndsAt;
        await handle.signal(extendGraceSignal, { byMs: '3600000' as unknown as number });
        expect((await handle.query(statusQuery)).graceEndsAt).toBe(before);
        await handle.signal(rollbackSignal, { reason: 'x'.repeat(3000), by: { name: 'mallory' } as unknown as string });
        return resultOf(handle);
      },
      { reporting },
    );
    const requested = fakes.auditEvents().find((e) => e.kind === 'rollback-requested')!;
    expect(requested.actor).toBe('signal:ui-or-api');
    expect(requested.detail?.reason).toHaveLength(500);
    expect(fakes.auditEvents().find((e) => e.kind === 'outcome')?.outcome).toBe('rolled-back');
  });

  it('sends no alert and audits still when the secret has no routes', async () => {
    const fakes = fakeActivities({ testPending: failing(ErrorType.TestFailed, 'test failed') });
    await withRotation(fakes, (handle) => failureOf(handle.result()));
    expect(fakes.alerts()).toEqual([]);
    expect(fakes.auditEvents().at(-1)).toMatchObject({ kind: 'outcome', outcome: 'compensated' });
  });
});
