import { heartbeat } from '@temporalio/activity';
import {
  associatedDataFor,
  decryptWithKey,
  encryptWithKey,
  KeyringError,
  parseCiphertext,
  type KeyringRefusal,
} from 'rotor-consumers/credentials';
import { InvalidInputError } from 'rotor-consumers/core';
import { versionWithStage } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';
import type {
  KeyRetirementReport,
  KeyringRows,
  RewrapBatchInput,
  RewrapBatchReport,
  RewrapPlan,
} from '../shared/rewrap';
import { pageNotUnder, prepareTable, swapCiphertexts } from '../rotators/keyring/data';
import {
  keyringPrePublicationMs,
  onDataTable,
  parseKeyringSecret,
  retireKeys,
  rowsPerKey,
  type KeyringSecret,
} from '../rotators/keyring/encryption-keyring';
import type { ActivityDeps } from './ports';
import { createStepContext } from './step-context';

const KIND = 'encryption-keyring';
/** Row keys of refused rows a batch reports (ids for the operator, never a value). */
const REFUSED_KEYS_REPORTED = 20;

/**
 * The re-wrap's steps (workflows/rewrap-keyring.ts). Each reads the keyring itself; plaintexts live only in the
 * activity's memory between a row's decrypt and its new ciphertext's check. Rows are written with compare-and-swap, so
 * a batch re-run after a crash writes nothing twice and never overwrites a row the application changed.
 */
/** Heartbeats every 2 s while `work` runs (a count of a large table, a slow page): the workflow sees it alive. */
async function beating<T>(work: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(), 2000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

export function createRewrapSteps(deps: ActivityDeps) {
  const { context, step } = createStepContext(deps);

  async function keyringOf(secretId: string): Promise<KeyringSecret> {
    return parseKeyringSecret(secretId, await context.readCurrent(secretId));
  }

  function primaryIdOf(secretId: string, keyring: KeyringSecret): string {
    const primary = keyring.keys.find((k) => k.state === 'primary');
    if (!primary) throw new InvalidInputError(`secret ${secretId}: the keyring has no primary key to re-wrap under`);
    return primary.id;
  }

  return {
    /** What a re-wrap works on: the primary key, the tables, the pre-publication wait, rows per key before. */
    async rewrapPlan({ secretId }: { secretId: string }): Promise<RewrapPlan> {
      return step('rewrap-plan', secretId, KIND, () =>
        beating(async () => {
          const keyring = await keyringOf(secretId);
          const primaryId = primaryIdOf(secretId, keyring);
          if (keyring.data.length === 0)
            throw new InvalidInputError(`secret ${secretId}: the keyring declares no data tables (data: [...])`);
          const rows = await rowsPerKey(secretId, keyring, context);
          return {
            primaryId,
            prePublicationMs: keyringPrePublicationMs(keyring),
            tables: keyring.data.map((d) => `${d.database}:${d.table}.${d.column}`),
            rows,
          };
        }),
      );
    },

    /** One page of one table: each row not under the primary decrypted, re-encrypted, checked, and swapped. */
    async rewrapBatch(input: RewrapBatchInput): Promise<RewrapBatchReport> {
      return step('rewrap', input.secretId, KIND, () =>
        beating(async () => {
          const { secretId } = input;
          const keyring = await keyringOf(secretId);
          const primaryId = primaryIdOf(secretId, keyring);
          const primary = keyring.keys.find((k) => k.id === primaryId)!;
          const spec = keyring.data[input.table];
          if (!spec) throw new InvalidInputError(`secret ${secretId}: the keyring has no data table ${input.table}`);
          const keys = new Map(keyring.keys.map((k) => [k.id, k]));
          const began = performance.now();
          return onDataTable(secretId, spec, context, async (client) => {
            const table = await prepareTable(client, secretId, spec);
            const rows = await pageNotUnder(client, table, primaryId, input.afterKey, input.limit);
            const refused: Partial<Record<KeyringRefusal, number>> = {};
            const refusedKeys: string[] = [];
            const swaps: { key: string; old: string; next: string }[] = [];
            for (const row of rows) {
              try {
                const parsed = parseCiphertext(row.ciphertext);
                const key = keys.get(parsed.keyId);
                if (!key) throw new KeyringError('unknown-key', `key ${parsed.keyId} is not in the keyring`);
                if (key.state === 'disabled') throw new KeyringError('disabled-key', `key ${parsed.keyId} is disabled`);
                const ad = associatedDataFor(spec.associatedData, row.row);
                const plaintext = decryptWithKey(key, parsed, ad);
                const next = encryptWithKey(primary, plaintext, ad);
                // Checked before it is written: the new ciphertext gives back the same plaintext.
                if (!decryptWithKey(primary, parseCiphertext(next), ad).equals(plaintext))
                  throw new KeyringError('tampered', `key ${primaryId} did not give back what it encrypted`);
                swaps.push({ key: row.key, old: row.ciphertext, next });
              } catch (error) {
                if (!(error instanceof KeyringError)) throw error;
                refused[error.reason] = (refused[error.reason] ?? 0) + 1;
                if (refusedKeys.length < REFUSED_KEYS_REPORTED) refusedKeys.push(row.key);
              }
            }
            const written = await swapCiphertexts(client, table, swaps);
            deps.metrics?.rewrapRows?.('rewrapped', written.length);
            deps.metrics?.rewrapRows?.('changed-meanwhile', swaps.length - written.length);
            deps.metrics?.rewrapRows?.('refused', rows.length - swaps.length);
            return {
              primaryId,
              scanned: rows.length,
              rewrapped: written.length,
              changedMeanwhile: swaps.length - written.length,
              refused,
              refusedKeys,
              ...(rows.length > 0 ? { lastKey: rows.at(-1)!.key } : {}),
              done: rows.length < input.limit,
              elapsedMs: Math.round(performance.now() - began),
            };
          });
        }),
      );
    },

    /** Rows per key id over every data table, and the primary key now. */
    async countKeyringRows({ secretId }: { secretId: string }): Promise<KeyringRows> {
      return step('rewrap-count', secretId, KIND, () =>
        beating(async () => {
          const keyring = await keyringOf(secretId);
          return {
            primaryId: keyring.keys.find((k) => k.state === 'primary')?.id ?? '',
            rows: await rowsPerKey(secretId, keyring, context),
            keys: keyring.keys.map((k) => ({
              id: k.id,
              state: k.state,
              createdAt: k.createdAt,
              ...(k.disabledAt ? { disabledAt: k.disabledAt } : {}),
            })),
          };
        }),
      );
    },

    /**
     * After a re-wrap: the final count, and the keys it finds under no row disabled (retirement follows the data).
     * Only while `primaryId`, which the re-wrap waited on, is still primary and no rotation is under way: a key
     * that stopped being primary just now may still be encrypting in readers that have not refreshed.
     */
    async retireKeyringKeys({
      secretId,
      primaryId,
    }: {
      secretId: string;
      primaryId: string;
    }): Promise<KeyRetirementReport> {
      return step('rewrap-retire', secretId, KIND, () =>
        beating(async () => {
          const description = await deps.store.describe(secretId);
          if (versionWithStage(description, Stage.pending) !== undefined) {
            const keyring = await keyringOf(secretId);
            return {
              outcome: 'rotation-under-way-keys-kept',
              disabled: [],
              removed: [],
              rows: await rowsPerKey(secretId, keyring, context),
            };
          }
          return retireKeys(secretId, context, primaryId);
        }),
      );
    },
  };
}
