import { parseDuration } from '../duration';

/** A zod field for a duration with a unit (`90s`, `15m`), its message without the field's name (zod adds the path). */
export function zodDuration({ z }: typeof import('zod'), what: string) {
  return z.string().transform((text, ctx) => {
    try {
      return parseDuration(text, what);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(`${what}: `, '') });
      return z.NEVER;
    }
  });
}
