import fc from 'fast-check';

/*
 * What the no-values property tests share (packages/consumers/test/no-values-in-errors.test.ts, and
 * test/integration/no-values-in-errors.test.ts on the real drivers): values drawn from characters no message uses, so
 * a 4-character piece of one found in a message can only have come from the value.
 */

const DRAWN = 'ÆØÅ€£¥©®±µ§¶ðþßñ';

/** Text of 4 to 40 drawn characters: the "secret" a property test hides in a value. */
export const drawnText = fc.string({ unit: fc.constantFrom(...DRAWN), minLength: 4, maxLength: 40 });

/** Every text an error carries: its message, its causes', its stack and its own fields. */
export function everything(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++)
    parts.push(String((e as Error).message), String((e as Error).stack), JSON.stringify(e) ?? '');
  return parts.join('\n');
}

/** A 4-character piece of `value`'s drawn characters found in `haystack`, if any. */
export function quotes(haystack: string, value: string): string | undefined {
  for (const run of value.replace(new RegExp(`[^${DRAWN}]+`, 'g'), '\n').split('\n'))
    for (let i = 0; i + 4 <= run.length; i++) if (haystack.includes(run.slice(i, i + 4))) return run.slice(i, i + 4);
  return undefined;
}
