import { createHash } from 'node:crypto';
import { log } from '@temporalio/activity';
import { note, recall } from './remote-create';
import type { Rotator, RotatorContext } from '../rotators/rotator';
import { versionWithStage, type StoredValue } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';
import {
  InvalidInputError,
  InvalidSecretError,
  StoreConflictError,
  UnsupportedEngineError,
} from 'rotor-consumers/core';
import type { StepReport } from '../shared/rotation';
import { attemptSignal } from './attempt';
import type { ActivityDeps } from './ports';
import { withHandedValues } from './handed-values';
import { runStep } from './run-step';

/** A version id for `value` in `secretId`: the same for the same value (a UUID made of their SHA-256). */
export function contentVersionId(secretId: string, value: string): string {
  const hex = createHash('sha256').update(secretId).update('\0').update(value).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** What every step activity shares: the rotator context, the target limit, lookups and the step wrapper. */
export function createStepContext({ store, rotators, metrics, targets, hooks }: ActivityDeps) {
  /** The AWSCURRENT version of a secret; a secret without one is a conflict, not a missing secret. */
  async function currentOf(secretId: string): Promise<StoredValue> {
    const current = await store.getByStage(secretId, Stage.current);
    if (!current) throw new StoreConflictError(secretId, `has no ${Stage.current} version in ${store.description}`);
    return current;
  }

  /** Lets rotators read the AWSCURRENT value of secrets they depend on, such as an admin secret. */
  const context: RotatorContext = {
    async readCurrent(id: string) {
      return (await currentOf(id)).value;
    },
    async writeCurrent(id, value) {
      const versionId = contentVersionId(id, value);
      const description = await store.describe(id);
      if (versionWithStage(description, Stage.current) === versionId) return false;
      // AWSPENDING stays where it was (a rotation of this very secret keeps its token pending).
      const pending = versionWithStage(description, Stage.pending);
      await store.putPending(id, versionId, value);
      if (pending && pending !== versionId) await store.moveStage(id, Stage.pending, pending);
      await store.moveStage(id, Stage.current, versionId);
      if (!pending || pending === versionId) await store.removeStage(id, Stage.pending, versionId);
      return true;
    },
    hasHook: (name) => hooks?.has(name) ?? false,
    async runHook(name, action, vars) {
      if (!hooks)
        throw new InvalidInputError(`hook ${JSON.stringify(name)}: this worker has no hooks (rotor.yaml hooks)`);
      try {
        const { output } = await hooks.run(name, action, vars);
        log.debug('hook ran', { hook: name, action, output });
      } catch (error) {
        log.warn('hook failed', { hook: name, action, output: (error as { hookOutput?: string }).hookOutput });
        throw error;
      }
    },
    recall,
    note,
  };

  /** Runs a step (see `step`) and observes its duration for the rotator's metrics. */
  async function step<T extends object>(
    name: string,
    secretId: string,
    rotator: string | undefined,
    work: () => Promise<T>,
  ): Promise<T & StepReport> {
    const started = performance.now();
    let ok = false;
    try {
      const result = await withHandedValues(() => runStep(name, secretId, work));
      ok = true;
      // prepare learns the rotator as it goes: label its own duration with it.
      if (rotator === undefined && 'rotator' in result && typeof result.rotator === 'string') rotator = result.rotator;
      return result;
    } finally {
      metrics?.stepObserved(name, rotator ?? 'unknown', (performance.now() - started) / 1000, ok);
    }
  }

  /** Calls the target through the per-target limit, so a fleet-wide rotation never floods one database. */
  function onTarget<S, T>(rotator: Rotator<S>, secret: S, work: () => Promise<T>): Promise<T> {
    return targets ? targets.run(rotator.target(secret), work, attemptSignal()) : work();
  }

  function rotatorFor(secretId: string, kind: string): Rotator<unknown> {
    const rotator = (rotators as Record<string, Rotator<unknown>>)[kind];
    if (!rotator) throw new UnsupportedEngineError(secretId, kind);
    return rotator;
  }

  async function mustGet(secretId: string, versionId: string, what: string): Promise<StoredValue> {
    const version = await store.getByVersion(secretId, versionId);
    if (!version)
      throw new StoreConflictError(secretId, `${what} version ${versionId} is gone from ${store.description}`);
    return version;
  }

  /** A version the step needs (it must still exist), parsed by the secret's rotator. */
  async function parsedVersion<S>(secretId: string, rotator: Rotator<S>, versionId: string, what: string): Promise<S> {
    return rotator.parse(secretId, (await mustGet(secretId, versionId, what)).value);
  }

  /**
   * Parsed fallback versions (AWSPREVIOUS, a stray AWSPENDING...), for logging in when the target still holds one.
   * A fallback that is gone or no longer valid cannot help and does not stop the step.
   */
  async function parsedVersions(
    secretId: string,
    rotator: Rotator<unknown>,
    ids: (string | undefined)[],
  ): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const id of new Set(ids.filter((v): v is string => v !== undefined))) {
      const version = await store.getByVersion(secretId, id);
      if (!version) continue;
      try {
        out.push(rotator.parse(secretId, version.value));
      } catch (error) {
        if (!(error instanceof InvalidSecretError)) throw error;
        log.warn('fallback version skipped', { secretId, versionId: id, error: error.message });
      }
    }
    return out;
  }

  /** Whether `versionId` of `secretId` is one rotor wrote for a rotator (`writeCurrent`: its id is its content's). */
  async function writtenByRotor(secretId: string, versionId: string): Promise<boolean> {
    const version = await store.getByVersion(secretId, versionId);
    return version !== undefined && contentVersionId(secretId, version.value) === versionId;
  }

  return { context, step, onTarget, rotatorFor, parsedVersion, parsedVersions, currentOf, writtenByRotor };
}

export type StepContext = ReturnType<typeof createStepContext>;
