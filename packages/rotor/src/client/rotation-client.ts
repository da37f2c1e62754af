import { randomUUID } from 'node:crypto';
import {
  ApplicationFailure,
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { bakeProblems, type BakePolicy } from '../shared/bake';
import {
  ROTATION_ROLLED_BACK,
  DEFAULT_TASK_QUEUE,
  DEFAULT_TEMPORAL_UI_URL,
  MAX_GRACE,
  MAX_GRACE_MS,
  rotationWorkflowId,
  SearchAttribute,
  temporalUiLink,
} from '../shared/constants';
import { formatDuration } from 'rotor-consumers/core';
import { ErrorType, InvalidInputError, NotRotatingError, RotorError } from 'rotor-consumers/core';
import { compact } from '../shared/compact';
import type { SecretCheckReport, SetupPlan } from '../shared/reports';
import type { OperatorAnswer, RotationStatus } from '../shared/status';
import type {
  RollbackInput,
  RotationOverrides,
  RotationFailureDetails,
  RotationInput,
  RotationResult,
} from '../shared/rotation';
import { actorOf, TERMINAL_PHASES } from '../shared/vocabulary';
import { rotationSummary } from '../shared/rotation';
import {
  endGraceUpdate,
  extendGraceUpdate,
  preflightCheck,
  rollbackPreflight,
  rollbackSecret,
  setupPair,
  rollbackUpdate,
  rotateSecret,
  statusQuery,
} from '../workflows';

/** How to rotate: the rotation's input without the secret id (grace, trigger, policy, overrides, reporting). */
export type RotateOptions = Omit<RotationInput, 'secretId'>;

/** For a rollback that starts its own workflow (no rotation running): who asked, and the secret's reporting. */
export type RollbackOptions = Pick<RollbackInput, 'trigger' | 'maxStepAttempts' | 'reporting'>;

/** A rotation as the client sees it: its handle, and whether this request started it. */
export interface StartedRotation {
  secretId: string;
  workflowId: string;
  runId: string;
  /** False when a rotation of this secret was already running and the request joined it. */
  started: boolean;
}

/** How a rotation ended, for callers that wait on it. */
/** Phases in which a rotation has switched to its new credential and only waits (grace) or retires the previous one. */
const SWITCHED_PHASES: readonly RotationStatus['phase'][] = ['grace', 'awaiting-sessions', 'retiring'];

export type RotationOutcome =
  | { outcome: 'completed' | 'rolled-back'; result: RotationResult }
  | { outcome: 'failed'; message: string; details?: RotationFailureDetails; status?: RotationStatus };

/**
 * What operators and programs use to drive rotations: start one (at most one per secret), read its status,
 * roll it back or move its grace period. The CLI is a thin layer on this class.
 *
 * @example
 *   const rotor = await RotationClient.connect();
 *   const { runId } = await rotor.rotate('prod/db/app', { graceMs: 3_600_000 });
 *   console.log((await rotor.status('prod/db/app'))?.phase);
 */
export class RotationClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = process.env.ROTOR_TASK_QUEUE || DEFAULT_TASK_QUEUE,
  ) {}

  /** Connects with Temporal's environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, profiles). */
  static async connect(taskQueue?: string): Promise<RotationClient> {
    const { connectionOptions, namespace } = loadClientConnectConfig();
    const connection = await Connection.connect(connectionOptions);
    return new RotationClient(new Client({ connection, namespace: namespace ?? 'default' }), taskQueue);
  }

  /**
   * Starts a rotation of `secretId`, or joins the one already running: the workflow id is the secret's, and the
   * conflict policy keeps the running execution.
   */
  async rotate(secretId: string, options: RotateOptions): Promise<StartedRotation> {
    assertSecretId(secretId);
    if (!(options.graceMs >= 0)) throw new InvalidInputError(`grace: ${options.graceMs} is not a duration`);
    if (options.graceMs > MAX_GRACE_MS) {
      throw new InvalidInputError(
        `grace: ${formatDuration(options.graceMs)} is longer than the maximum grace period of ${MAX_GRACE}`,
      );
    }
    if (options.bake) assertBake(options.bake, options.graceMs);
    const requestId = randomUUID();
    const workflowId = rotationWorkflowId(secretId);
    let handle: WorkflowHandle<typeof rotateSecret>;
    try {
      handle = await this.client.workflow.start(rotateSecret, {
        workflowId,
        taskQueue: this.taskQueue,
        args: [compact<RotationInput>({ ...options, secretId })],
        staticSummary: rotationSummary({ ...options, secretId }, formatDuration),
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        memo: { requestId },
        typedSearchAttributes: [
          { key: SearchAttribute.secretId, value: secretId },
          { key: SearchAttribute.phase, value: 'preparing' },
        ],
      });
    } catch (error) {
      if (error instanceof WorkflowExecutionAlreadyStartedError) {
        handle = this.client.workflow.getHandle(workflowId);
      } else throw error;
    }
    const description = await handle.describe();
    return { secretId, workflowId, runId: description.runId, started: description.memo?.requestId === requestId };
  }

  /**
   * The status of the secret's latest rotation: live from the running workflow, or from the closed one's result
   * or memo. Undefined when the secret was never rotated.
   */
  async status(secretId: string): Promise<RotationStatus | undefined> {
    assertSecretId(secretId);
    const handle = this.client.workflow.getHandle(rotationWorkflowId(secretId));
    let description;
    try {
      description = await handle.describe();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
    if (description.status.name === 'COMPLETED') return ((await handle.result()) as RotationResult).status;
    if (description.status.name === 'FAILED') {
      const rolled = await handle.result().then(
        () => undefined,
        (error: unknown) => (error instanceof WorkflowFailedError ? rolledBackResult(error.cause) : undefined),
      );
      if (rolled) return rolled.status;
    }
    // Running or failed: the query needs a worker (to answer, or to replay a closed run); the memo does not.
    try {
      return await withTimeout(handle.query(statusQuery), 5000);
    } catch {
      const memo = (description.memo ?? {}) as Record<string, unknown>;
      return {
        secretId,
        phase: (memo.phase as RotationStatus['phase']) ?? 'preparing',
        token: String(memo.token ?? ''),
        versions: {},
        steps: [],
        startedAt: description.startTime.toISOString(),
        ...(description.closeTime ? { endedAt: description.closeTime.toISOString() } : {}),
        ...(typeof memo.graceEndsAt === 'string' ? { graceEndsAt: memo.graceEndsAt } : {}),
        ...(typeof memo.lastError === 'string' ? { lastError: memo.lastError } : {}),
        ...(typeof memo.rotator === 'string' ? { rotator: memo.rotator } : {}),
      };
    }
  }

  /**
   * Waits until the rotation of `secretId` has switched to its new credential (grace or after it: the new version is
   * AWSCURRENT, the previous one still works until retirement) or has ended, whichever comes first: what an incident
   * needs to know, without waiting out each rotation's grace.
   */
  async waitForSwitch(
    secretId: string,
    pollMs = 250,
  ): Promise<RotationOutcome | { outcome: 'switched'; status: RotationStatus }> {
    const handle = this.client.workflow.getHandle<typeof rotateSecret>(rotationWorkflowId(secretId));
    for (;;) {
      if ((await handle.describe()).status.name !== 'RUNNING') return this.wait(secretId);
      const status = await handle.query(statusQuery).catch(() => undefined); // no worker answered yet: look again
      if (status && SWITCHED_PHASES.includes(status.phase)) return { outcome: 'switched', status };
      await sleep(pollMs);
    }
  }

  /** Waits for the rotation of `secretId` to end, calling `onStatus` as it moves (polling every `pollMs`). */
  async wait(secretId: string, onStatus?: (status: RotationStatus) => void, pollMs = 250): Promise<RotationOutcome> {
    const handle = this.client.workflow.getHandle<typeof rotateSecret>(rotationWorkflowId(secretId));
    const done = handle.result().then(
      (result): RotationOutcome => ({ outcome: result.outcome, result }),
      (error): RotationOutcome => {
        if (error instanceof WorkflowFailedError) {
          const cause = error.cause;
          const rolled = rolledBackResult(cause);
          if (rolled) return { outcome: 'rolled-back', result: rolled };
          const details =
            cause instanceof ApplicationFailure
              ? (cause.details?.[0] as RotationFailureDetails | undefined)
              : undefined;
          return { outcome: 'failed', message: cause?.message ?? error.message, ...compact({ details }) };
        }
        throw error;
      },
    );
    let finished: RotationOutcome | undefined;
    void done.then(
      (o) => (finished = o),
      () => undefined,
    );
    while (!finished) {
      if (onStatus) {
        try {
          const status = await handle.query(statusQuery);
          onStatus(status);
          if (TERMINAL_PHASES.includes(status.phase)) break;
        } catch {
          // The workflow closed between two polls, or no worker answered yet: keep waiting for the result.
        }
      }
      await Promise.race([done, sleep(pollMs)]);
    }
    const outcome = await done;
    if (outcome.outcome !== 'failed') onStatus?.(outcome.result.status);
    if (outcome.outcome === 'failed' && onStatus) {
      const status = await this.status(secretId).catch(() => undefined);
      if (status) {
        onStatus(status);
        return { ...outcome, status };
      }
    }
    return outcome;
  }

  /**
   * Rolls the secret back. While a rotation runs, asks it to: before finish it unwinds, during grace it reinstates
   * the previous version. When none runs, starts a rollback of its own under the secret's workflow id
   * (`rollbackSecret`): AWSPREVIOUS reinstated in the target and the store, then tested (`started: true`).
   */
  async rollback(
    secretId: string,
    reason?: string,
    by?: string,
    options: RollbackOptions = {},
  ): Promise<StartedRotation> {
    assertSecretId(secretId);
    const workflowId = rotationWorkflowId(secretId);
    if (!(await this.isRunning(workflowId))) {
      await this.refuseRollbackOfNothing(secretId);
      try {
        const handle = await this.client.workflow.start(rollbackSecret, {
          workflowId,
          taskQueue: this.taskQueue,
          args: [
            compact<RollbackInput>({
              secretId,
              reason,
              trigger: options.trigger ?? { kind: 'api', ...compact({ by }) },
              maxStepAttempts: options.maxStepAttempts,
              reporting: options.reporting,
            }),
          ],
          staticSummary: `roll back ${secretId} to AWSPREVIOUS · ${actorOf(options.trigger ?? { kind: 'api', ...compact({ by }) })}`,
          workflowIdConflictPolicy: 'FAIL',
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          typedSearchAttributes: [
            { key: SearchAttribute.secretId, value: secretId },
            { key: SearchAttribute.phase, value: 'preparing' },
          ],
        });
        return { secretId, workflowId, runId: handle.firstExecutionRunId, started: true };
      } catch (error) {
        // A rotation started meanwhile: it takes the request below.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
    }
    const handle = await this.runningHandle(secretId, 'roll back');
    await this.request(secretId, () =>
      handle.executeUpdate(rollbackUpdate, { args: [{ ...compact({ reason }), ...compact({ by }) }] }),
    );
    return { secretId, workflowId: handle.workflowId, runId: (await handle.describe()).runId, started: false };
  }

  /**
   * Adds `byMs` to the grace period of the running rotation; `by` names the operator in the audit trail. Answered at
   * once: refused (NotRotatingError, with the reason) outside grace or beyond the maximum grace period.
   */
  async extendGrace(secretId: string, byMs: number, by?: string): Promise<OperatorAnswer> {
    if (!(byMs > 0)) throw new InvalidInputError(`extend by: ${byMs} is not a positive duration`);
    if (byMs > MAX_GRACE_MS)
      throw new InvalidInputError(
        `extend by: ${formatDuration(byMs)} is longer than the maximum grace period of ${MAX_GRACE}`,
      );
    const handle = await this.runningHandle(secretId, 'extend the grace period of');
    return this.request(secretId, () =>
      handle.executeUpdate(extendGraceUpdate, { args: [{ byMs, ...compact({ by }) }] }),
    );
  }

  /** Ends the grace period of the running rotation now: it goes on to retire the previous credential. */
  async endGrace(secretId: string, by?: string): Promise<OperatorAnswer> {
    const handle = await this.runningHandle(secretId, 'end the grace period of');
    return this.request(secretId, () => handle.executeUpdate(endGraceUpdate, { args: [by ? { by } : {}] }));
  }

  /**
   * Checks, changing nothing, everything a rotation of `secretId` will need (`rotor check`): the store, the secret's
   * shape and policies, that AWSCURRENT (and a pair's admin secret) logs in, no stray AWSPENDING. Runs on a worker.
   * With `graceMs` (the secret's grace in rotor.yaml), rotators that depend on it check it too (JWT signing keys).
   */
  async check(secretId: string, overrides?: RotationOverrides, graceMs?: number): Promise<SecretCheckReport> {
    assertSecretId(secretId);
    return this.onWorker(secretId, () =>
      this.client.workflow.execute(preflightCheck, {
        workflowId: `rotor/check/${secretId}/${randomUUID()}`,
        taskQueue: this.taskQueue,
        args: [compact({ secretId, overrides, graceMs })],
        staticSummary: `check ${secretId}`,
        workflowExecutionTimeout: '2m',
      }),
    );
  }

  /**
   * `rotor setup`: the one-time setup the secret's strategy offers (the owner-role model of a PostgreSQL pair),
   * planned from the database's catalogs and, unless `dryRun`, applied through the admin secret, all or nothing.
   */
  async setup(secretId: string, options: { dryRun: boolean }): Promise<SetupPlan> {
    assertSecretId(secretId);
    return this.onWorker(secretId, () =>
      this.client.workflow.execute(setupPair, {
        workflowId: `rotor/setup/${secretId}/${randomUUID()}`,
        taskQueue: this.taskQueue,
        args: [{ secretId, dryRun: options.dryRun }],
        staticSummary: `${options.dryRun ? 'plan the setup of' : 'set up'} ${secretId}`,
        workflowExecutionTimeout: '3m',
      }),
    );
  }

  /** The Temporal UI page of the secret's rotation, when ROTOR_TEMPORAL_UI_URL (or a local default) is known. */
  uiLink(
    workflowId: string,
    runId: string,
    uiBase = process.env.ROTOR_TEMPORAL_UI_URL || DEFAULT_TEMPORAL_UI_URL,
  ): string {
    return temporalUiLink(uiBase, this.client.options.namespace, workflowId, runId);
  }

  private async isRunning(workflowId: string): Promise<boolean> {
    try {
      return (await this.client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
      return false;
    }
  }

  /** The running rotation of `secretId`; a rollback started on its own takes no requests. */
  private async runningHandle(secretId: string, what: string) {
    assertSecretId(secretId);
    const handle = this.client.workflow.getHandle(rotationWorkflowId(secretId));
    if (!(await this.isRunning(handle.workflowId)))
      throw new NotRotatingError(secretId, `no rotation is running, nothing to ${what}`);
    if ((await handle.query(statusQuery)).operation === 'rollback')
      throw new NotRotatingError(secretId, 'a rollback is running: it takes no requests');
    return handle;
  }

  /** Runs a short workflow to its end; rotor's own error in its failure comes back as a RotorError of that type. */
  private async onWorker<T>(secretId: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof WorkflowFailedError)) throw error;
      let cause: unknown = error.cause;
      while (cause instanceof Error) {
        if (cause instanceof ApplicationFailure && (Object.values(ErrorType) as string[]).includes(cause.type ?? '')) {
          throw new RotorError(cause.type as ErrorType, cause.message, secretId);
        }
        cause = cause.cause;
      }
      throw error;
    }
  }

  /**
   * Refuses, before any rollback starts, a rollback of a secret that does not exist (SecretNotFoundError) or has
   * nothing to roll back to (NotRotatingError): the rollback's own prepare, run once on a worker. A check that fails
   * for a reason retrying may cure (the database away a moment) lets the rollback start: it retries its prepare.
   */
  private async refuseRollbackOfNothing(secretId: string): Promise<void> {
    try {
      await this.onWorker(secretId, () =>
        this.client.workflow.execute(rollbackPreflight, {
          workflowId: `rotor/rollback-check/${secretId}/${randomUUID()}`,
          taskQueue: this.taskQueue,
          args: [{ secretId }],
          staticSummary: `check a rollback of ${secretId}`,
          workflowExecutionTimeout: '2m',
        }),
      );
    } catch (error) {
      if (!(error instanceof RotorError) || !error.nonRetryable) return;
      if (error.type === ErrorType.StoreConflict) throw new NotRotatingError(secretId, error.message);
      throw error;
    }
  }

  /** Sends an operator request as an Update: the workflow's validator refusing it becomes a NotRotatingError. */
  private async request<T>(secretId: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (error) {
      if (error instanceof WorkflowUpdateFailedError)
        throw new NotRotatingError(secretId, `refused: ${error.cause?.message ?? error.message}`);
      throw error;
    }
  }
}

/** Refuses a secret id that is empty, blank or longer than 2,048 characters (InvalidInputError). */
export function assertSecretId(secretId: string): void {
  if (typeof secretId !== 'string' || secretId.trim() === '' || secretId.length > 2048) {
    throw new InvalidInputError(`secret id ${JSON.stringify(secretId)} is not valid`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error('timed out')), ms))),
  ]);
}

/** A bake the workflow can run (bakeProblems: the same rules as rotor.yaml's). */
function assertBake(bake: BakePolicy, graceMs: number): void {
  const problems = bakeProblems(bake, graceMs);
  if (problems.length > 0)
    throw new InvalidInputError(`bake: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
}

/** The result a rolled-back rotation carries in its failure (ROTATION_ROLLED_BACK), or undefined for any other. */
export function rolledBackResult(cause: unknown): RotationResult | undefined {
  if (!(cause instanceof ApplicationFailure) || cause.type !== ROTATION_ROLLED_BACK) return undefined;
  return cause.details?.[0] as RotationResult | undefined;
}
