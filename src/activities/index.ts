import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { selectRotatorKind, type RotatorKind, type RotatorRegistry } from '../rotators/registry';
import type { Rotator, RotatorContext } from '../rotators/rotator';
import { resolvePasswordPolicy } from '../rotators/password-policy';
import { retirementFromTags } from '../rotators/retirement';
import { versionWithStage, type SecretStore, type StoredValue } from '../stores/secret-store';
import { Stage } from '../shared/constants';
import { CredentialsRejectedError, InvalidSecretError, RotorError, StoreConflictError, UnsupportedEngineError } from '../shared/errors';
import type { PreparedRotation, ReinstateInput, StepInput, StepReport } from '../shared/types';

export interface ActivityDeps {
  store: SecretStore;
  rotators: RotatorRegistry;
}

/**
 * The rotation's steps as activities: thin adapters that read values from the store themselves, call the
 * secret's rotator and move staging labels. They take and return ids, tokens and outcome words only, so no
 * value ever reaches a Temporal payload. Each one checks state first and returns early when its work is done.
 */
export function createActivities({ store, rotators }: ActivityDeps) {
  /** Lets rotators read the AWSCURRENT value of secrets they depend on, such as an admin secret. */
  const context: RotatorContext = {
    async readCurrent(id: string) {
      const current = await store.getByStage(id, Stage.current);
      if (!current) throw new StoreConflictError(id, `has no ${Stage.current} version in ${store.description}`);
      return current.value;
    },
  };

  function rotatorFor(secretId: string, kind: string): Rotator<unknown> {
    const rotator = (rotators as Record<string, Rotator<unknown>>)[kind];
    if (!rotator) throw new UnsupportedEngineError(secretId, kind);
    return rotator;
  }

  async function mustGet(secretId: string, versionId: string, what: string): Promise<StoredValue> {
    const version = await store.getByVersion(secretId, versionId);
    if (!version) throw new StoreConflictError(secretId, `${what} version ${versionId} is gone from ${store.description}`);
    return version;
  }

  /**
   * Parsed fallback versions (AWSPREVIOUS, a stray AWSPENDING...), for logging in when the target still holds one.
   * A fallback that is gone or no longer valid cannot help and does not stop the step.
   */
  async function fallbacks(input: StepInput, ids: (string | undefined)[]): Promise<unknown[]> {
    const rotator = rotatorFor(input.secretId, input.prepared.rotator);
    const out: unknown[] = [];
    for (const id of new Set(ids.filter((v): v is string => v !== undefined))) {
      const version = await store.getByVersion(input.secretId, id);
      if (!version) continue;
      try {
        out.push(rotator.parse(input.secretId, version.value));
      } catch (error) {
        if (!(error instanceof InvalidSecretError)) throw error;
        log.warn('fallback version skipped', { secretId: input.secretId, versionId: id, error: error.message });
      }
    }
    return out;
  }

  return {
    /** Validates the secret and records where its labels stand; changes nothing. */
    async prepareRotation({ secretId }: { secretId: string }): Promise<PreparedRotation & StepReport> {
      return step('prepare', secretId, async () => {
        const current = await store.getByStage(secretId, Stage.current);
        if (!current) throw new StoreConflictError(secretId, `has no ${Stage.current} version in ${store.description}`);
        const description = await store.describe(secretId);
        const kind: RotatorKind = selectRotatorKind(secretId, current.value, description.tags);
        rotatorFor(secretId, kind).parse(secretId, current.value);
        const previousVersionId = versionWithStage(description, Stage.previous);
        const pending = versionWithStage(description, Stage.pending);
        const retirement = rotatorFor(secretId, kind).countLiveSessions ? retirementFromTags(secretId, description.tags) : undefined;
        return {
          outcome: kind,
          rotator: kind,
          ...(retirement ? { retirement } : {}),
          currentVersionId: current.versionId,
          ...(previousVersionId && previousVersionId !== current.versionId ? { previousVersionId } : {}),
          ...(pending && pending !== current.versionId ? { strayPendingVersionId: pending } : {}),
        };
      });
    },

    /** Stores the new value as version `token`, labelled AWSPENDING. Keeps an existing version with that token. */
    async createPending(input: StepInput): Promise<StepReport> {
      return step('create', input.secretId, async () => {
        const { secretId, token } = input;
        const rotator = rotatorFor(secretId, input.prepared.rotator);
        const existing = await store.getByVersion(secretId, token);
        if (existing) {
          rotator.parse(secretId, existing.value);
          await store.moveStage(secretId, Stage.pending, token);
          return { outcome: 'already-created' };
        }
        const current = await mustGet(secretId, input.prepared.currentVersionId, Stage.current);
        const next = rotator.nextValue(secretId, rotator.parse(secretId, current.value), resolvePasswordPolicy(input.passwordPolicy));
        await store.putPending(secretId, token, next);
        return { outcome: 'created' };
      });
    },

    /** Makes the target accept the pending value. */
    async setPending(input: StepInput): Promise<StepReport> {
      return step('set', input.secretId, async () => {
        const { secretId, token, prepared } = input;
        const rotator = rotatorFor(secretId, prepared.rotator);
        const pending = rotator.parse(secretId, (await mustGet(secretId, token, Stage.pending)).value);
        const current = rotator.parse(secretId, (await mustGet(secretId, prepared.currentVersionId, Stage.current)).value);
        const others = await fallbacks(input, [prepared.strayPendingVersionId, prepared.previousVersionId]);
        return { outcome: await rotator.set(secretId, { pending, current, fallbacks: others }, context) };
      });
    },

    /** Proves the pending value works against the target. */
    async testPending(input: StepInput): Promise<StepReport> {
      return step('test', input.secretId, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const pending = rotator.parse(input.secretId, (await mustGet(input.secretId, input.token, Stage.pending)).value);
        await rotator.test(input.secretId, pending);
        return { outcome: 'passed' };
      });
    },

    /** Moves AWSCURRENT to the new version (the old one becomes AWSPREVIOUS) and removes AWSPENDING. */
    async finishRotation(input: StepInput): Promise<StepReport> {
      return step('finish', input.secretId, async () => {
        const { secretId, token, prepared } = input;
        const description = await store.describe(secretId);
        const current = versionWithStage(description, Stage.current);
        let outcome = 'already-finished';
        if (current !== token) {
          if (current !== prepared.currentVersionId) {
            throw new StoreConflictError(secretId, `${Stage.current} moved to version ${current} during the rotation`);
          }
          await store.moveStage(secretId, Stage.current, token);
          outcome = 'finished';
        }
        await store.removeStage(secretId, Stage.pending, token);
        return { outcome };
      });
    },

    /** After grace: lets the rotator revoke what the previous version still grants, per the retirement policy. */
    async retirePrevious(input: StepInput): Promise<StepReport> {
      return step('retire', input.secretId, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const current = rotator.parse(input.secretId, (await mustGet(input.secretId, input.token, Stage.current)).value);
        const [previous] = await fallbacks(input, [input.prepared.currentVersionId]);
        const outcome = await rotator.retire(
          input.secretId,
          {
            previous,
            current,
            ...(input.prepared.retirement ? { policy: input.prepared.retirement } : {}),
            ...(input.terminateSessions ? { terminateSessions: true } : {}),
          },
          context,
        );
        return { outcome };
      });
    },

    /** Counts the live sessions of the previous version's login, so retirement can wait for them. */
    async countLiveSessions(input: StepInput): Promise<StepReport> {
      return step('sessions', input.secretId, async () => {
        const rotator = rotatorFor(input.secretId, input.prepared.rotator);
        const current = rotator.parse(input.secretId, (await mustGet(input.secretId, input.token, Stage.current)).value);
        const [previous] = await fallbacks(input, [input.prepared.currentVersionId]);
        const liveSessions = previous && rotator.countLiveSessions ? await rotator.countLiveSessions(input.secretId, { previous, current }, context) : 0;
        return { outcome: `${liveSessions} live sessions`, liveSessions };
      });
    },

    /**
     * Compensation and rollback: makes `versionId` current again in the target and in the store, and tests it.
     * The labels move so that at every instant AWSCURRENT or AWSPENDING logs in: while the target still holds the
     * new value, that version keeps AWSPENDING.
     */
    async reinstate(input: ReinstateInput): Promise<StepReport> {
      return step(input.mode, input.secretId, async () => {
        const { secretId, token, prepared } = input;
        const rotator = rotatorFor(secretId, prepared.rotator);
        const description = await store.describe(secretId);
        const tokenExists = description.versions.some((v) => v.versionId === token);
        const holder = versionWithStage(description, Stage.current);
        // Compensation honours a version someone else made current meanwhile: the target follows AWSCURRENT.
        const versionId = input.mode === 'compensate' && holder && holder !== token ? holder : input.versionId;
        if (input.mode === 'rollback' && holder && holder !== token && holder !== input.versionId) {
          throw new StoreConflictError(secretId, `${Stage.current} moved to version ${holder} during grace: rotor will not roll back over it`);
        }
        const want = rotator.parse(secretId, (await mustGet(secretId, versionId, 'the version to reinstate')).value);
        let movedBack = false;
        if (tokenExists && holder === token) {
          await store.moveStage(secretId, Stage.pending, token);
          await store.moveStage(secretId, Stage.current, versionId);
          movedBack = true;
        }
        const via = await fallbacks(input, [token, prepared.currentVersionId, prepared.previousVersionId, prepared.strayPendingVersionId].filter((id) => id !== versionId));
        let outcome: string;
        try {
          outcome = await rotator.restore(secretId, { want, via }, context);
          await rotator.test(secretId, want);
        } catch (error) {
          // Compensating a rotation whose new credential never took effect: if no version logs in, the target does
          // not hold rotor's change, so there is nothing to undo there (someone else changed it). Rollback, which
          // must make the previous credential work, still fails.
          if (!(input.mode === 'compensate' && error instanceof CredentialsRejectedError && error.noLoginWorks)) throw error;
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

export type RotorActivities = ReturnType<typeof createActivities>;

/**
 * Runs one step: logs its start and end (ids and outcome words only) and turns rotor's typed errors into
 * ApplicationFailures whose `type` the workflow's retry policies match.
 */
async function step<T extends object>(name: string, secretId: string, work: () => Promise<T>): Promise<T & StepReport> {
  const { attempt } = Context.current().info;
  log.info('step started', { step: name, secretId, attempt });
  try {
    const result = await work();
    log.info('step done', { step: name, secretId, attempt, ...('outcome' in result ? { outcome: result.outcome } : {}) });
    return { ...result, attempt };
  } catch (error) {
    if (error instanceof RotorError) {
      log.warn('step failed', { step: name, secretId, attempt, errorType: error.type, error: error.message });
      throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: error.nonRetryable });
    }
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    log.warn('step failed', { step: name, secretId, attempt, error: message });
    throw error;
  }
}
