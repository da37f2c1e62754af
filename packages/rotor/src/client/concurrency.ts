/**
 * `fn` over `items` with at most `limit` calls in flight, results in the items' order. `onEach` hears how many are
 * done after each one. The first error stops new calls; it is thrown once the calls in flight have settled.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
  onEach?: (done: number) => void,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let done = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        failure ??= { error };
        return;
      }
      onEach?.(++done);
    }
  };
  const lanes = Math.min(Number.isFinite(limit) && limit >= 1 ? Math.floor(limit) : 1, items.length);
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failure) throw failure.error;
  return results;
}
