import {
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import { REWRAP_NAMES, type KeyringRows, type RewrapInput, type RewrapProgress } from '../shared/rewrap';
import { REWRAP_OPTIONS } from './activity-options';
import { workflowAuditor } from './reporting';

/*
 * A keyring's re-wrap, one workflow per keyring secret (`rotor/rewrap/<secretId>`): every ciphertext in its data
 * tables that is not under the primary key is decrypted, re-encrypted under the primary, checked, and written with a
 * compare-and-swap, a page at a time by primary key. It waits first until every reader encrypts with the primary
 * (the pre-publication time), so no row under an older key appears behind it. The position and the counts are the
 * workflow's state: a worker killed mid-batch resumes at the page it was on (the batch's swaps make a re-run write
 * nothing twice), and the run continues as new before its history grows large, for any table size. Rows the
 * application changed meanwhile are left to a further pass; after the last, a final count disables the keys no row
 * uses (retirement follows the data).
 */

export interface RewrapRequest {
  actor?: string;
}

export const pauseRewrapUpdate = defineUpdate<RewrapProgress, [RewrapRequest]>(REWRAP_NAMES.pause);
export const resumeRewrapUpdate = defineUpdate<RewrapProgress, [RewrapRequest]>(REWRAP_NAMES.resume);
export const cancelRewrapUpdate = defineUpdate<RewrapProgress, [RewrapRequest]>(REWRAP_NAMES.cancel);
export const rewrapProgressQuery = defineQuery<RewrapProgress>(REWRAP_NAMES.progress);

/** Events after which a re-wrap continues as new, unless Temporal suggests it earlier. */
const HISTORY_CEILING = 1500;
/** Batches between memo updates (what the Temporal UI's list shows). */
const MEMO_EVERY = 20;

interface CarriedRewrap extends RewrapProgress {
  /** The primary key the re-wrap waited on: retirement counts only while it is still primary. */
  waitedPrimaryId: string;
  paused: boolean;
  cancelled: boolean;
  /** Rows rewrapped or found changed in this pass: a pass with neither ends the passes. */
  passWork: number;
  batches: number;
  primaryChanged?: boolean;
}

/** `k1=120 k2=0`: counts per key id (or per reason) as one audit field. */
const perKey = (counts: Record<string, number | undefined>) =>
  Object.entries(counts)
    .map(([id, n]) => `${id || '(not rotor)'}=${n ?? 0}`)
    .join(' ');

/** Who asked, from an Update's argument (the Temporal UI may send none): a short string or nothing. */
const actorOf = (request: unknown): { actor?: string } => {
  const actor = (request as RewrapRequest | undefined)?.actor;
  return typeof actor === 'string' && actor.length > 0 ? { actor: actor.slice(0, 200) } : {};
};

const clamp = (value: number | undefined, fallback: number, min: number, max: number) =>
  Math.min(max, Math.max(min, Math.floor(value ?? fallback)));

export async function rewrapKeyring(input: RewrapInput, carried?: CarriedRewrap): Promise<RewrapProgress> {
  const { rewrapPlan, rewrapBatch, countKeyringRows, retireKeyringKeys } =
    proxyActivities<RotorActivities>(REWRAP_OPTIONS);
  const batchSize = clamp(input.batchSize, 500, 1, 5000);
  const ratePerSecond = clamp(input.ratePerSecond, 2000, 1, 1_000_000);
  const maxPasses = clamp(input.maxPasses, 3, 1, 20);
  const audit = workflowAuditor(input.secretId, 'rewrap');

  const state: CarriedRewrap = carried
    ? { ...carried, run: carried.run + 1 }
    : {
        secretId: input.secretId,
        phase: 'waiting',
        tables: [],
        table: 0,
        pass: 1,
        scanned: 0,
        rewrapped: 0,
        changedMeanwhile: 0,
        refused: {},
        refusedKeys: [],
        rowsBefore: {},
        run: 1,
        waitedPrimaryId: '',
        paused: false,
        cancelled: false,
        passWork: 0,
        batches: 0,
      };
  const view = (): RewrapProgress => {
    const {
      waitedPrimaryId: _w,
      paused: _p,
      cancelled: _c,
      passWork: _pw,
      batches: _b,
      primaryChanged: _pc,
      ...progress
    } = state;
    return progress;
  };
  const ended = () => state.phase === 'done' || state.phase === 'cancelled' || state.phase === 'retiring';
  /** Requests after the last batch are refused (the Temporal UI shows why), and record nothing. */
  const refuseAfterEnd = (_request: RewrapRequest) => {
    if (ended())
      throw new Error(`the re-wrap of ${input.secretId} is ${state.phase}: nothing to pause, resume or cancel`);
  };
  // Operator requests are answered at once and change only flags: the loop acts on them between batches.
  setHandler(rewrapProgressQuery, view);
  setHandler(
    pauseRewrapUpdate,
    async (request) => {
      if (!state.paused) {
        state.paused = true;
        await audit('rewrap-paused', { outcome: 'paused', ...actorOf(request) });
      }
      return view();
    },
    { validator: refuseAfterEnd },
  );
  setHandler(
    resumeRewrapUpdate,
    async (request) => {
      if (state.paused) {
        state.paused = false;
        await audit('rewrap-resumed', { outcome: 'resumed', ...actorOf(request) });
      }
      return view();
    },
    { validator: refuseAfterEnd },
  );
  setHandler(
    cancelRewrapUpdate,
    async (request) => {
      if (!state.cancelled) {
        state.cancelled = true;
        await audit('rewrap-cancelled', { outcome: 'cancel-requested', ...actorOf(request) });
      }
      return view();
    },
    { validator: refuseAfterEnd },
  );

  const historyFull = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > HISTORY_CEILING;
  const carryOn = async (): Promise<never> => {
    await condition(allHandlersFinished);
    return continueAsNew<typeof rewrapKeyring>(input, state);
  };

  if (!carried) {
    const plan = await rewrapPlan({ secretId: input.secretId });
    Object.assign(state, { primaryId: plan.primaryId, waitedPrimaryId: plan.primaryId, tables: plan.tables });
    state.rowsBefore = plan.rows;
    await audit('rewrap-started', {
      outcome: 'started',
      ...(input.actor ? { actor: input.actor } : {}),
      detail: { primaryId: plan.primaryId, tables: plan.tables.join(' '), rows: perKey(plan.rows) },
    });
    // Every reader encrypts with the primary key before the first page is read.
    await condition(() => state.cancelled, plan.prePublicationMs);
    state.phase = 'rewrapping';
    state.rewrapStartedAt = new Date().toISOString();
  }

  while (!state.cancelled) {
    if (state.paused) {
      state.phase = 'paused';
      await condition(() => !state.paused || state.cancelled || historyFull());
      if (historyFull()) await carryOn();
      continue;
    }
    state.phase = 'rewrapping';
    if (state.table >= state.tables.length) {
      state.phase = 'counting';
      const { rows, primaryId } = await countKeyringRows({ secretId: input.secretId });
      const left = Object.entries(rows).reduce((sum, [id, n]) => sum + (id === primaryId ? 0 : n), 0);
      const refused = Object.values(state.refused).reduce((sum, n) => sum + (n ?? 0), 0);
      // Another pass while rows it could move remain (changed meanwhile, or written by a reader not yet refreshed).
      if (left > refused && state.pass < maxPasses && state.passWork > 0) {
        Object.assign(state, { pass: state.pass + 1, table: 0, passWork: 0, phase: 'rewrapping' });
        Object.assign(state, { refused: {}, refusedKeys: [] });
        delete state.afterKey;
        continue;
      }
      break;
    }
    const batch = await rewrapBatch({
      secretId: input.secretId,
      table: state.table,
      limit: batchSize,
      ...(state.afterKey !== undefined ? { afterKey: state.afterKey } : {}),
    });
    state.primaryId = batch.primaryId;
    // Another primary since the wait: readers may still encrypt with a key retirement would count as unused.
    if (batch.primaryId !== state.waitedPrimaryId) state.primaryChanged = true;
    state.scanned += batch.scanned;
    state.rewrapped += batch.rewrapped;
    state.changedMeanwhile += batch.changedMeanwhile;
    state.passWork += batch.rewrapped + batch.changedMeanwhile;
    for (const [reason, n] of Object.entries(batch.refused))
      state.refused[reason as keyof typeof batch.refused] =
        (state.refused[reason as keyof typeof batch.refused] ?? 0) + n;
    state.refusedKeys = [...state.refusedKeys, ...batch.refusedKeys].slice(0, 20);
    if (batch.done) {
      state.table += 1;
      delete state.afterKey;
    } else state.afterKey = batch.lastKey;
    state.batches += 1;
    if (state.batches % MEMO_EVERY === 0) upsertMemo({ rewrap: view() });
    // The rate limit: this batch's rows at `ratePerSecond`, less the time the batch took (as the activity measured
    // it: recorded in the history, so a replay decides the same; the workflow's clock differs between task runs).
    const due = (batch.scanned / ratePerSecond) * 1000 - batch.elapsedMs;
    if (due >= 1) await sleep(due);
    if (historyFull()) await carryOn();
  }

  if (state.cancelled) {
    state.phase = 'cancelled';
    state.outcome = 'cancelled';
  } else {
    state.phase = 'retiring';
    const retired = state.primaryChanged
      ? {
          ...(await countKeyringRows({ secretId: input.secretId })),
          outcome: 'primary-changed-keys-kept',
          disabled: [],
        }
      : await retireKeyringKeys({ secretId: input.secretId, primaryId: state.waitedPrimaryId });
    state.rowsAfter = retired.rows;
    state.disabled = retired.disabled;
    state.outcome = retired.outcome;
    state.phase = 'done';
  }
  state.endedAt = new Date().toISOString();
  upsertMemo({ rewrap: view() });
  await audit('rewrap-ended', {
    outcome: state.outcome!,
    detail: {
      rewrapped: state.rewrapped,
      changedMeanwhile: state.changedMeanwhile,
      refused: perKey(state.refused),
      passes: state.pass,
      ...(state.rowsAfter ? { rows: perKey(state.rowsAfter) } : {}),
      ...(state.disabled ? { disabled: state.disabled.join(' ') } : {}),
    },
  });
  await condition(allHandlersFinished);
  return view();
}

/** A keyring's keys and the rows each protects now, counted on a worker (`rotor status <id> --keys`). */
export async function keyringRows(input: { secretId: string }): Promise<KeyringRows> {
  const { countKeyringRows } = proxyActivities<RotorActivities>({
    ...REWRAP_OPTIONS,
    retry: { ...REWRAP_OPTIONS.retry, maximumAttempts: 3 },
  });
  const { primaryId, rows, keys } = await countKeyringRows(input);
  return { primaryId, rows, keys };
}
