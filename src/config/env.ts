import { z } from 'zod';
import { DEFAULT_GRACE, DEFAULT_TASK_QUEUE } from '../shared/constants';
import { parseDuration } from '../shared/duration';
import { InvalidInputError } from '../shared/errors';

const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const envSchema = z.object({
  ROTOR_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  ROTOR_DEFAULT_GRACE: duration.default(parseDuration(DEFAULT_GRACE)),
  ROTOR_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  ROTOR_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(1000).default(20),
});

/** rotor's settings from the environment. Temporal's own (TEMPORAL_*) and AWS's (AWS_*) are read by their SDKs. */
export type RotorEnv = z.output<typeof envSchema>;

/** Validates the environment; every problem is named with its variable, all at once. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): RotorEnv {
  const picked = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('ROTOR_') && v !== ''));
  const result = envSchema.safeParse(picked);
  if (result.success) return result.data;
  throw new InvalidInputError(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
}
