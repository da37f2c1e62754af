import { log } from '@temporalio/activity';
import { compact } from '../shared/compact';
import { resolvePasswordPolicy } from '../rotators/password-policy';
import { selectRotatorKind, STRATEGY_TAG, type RotatorKind } from '../rotators/registry';
import { retirementFromTags } from '../rotators/retirement';
import { versionWithStage } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';
import {
  CredentialsRejectedError,
  InvalidInputError,
  InvalidSecretError,
  StoreConflictError,
  TestFailedError,
} from 'rotor-consumers/core';
import type {
  PrepareInput,
  PreparedRotation,
  ReinstateInput,
  RenewalDecision,
  RenewalSchedule,
  StepInput,
  StepReport,
} from '../shared/rotation';
import { randomInt } from 'node:crypto';
import { AUTO_ROLLBACK_CAP_WINDOW_MS } from '../shared/bake';
import { formatDuration } from 'rotor-consumers/core';
import type { Rotator } from '../rotators/rotator';
import type { ActivityDeps } from './ports';
import { contentVersionId, createStepContext } from './step-context';
import { remoteCreateOf, whileBeating } from './remote-create';

/**
 * The rotation's steps as activities: thin adapters that read values from the store themselves, call the
 * secret's rotator and move staging labels. They take and return ids, tokens and outcome words only, so no
 * value ever reaches a Temporal payload. Each one checks state first and returns early when its work is done.
 */
export function createRotationSteps(deps: ActivityDeps) {
  const { store } = deps;
  const { context, step, onTarget, rotatorFor, parsedVersion, parsedVersions, currentOf, writtenByRotor } =
    createStepContext(deps);

  /**
   * What both prepares start from: AWSCURRENT, where the labels stand, the rotator the secret's value and `tags` pick,
   * and AWSCURRENT parsed by it (an invalid secret fails here).
   */
  async function openSecret(secretId: string, tags?: (found: Record<string, string>) => Record<string, string>) {
    const current = await currentOf(secretId);
    const description = await store.describe(secretId);
    const kind: RotatorKind = selectRotatorKind(
      secretId,
      current.value,
      tags ? tags(description.tags) : description.tags,
      deps.rotators,
    );
    const rotator = rotatorFor(secretId, kind);
    return {
      current,
      description,
      kind,
      rotator,
      currentValue: rotator.parse(secretId, current.value),
      previousVersionId: versionWithStage(description, Stage.previous),
      pending: versionWithStage(description, Stage.pending),
    };
  }

  /** The secret's automatic rollbacks of the last 24 hours, from the audit trail (the bake's daily cap counts them). */
  async function recentAutoRollbacks(secretId: string): Promise<string[] | undefined> {
    if (!deps.audit?.timesOf) return undefined;
    const since = new Date(Date.now() - AUTO_ROLLBACK_CAP_WINDOW_MS).toISOString();
    try {
      return await deps.audit.timesOf(secretId, 'auto-rollback', since, 100);
    } catch (error) {
      // The audit database away must not stop a rotation (an incident's above all): this one runs without the cap.
      log.warn('automatic rollbacks not counted: the audit trail did not answer; no daily cap for this rotation', {
        secretId,
        error: (error as Error).message,
      });
      return undefined;
    }
  }

  function fallbacks(input: StepInput, ids: (string | undefined)[]): Promise<unknown[]> {
    return parsedVersions(input.secretId, rotatorFor(input.secretId, input.prepared.rotator), ids);
  }

  /** True when `value` logs in to the target; a target that does not answer is an error, not a no. */
  async function logsIn(secretId: string, rotator: Rotator<unknown>, value: unknown): Promise<boolean> {
    try {
      await onTarget(rotator, value, () => rotator.test(secretId, value, context));
      return true;
    } catch (error) {
      if (error instanceof TestFailedError) return false;
      throw error;
    }
  }

  /**
   * A stray AWSPENDING (left by a rotation that never finished) whose password the target holds while AWSCURRENT's
   * does not log in: moving the label to the new version would leave a moment in which neither label logs in. The
   * target is set back to AWSCURRENT through the stray credential first. True when it was.
   */
  async function reclaimStray(input: StepInput, rotator: Rotator<unknown>, current: unknown): Promise<boolean> {
    const { secretId, prepared } = input;
    if (!prepared.strayPendingVersionId) return false;
    const [stray] = await parsedVersions(secretId, rotator, [prepared.strayPendingVersionId]);
    if (stray === undefined || (await logsIn(secretId, rotator, current)) || !(await logsIn(secretId, rotator, stray)))
      return false;
    await onTarget(rotator, current, () => rotator.restore(secretId, { want: current, via: [stray] }, context));
    return true;
  }

  return {
    /**
     * Validates the secret and records where its labels stand, then runs the rotator's preflight (the target is
     * reachable, a version logs in, an admin secret works): whatever would fail later fails here, with nothing
     * written. Changes nothing.
     */
    async prepareRotation({
      secretId,
      overrides,
      graceMs,
      bakes,
    }: PrepareInput): Promise<PreparedRotation & StepReport> {
      return step('prepare', secretId, undefined, async () => {
        const strategy = overrides?.strategy;
        const { current, description, kind, rotator, currentValue, previousVersionId, pending } = await openSecret(
          secretId,
          strategy ? (tags) => ({ ...tags, [STRATEGY_TAG]: strategy }) : undefined,
        );
        const retires = Boolean(rotator.countLiveSessions);
        if (overrides?.retirement && !retires) {
          throw new InvalidInputError(
            `secret ${secretId}: retirement applies to alternating users only, and this secret rotates with ${kind}`,
          );
        }
        // Tags are checked on every secret: a typo must not pass silently because the strategy ignores it.
        const tagged = retirementFromTags(secretId, description.tags);
        const retirement = retires ? { ...tagged, ...overrides?.retirement } : undefined;
        const others = await parsedVersions(
          secretId,
          rotator,
          [pending, previousVersionId].filter((id) => id !== current.versionId),
        );
        await onTarget(rotator, currentValue, () =>
          rotator.check(
            secretId,
            { current: currentValue, fallbacks: others },
            context,
            graceMs === undefined ? undefined : { graceMs },
          ),
        );
        return {
          outcome: kind,
          rotator: kind,
          ...compact({ retirement }),
          currentVersionId: current.versionId,
          ...(previousVersionId && previousVersionId !== current.versionId ? { previousVersionId } : {}),
          ...(pending && pending !== current.versionId ? { strayPendingVersionId: pending } : {}),
          ...compact({ storeWritesTaskQueue: deps.storeWritesTaskQueue }),
          ...compact({ remoteCreate: remoteCreateOf(rotator, currentValue) }),
          ...compact({ recentAutoRollbacks: bakes ? await recentAutoRollbacks(secretId) : undefined }),
        };
      });
    },

    /**
     * Before a rollback with no rotation running: AWSPREVIOUS exists, is valid, names the same server as AWSCURRENT,
     * and a version logs in to restore it through (for pairs, AWSCURRENT and the admin secret). Changes nothing.
     */
    async prepareRollback({ secretId }: { secretId: string }): Promise<PreparedRotation & StepReport> {
      return step('prepare', secretId, undefined, async () => {
        const { current, kind, rotator, currentValue, previousVersionId, pending } = await openSecret(secretId);
        if (!previousVersionId || previousVersionId === current.versionId) {
          throw new StoreConflictError(secretId, `has no ${Stage.previous} version: there is nothing to roll back to`);
        }
        const previous = await parsedVersion(secretId, rotator, previousVersionId, Stage.previous);
        if (rotator.target(previous) !== rotator.target(currentValue)) {
          throw new StoreConflictError(
            secretId,
            `${Stage.previous} names another server (${rotator.target(previous)}) than ${Stage.current}: rotor will not roll back across servers`,
          );
        }
        const stray = pending && pending !== current.versionId ? pending : undefined;
        const others = await parsedVersions(secretId, rotator, [previousVersionId, stray]);
        await onTarget(rotator, currentValue, () =>
          rotator.check(secretId, { current: currentValue, fallbacks: others }, context),
        );
        return {
          outcome: kind,
          rotator: kind,
          currentVersionId: current.versionId,
          previousVersionId,
          ...compact({ strayPendingVersionId: stray }),
        };
      });
    },

    /**
     * For a `renewAt` schedule: when the secret's credential is due for renewal (its rotator's `renewalDue`; a
     * lifetime-based time moved up to `jitterMs` early, at most half way back to notBefore), and whether it is
     * overdue within `alertBefore` of its end (a sixth of its lifetime unless told): the workflow then alerts. An
     * unreadable current credential is due now. Changes nothing, sends nothing.
     */
    async renewalDue({
      secretId,
      renewal,
    }: {
      secretId: string;
      renewal: RenewalSchedule;
    }): Promise<RenewalDecision & StepReport> {
      return step('renewal-due', secretId, undefined, async () => {
        const { kind, rotator, current } = await openSecret(secretId).catch(async (error: unknown) => {
          // A current version this rotator cannot read is renewed (the rotation says why if it cannot be).
          if (!(error instanceof InvalidSecretError)) throw error;
          return { kind: undefined, rotator: undefined, current: undefined };
        });
        const now = Date.now();
        if (!current || !rotator)
          return { outcome: 'unreadable', basis: 'none-yet' as const, waitMs: 0, dueAt: new Date(now).toISOString() };
        if (!rotator.renewalDue)
          throw new InvalidInputError(
            `secret ${secretId}: renewAt schedules apply to credentials with a lifetime of their own (certificates); ${kind} has none`,
          );
        const due = await rotator.renewalDue(
          secretId,
          rotator.parse(secretId, current.value),
          { renewAt: renewal.renewAt },
          context,
        );
        let dueAt = due.dueAt.getTime();
        if (due.basis === 'lifetime' && renewal.jitterMs && due.notBefore)
          dueAt -= randomInt(0, Math.max(1, Math.min(renewal.jitterMs, (dueAt - due.notBefore.getTime()) / 2)) + 1);
        const decision: RenewalDecision = {
          basis: due.basis,
          waitMs: Math.max(0, dueAt - now),
          dueAt: new Date(dueAt).toISOString(),
          ...(due.notAfter ? { notAfter: due.notAfter.toISOString() } : {}),
        };
        if (due.notAfter && due.notBefore && now > dueAt) {
          const margin = renewal.alertBeforeMs ?? (due.notAfter.getTime() - due.notBefore.getTime()) / 6;
          const left = due.notAfter.getTime() - now;
          if (left <= margin)
            decision.expiring = `the credential of ${secretId} ${left > 0 ? `expires in ${formatDuration(Math.max(1000, Math.floor(left / 1000) * 1000))}` : 'has expired'} (${due.notAfter.toISOString()}) and has not been renewed`;
        }
        return { outcome: due.basis, ...decision };
      });
    },

    /** Stores the new value as version `token`, labelled AWSPENDING. Keeps an existing version with that token. */
    async createPending(input: StepInput): Promise<StepReport> {
      return step('create', input.secretId, input.prepared.rotator, async () => {
        const { secretId, token } = input;
        const rotator = rotatorFor(secretId, input.prepared.rotator);
        const existing = await store.getByVersion(secretId, token);
        if (existing) {
          rotator.parse(secretId, existing.value);
          await store.moveStage(secretId, Stage.pending, token);
          return { outcome: 'already-created' };
        }
        const current = await parsedVersion(secretId, rotator, input.prepared.currentVersionId, Stage.current);
        const reclaimed = await reclaimStray(input, rotator, current);
        const next = () => rotator.nextValue(secretId, current, resolvePasswordPolicy(input.passwordPolicy), context);
        // A create that talks to an outside service (an ACME CA) does so within the per-target limit.
        const value = await whileBeating(input.prepared.remoteCreate, () =>
          input.prepared.remoteCreate ? onTarget(rotator, current, async () => next()) : next(),
        );
        await store.putPending(secretId, token, value);
        return {
          outcome: reclaimed ? 'created; the database was set back to AWSCURRENT from a stray AWSPENDING' : 'created',
        };
      });
    },

    /** Makes the target accept the pending value. */
    async setPending(input: StepInput): Promise<StepReport> {
      return step('set', input.secretId, input.prepared.rotator, async () => {
        const { secretId, token, prepared } = input;
        const rotator = rotatorFor(secretId, prepared.rotator);
        const pending = await parsedVersion(secretId, rotator, token, Stage.pending);
        const current = await parsedVersion(secretId, rotator, prepared.currentVersionId, Stage.current);
        const others = await fallbacks(input, [prepared.strayPendingVersionId, prepared.previousVersionId]);
        return {
          outcome: await onTarget(rotator, current, () =>
            rotator.set(secretId, { pending, current, fallbacks: others }, context),
          ),
        };
      });
    },

    /** Proves the pending value works against the target. */
    async testPending(input: StepInput): Promise<StepReport> {
      return step('test', input.secretId, input.prepared.rotator, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const pending = await parsedVersion(input.secretId, rotator, input.token, Stage.pending);
        const holdMs = await onTarget(rotator, pending, async () => {
          await rotator.test(input.secretId, pending, context);
          return rotator.holdBeforeFinish
            ? Math.max(0, Math.ceil(await rotator.holdBeforeFinish(input.secretId, pending, context)))
            : 0;
        });
        return { outcome: 'passed', ...(holdMs > 0 ? { holdMs } : {}) };
      });
    },

    /** Moves AWSCURRENT to the new version (the old one becomes AWSPREVIOUS) and removes AWSPENDING. */
    async finishRotation(input: StepInput): Promise<StepReport> {
      return step('finish', input.secretId, input.prepared.rotator, async () => {
        const { secretId, token, prepared } = input;
        const description = await store.describe(secretId);
        const current = versionWithStage(description, Stage.current);
        let outcome = 'already-finished';
        if (current !== token) {
          // A version the rotator itself made current during the rotation (a keyring's new key, readable first) is
          // this rotation's own; any other is someone else's change.
          if (current !== prepared.currentVersionId && !(current && (await writtenByRotor(secretId, current)))) {
            throw new StoreConflictError(secretId, `${Stage.current} moved to version ${current} during the rotation`);
          }
          await store.moveStage(secretId, Stage.current, token);
          outcome = 'finished';
        }
        await store.removeStage(secretId, Stage.pending, token);
        const rotator = rotatorFor(secretId, prepared.rotator);
        const lifetime = rotator.lifetimeOf
          ? rotator.lifetimeOf(secretId, await parsedVersion(secretId, rotator, token, Stage.current))
          : undefined;
        return {
          outcome,
          ...(lifetime
            ? { lifetime: { notBefore: lifetime.notBefore.toISOString(), notAfter: lifetime.notAfter.toISOString() } }
            : {}),
        };
      });
    },

    /** After grace: lets the rotator revoke what the previous version still grants, per the retirement policy. */
    async retirePrevious(input: StepInput): Promise<StepReport> {
      return step('retire', input.secretId, input.prepared.rotator, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const current = await parsedVersion(input.secretId, rotator, input.token, Stage.current);
        const [previous] = await fallbacks(input, [input.prepared.currentVersionId]);
        const outcome = await onTarget(rotator, current, () =>
          rotator.retire(
            input.secretId,
            {
              previous,
              current,
              ...compact({ policy: input.prepared.retirement }),
              ...(input.terminateSessions ? { terminateSessions: true } : {}),
            },
            context,
          ),
        );
        return { outcome };
      });
    },

    /** Counts the live sessions of the previous version's login, so retirement can wait for them. */
    async countLiveSessions(input: StepInput): Promise<StepReport> {
      return step('sessions', input.secretId, input.prepared.rotator, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const current = await parsedVersion(input.secretId, rotator, input.token, Stage.current);
        const [previous] = await fallbacks(input, [input.prepared.currentVersionId]);
        const count = rotator.countLiveSessions?.bind(rotator);
        const liveSessions =
          previous && count
            ? await onTarget(rotator, current, () => count(input.secretId, { previous, current }, context))
            : 0;
        return { outcome: `${liveSessions} live sessions`, liveSessions };
      });
    },

    /**
     * Compensation and rollback: makes `versionId` current again in the target and in the store, and tests it.
     * The labels move so that at every instant AWSCURRENT or AWSPENDING logs in: while the target still holds the
     * new value, that version keeps AWSPENDING.
     */
    async reinstate(input: ReinstateInput): Promise<StepReport> {
      return step(input.mode, input.secretId, input.prepared.rotator, async () => {
        const { secretId, token, prepared } = input;
        const rotator = rotatorFor(secretId, prepared.rotator);
        const description = await store.describe(secretId);
        const tokenExists = description.versions.some((v) => v.versionId === token);
        const holder = versionWithStage(description, Stage.current);
        // Compensation honours a version someone else made current meanwhile: the target follows AWSCURRENT.
        const versionId = input.mode === 'compensate' && holder && holder !== token ? holder : input.versionId;
        if (
          input.mode === 'rollback' &&
          holder &&
          holder !== token &&
          holder !== input.versionId &&
          !(await writtenByRotor(secretId, holder))
        ) {
          throw new StoreConflictError(
            secretId,
            `${Stage.current} moved to version ${holder} during grace: rotor will not roll back over it`,
          );
        }
        const want = await parsedVersion(secretId, rotator, versionId, 'the version to reinstate');
        const via = await fallbacks(
          input,
          [token, prepared.currentVersionId, prepared.previousVersionId, prepared.strayPendingVersionId].filter(
            (id) => id !== versionId,
          ),
        );
        let movedBack = false;
        if (tokenExists && holder === token) {
          const reinstated = rotator.reinstatedValue?.(secretId, { want, via });
          if (reinstated === undefined) {
            await store.moveStage(secretId, Stage.pending, token);
            await store.moveStage(secretId, Stage.current, versionId);
          } else {
            // AWSCURRENT goes straight to the value the rotator keeps (AWSPENDING passes through it on the way).
            // Each line may be re-run after a crash: AWSCURRENT stays on the token until the last move.
            const reinstatedId = contentVersionId(secretId, reinstated);
            await store.putPending(secretId, reinstatedId, reinstated);
            await store.moveStage(secretId, Stage.pending, token);
            await store.moveStage(secretId, Stage.current, reinstatedId);
          }
          movedBack = true;
        }
        let outcome: string;
        try {
          outcome = await onTarget(rotator, want, async () => {
            const restored = await rotator.restore(secretId, { want, via }, context);
            await rotator.test(secretId, want, context);
            return restored;
          });
        } catch (error) {
          // Compensating a rotation whose new credential never took effect: if no version logs in, the target does
          // not hold rotor's change, so there is nothing to undo there (someone else changed it). Rollback, which
          // must make the previous credential work, still fails.
          if (!(input.mode === 'compensate' && error instanceof CredentialsRejectedError && error.noLoginWorks))
            throw error;
          outcome = 'target-untouched';
        }
        if (input.mode === 'compensate' && (movedBack || holder === prepared.currentVersionId)) {
          // The store ends as before the rotation: AWSPREVIOUS back where it was (moving AWSCURRENT moved it too).
          if (prepared.previousVersionId) await store.moveStage(secretId, Stage.previous, prepared.previousVersionId);
          else if (tokenExists) await store.removeStage(secretId, Stage.previous, token);
        }
        if (tokenExists) await store.removeStage(secretId, Stage.pending, token);
        return { outcome };
      });
    },
  };
}
