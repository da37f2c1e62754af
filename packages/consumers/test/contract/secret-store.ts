import { describe, expect, it } from 'vitest';
import { Stage } from '../../src/stages';
import { SecretNotFoundError, StoreConflictError, UnavailableError } from '../../src/errors';
import type { SecretStore } from '../../src/stores/secret-store';

/** What a contract run needs: the store, and a way to create a secret whose first version holds AWSCURRENT. */
export interface StoreUnderTest {
  store: SecretStore;
  /** Creates `secretId` with `value` as AWSCURRENT, tagged; returns the version id. */
  create(secretId: string, value: string, tags?: Record<string, string>): Promise<string>;
  /** A secret id no other run uses. */
  uniqueId(marker: string): string;
  /** Another client of the same store, as a second worker has (the same object where the store is in memory). */
  second: SecretStore;
  /** What the store's full name of a secret looks like. */
  arnPattern: RegExp;
  /** A client of the store at an address nothing answers on (a store that does not answer), where there is one. */
  unreachable?: SecretStore;
  /** A client of the store whose writes' answers can be lost (the write carried out, never answered), where there is one. */
  lossy?: () => Promise<LossyStore>;
}

/** A store client behind a connection that loses the answer of a chosen write. */
export interface LossyStore {
  store: SecretStore;
  /** Loses the answer of the `n`th write request from now (1: the next one). */
  loseAnswerOfWrite(n: number): void;
  /** Writes whose answer was lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}

/**
 * The SecretStore contract, as AWS Secrets Manager behaves: every implementation runs these same tests (the
 * in-memory store in unit tests, the AWS store against moto in integration tests).
 */
export function secretStoreContract(name: string, setup: () => StoreUnderTest): void {
  describe(`SecretStore contract: ${name}`, () => {
    const token = () => crypto.randomUUID();

    async function labelsOf(store: SecretStore, secretId: string): Promise<Record<string, string | undefined>> {
      const d = await store.describe(secretId);
      const at = (stage: string) => d.versions.find((v) => v.stages.includes(stage))?.versionId;
      return { current: at(Stage.current), pending: at(Stage.pending), previous: at(Stage.previous) };
    }

    it('reads a version by label and by id, and says undefined for a label or version nobody holds', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('read');
      const v1 = await create(id, '{"n":1}');
      expect(await store.getByStage(id, Stage.current)).toMatchObject({
        versionId: v1,
        value: '{"n":1}',
        stages: [Stage.current],
      });
      expect(await store.getByVersion(id, v1)).toMatchObject({ versionId: v1, value: '{"n":1}' });
      expect(await store.getByStage(id, Stage.pending)).toBeUndefined();
      expect(await store.getByVersion(id, token())).toBeUndefined();
    });

    it('describes versions, labels and tags', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('describe');
      const v1 = await create(id, '{}', { 'rotor:retire': 'disable-login' });
      const d = await store.describe(id);
      expect(d.versions.map((v) => v.versionId)).toEqual([v1]);
      expect(d.tags).toEqual({ 'rotor:retire': 'disable-login' });
      expect(d.arn).toMatch(setup().arnPattern);
    });

    it('refuses an unknown secret with SecretNotFoundError', async () => {
      const { store, uniqueId } = setup();
      await expect(store.describe(uniqueId('missing'))).rejects.toThrow(SecretNotFoundError);
      await expect(store.getByStage(uniqueId('missing'), Stage.current)).rejects.toThrow(SecretNotFoundError);
    });

    it('puts a pending version under its token, idempotently, and refuses the same token with another value', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('pending');
      const v1 = await create(id, '{"n":1}');
      const t = token();
      await store.putPending(id, t, '{"n":2}');
      await store.putPending(id, t, '{"n":2}');
      expect(await labelsOf(store, id)).toEqual({ current: v1, pending: t, previous: undefined });
      expect((await store.describe(id)).versions).toHaveLength(2);
      await expect(store.putPending(id, t, '{"n":3}')).rejects.toThrow(StoreConflictError);
    });

    it('a second pending version takes AWSPENDING from the first', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('pending2');
      await create(id, '{"n":1}');
      const [t1, t2] = [token(), token()];
      await store.putPending(id, t1, '{"n":2}');
      await store.putPending(id, t2, '{"n":3}');
      expect((await labelsOf(store, id)).pending).toBe(t2);
      expect((await store.getByVersion(id, t1))?.stages).toEqual([]);
    });

    it('moving AWSCURRENT makes its old holder AWSPREVIOUS and leaves AWSPENDING where it is', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('finish');
      const v1 = await create(id, '{"n":1}');
      const t = token();
      await store.putPending(id, t, '{"n":2}');
      await store.moveStage(id, Stage.current, t);
      expect(await labelsOf(store, id)).toEqual({ current: t, pending: t, previous: v1 });
      await store.moveStage(id, Stage.current, t);
      expect(await labelsOf(store, id)).toEqual({ current: t, pending: t, previous: v1 });
      const t2 = token();
      await store.putPending(id, t2, '{"n":3}');
      await store.moveStage(id, Stage.current, t2);
      expect(await labelsOf(store, id)).toEqual({ current: t2, pending: t2, previous: t });
    });

    it('removes a label from its holder only, and refuses to move one to a version that does not exist', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('remove');
      const v1 = await create(id, '{"n":1}');
      const t = token();
      await store.putPending(id, t, '{"n":2}');
      await store.removeStage(id, Stage.pending, v1);
      expect((await labelsOf(store, id)).pending).toBe(t);
      await store.removeStage(id, Stage.pending, t);
      await store.removeStage(id, Stage.pending, t);
      expect(await labelsOf(store, id)).toEqual({ current: v1, pending: undefined, previous: undefined });
      await expect(store.moveStage(id, Stage.previous, token())).rejects.toThrow(StoreConflictError);
    });

    it('moves AWSPREVIOUS back to an unlabelled version (what compensation does)', async () => {
      const { store, create, uniqueId } = setup();
      const id = uniqueId('previous');
      const v1 = await create(id, '{"n":1}');
      const t = token();
      await store.putPending(id, t, '{"n":2}');
      await store.moveStage(id, Stage.current, t);
      await store.moveStage(id, Stage.pending, t);
      await store.moveStage(id, Stage.current, v1);
      await store.removeStage(id, Stage.previous, t);
      await store.removeStage(id, Stage.pending, t);
      expect(await labelsOf(store, id)).toEqual({ current: v1, pending: undefined, previous: undefined });
    });

    it('two workers putting the same version at once make one version, which holds AWSPENDING', async () => {
      const { store, second, create, uniqueId } = setup();
      const id = uniqueId('race-put');
      const v1 = await create(id, '{"n":1}');
      const t = token();
      await Promise.all([store.putPending(id, t, '{"n":2}'), second.putPending(id, t, '{"n":2}')]);
      expect(await labelsOf(store, id)).toEqual({ current: v1, pending: t, previous: undefined });
      expect((await store.describe(id)).versions.map((v) => v.versionId).sort()).toEqual([v1, t].sort());
    });

    it('label changes made at once by two workers are all kept (none overwrites the other)', async () => {
      const { store, second, create, uniqueId } = setup();
      for (let round = 0; round < 4; round++) {
        const id = uniqueId(`race-move-${round}`);
        const v1 = await create(id, '{"n":1}');
        const t = token();
        await store.putPending(id, t, '{"n":2}');
        // finish and the removal of AWSPENDING, as a retried finish and the next step could run together
        await Promise.all([store.moveStage(id, Stage.current, t), second.removeStage(id, Stage.pending, t)]);
        expect(await labelsOf(store, id)).toEqual({ current: t, pending: undefined, previous: v1 });
        await Promise.all([store.moveStage(id, Stage.current, v1), second.moveStage(id, Stage.current, v1)]);
        expect(await labelsOf(store, id)).toEqual({ current: v1, pending: undefined, previous: t });
      }
    });

    it.runIf(setup().lossy)(
      "a write whose answer is lost, at any of an operation's requests, then retried as a step's next attempt is: one version, each label where it belongs",
      async () => {
        const { store, lossy, create, uniqueId } = setup();
        const faulty = await lossy!();
        try {
          // Each request of each operation in turn: the first write's answer lost, then the second's... until an
          // operation runs out of writes to lose (its answer then arrives, and the retry changes nothing).
          for (const operation of ['putPending', 'moveStage'] as const)
            for (let n = 1; ; n++) {
              const id = uniqueId(`lossy-${operation}-${n}`);
              const v1 = await create(id, '{"n":1}');
              const t = token();
              if (operation === 'moveStage') await store.putPending(id, t, '{"n":2}');
              const before = faulty.lost;
              faulty.loseAnswerOfWrite(n);
              const act = () =>
                operation === 'putPending'
                  ? faulty.store.putPending(id, t, '{"n":2}')
                  : faulty.store.moveStage(id, Stage.current, t);
              await act().catch((error: unknown) => expect(error).toBeInstanceOf(UnavailableError));
              const answered = faulty.lost === before;
              faulty.loseAnswerOfWrite(0);
              await act(); // the retry
              const d = await store.describe(id);
              expect(d.versions.map((v) => v.versionId).sort(), `${operation}, answer of write ${n} lost`).toEqual(
                [v1, t].sort(),
              );
              expect(await labelsOf(store, id)).toEqual(
                operation === 'putPending'
                  ? { current: v1, pending: t, previous: undefined }
                  : { current: t, pending: t, previous: v1 },
              );
              expect((await store.getByStage(id, Stage.pending))?.value).toBe('{"n":2}');
              if (answered) break; // no write of this operation was left to lose
            }
          // Each operation writes at least once: at least two answers were lost, and each retried.
          expect(faulty.lost).toBeGreaterThanOrEqual(2);
        } finally {
          await faulty.close();
        }
      },
    );

    it.runIf(setup().unreachable)(
      'a store that does not answer fails with UnavailableError (Temporal retries it) and changes nothing',
      async () => {
        const { store, unreachable, create, uniqueId } = setup();
        if (!unreachable) throw new Error('unreachable');
        const id = uniqueId('unreachable');
        const v1 = await create(id, '{"n":1}');
        await expect(unreachable.describe(id)).rejects.toThrow(UnavailableError);
        await expect(unreachable.putPending(id, token(), '{"n":2}')).rejects.toThrow(UnavailableError);
        await expect(unreachable.moveStage(id, Stage.current, v1)).rejects.toThrow(UnavailableError);
        expect(await labelsOf(store, id)).toEqual({ current: v1, pending: undefined, previous: undefined });
      },
    );
  });
}
