import type { SecretStore } from 'rotor-consumers/stores';

/** The store's calls that reach Secrets Manager. */
export type StoreOperation = keyof Pick<
  SecretStore,
  'describe' | 'getByStage' | 'getByVersion' | 'putPending' | 'moveStage' | 'removeStage'
>;
export const STORE_OPERATIONS: StoreOperation[] = [
  'describe',
  'getByStage',
  'getByVersion',
  'putPending',
  'moveStage',
  'removeStage',
];
export const WRITE_OPERATIONS: ReadonlySet<StoreOperation> = new Set(['putPending', 'moveStage', 'removeStage']);

/** `inner`, telling `observe` of each call (by operation) as it is made. */
export function observedStore(inner: SecretStore, observe: (operation: StoreOperation) => void): SecretStore {
  const seen =
    <A extends unknown[], R>(op: StoreOperation, call: (...args: A) => Promise<R>) =>
    (...args: A) => {
      observe(op);
      return call(...args);
    };
  return {
    description: inner.description,
    describe: seen('describe', (id: string) => inner.describe(id)),
    getByStage: seen('getByStage', (id: string, stage: Parameters<SecretStore['getByStage']>[1]) =>
      inner.getByStage(id, stage),
    ),
    getByVersion: seen('getByVersion', (id: string, v: string) => inner.getByVersion(id, v)),
    putPending: seen('putPending', (id: string, t: string, value: string) => inner.putPending(id, t, value)),
    moveStage: seen('moveStage', (id: string, stage: Parameters<SecretStore['moveStage']>[1], v: string) =>
      inner.moveStage(id, stage, v),
    ),
    removeStage: seen('removeStage', (id: string, stage: Parameters<SecretStore['removeStage']>[1], v: string) =>
      inner.removeStage(id, stage, v),
    ),
  };
}

/** The most of `times` (ms, any order) that fall in any window of `windowMs`. */
export function busiestWindow(times: number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let worst = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++;
    worst = Math.max(worst, i - j + 1);
  }
  return worst;
}

/** Runs `work` over `items` with at most `limit` at a time, results in order. */
export async function pool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!);
      }
    }),
  );
  return out;
}
