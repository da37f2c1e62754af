import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { RotorActivities } from '../../packages/rotor/src/activities';
import { ErrorType } from 'rotor-consumers/core';
import type { Alert, AuditEvent } from '../../packages/rotor/src/shared/reporting';

export type ActivityName = keyof RotorActivities;

/** The activities that report (audit, alerts, metrics) rather than rotate. */
const REPORTING: readonly ActivityName[] = ['appendAudit', 'notify', 'rotationEnded', 'untilWindowOpens'];

/** Records each activity call, in order, with its input. */
export interface Recorded {
  activities: RotorActivities;
  /** Every call; `local` marks a step's first attempt, run as a local activity (src/workflows/local-first.ts). */
  calls: { name: ActivityName; input: unknown; local: boolean }[];
  /** The rotation's step calls, in order, without the reporting activities. */
  steps(): Recorded['calls'];
  /** The names of `steps()`. */
  names(): ActivityName[];
  /** Every audit event appended, in order. */
  auditEvents(): AuditEvent[];
  /** Every alert sent, in order. */
  alerts(): Alert[];
}

/**
 * Typed fakes of rotor's activities for workflow tests: each succeeds as the real one would on a healthy stack,
 * unless `overrides` says otherwise.
 */
export function fakeActivities(overrides: Partial<RotorActivities> = {}): Recorded {
  const base: RotorActivities = {
    prepareRotation: async () => ({
      attempt: 1,
      outcome: 'postgres-single-user',
      rotator: 'postgres-single-user',
      currentVersionId: 'version-current',
      previousVersionId: 'version-previous',
    }),
    renewalDue: async () => ({
      attempt: 1,
      outcome: 'lifetime',
      basis: 'lifetime',
      waitMs: 0,
      dueAt: new Date().toISOString(),
    }),
    prepareRollback: async () => ({
      attempt: 1,
      outcome: 'postgres-single-user',
      rotator: 'postgres-single-user',
      currentVersionId: 'version-current',
      previousVersionId: 'version-previous',
    }),
    checkSecret: async ({ secretId }) => ({ secretId, ok: true, checks: [] }),
    setupSecret: async () => ({ owner: 'app_owner', statements: [], applied: 0 }),
    createPending: async () => ({ attempt: 1, outcome: 'created' }),
    setPending: async () => ({ attempt: 1, outcome: 'changed' }),
    testPending: async () => ({ attempt: 1, outcome: 'passed' }),
    finishRotation: async () => ({ attempt: 1, outcome: 'finished' }),
    retirePrevious: async () => ({ attempt: 1, outcome: 'nothing-to-retire' }),
    countLiveSessions: async () => ({ attempt: 1, outcome: '0 live sessions', liveSessions: 0 }),
    reinstate: async () => ({ attempt: 1, outcome: 'changed' }),
    appendAudit: async (events) => ({ appended: events.length, duplicates: 0 }),
    notify: async ({ routes }) => routes.map((route) => ({ route, ok: true, attempts: 1 })),
    rotationEnded: async () => undefined,
    untilWindowOpens: async () => 0,
    leaseTermsOf: async () => ({
      ttlMs: 60_000,
      maxTtlMs: 180_000,
      renewEveryMs: 20_000,
      instanceTimeoutMs: 80_000,
      replaceLeadMs: 60_000,
    }),
    issueLeaseCredential: async ({ leaseId, generation }) => ({
      attempt: 1,
      username: `v_fake_${leaseId.slice(0, 4)}_${generation}`,
    }),
    renewLeaseCredential: async () => ({ attempt: 1, gone: false }),
    revokeLeaseCredential: async () => ({ attempt: 1, existed: true, sessionsEnded: 0 }),
    rewrapPlan: async () => ({
      attempt: 1,
      primaryId: 'k2',
      prePublicationMs: 2000,
      tables: ['app-db:items.secret'],
      rows: { k1: 0, k2: 0 },
    }),
    rewrapBatch: async () => ({
      attempt: 1,
      primaryId: 'k2',
      scanned: 0,
      rewrapped: 0,
      changedMeanwhile: 0,
      refused: {},
      refusedKeys: [],
      done: true,
      elapsedMs: 5,
    }),
    countKeyringRows: async () => ({ attempt: 1, primaryId: 'k2', rows: { k2: 0 }, keys: [] }),
    retireKeyringKeys: async () => ({
      attempt: 1,
      outcome: 'disabled-1-removed-0',
      disabled: ['k1'],
      removed: [],
      rows: { k2: 0 },
    }),
  };
  const calls: Recorded['calls'] = [];
  const activities = Object.fromEntries(
    (Object.keys(base) as ActivityName[]).map((name) => {
      const impl = (overrides[name] ?? base[name]) as (input: unknown) => Promise<unknown>;
      return [
        name,
        async (input: unknown) => (calls.push({ name, input, local: Context.current().info.isLocal }), impl(input)),
      ];
    }),
  ) as unknown as RotorActivities;
  return {
    activities,
    calls,
    steps: () => calls.filter((c) => !REPORTING.includes(c.name)),
    names: () => calls.filter((c) => !REPORTING.includes(c.name)).map((c) => c.name),
    auditEvents: () => calls.filter((c) => c.name === 'appendAudit').flatMap((c) => c.input as AuditEvent[]),
    alerts: () => calls.filter((c) => c.name === 'notify').map((c) => (c.input as { alert: Alert }).alert),
  };
}

/** An activity that always fails with rotor's typed error. */
export function failing(type: ErrorType, message: string) {
  return async (): Promise<never> => {
    throw ApplicationFailure.create({ type, message, nonRetryable: false });
  };
}

/**
 * A step that takes long: its local attempt gives up at once, as it would at its timeout, and the ordinary activity
 * that follows runs `impl`. A test can look at a rotation while a step is in progress only then: a local attempt
 * holds the workflow task (and the time-skipping server's clock) until it ends. `names()` lists such a step twice.
 * test/integration/local-first.test.ts shows the same on a real server with a step that outlasts its local attempt.
 */
export function slowStep<T>(impl: () => Promise<T>): () => Promise<T> {
  return async () => {
    if (Context.current().info.isLocal) {
      throw ApplicationFailure.create({
        type: 'SlowStep',
        message: 'a slow step: its local attempt gives up',
        nonRetryable: false,
      });
    }
    return impl();
  };
}

/** A promise the test resolves by hand: an activity awaits it so the test can look at the workflow meanwhile. */
export function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}
