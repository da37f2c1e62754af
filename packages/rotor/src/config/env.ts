import { z } from 'zod';
import { DEFAULT_GRACE, DEFAULT_TASK_QUEUE } from '../shared/constants';
import { parseDuration } from 'rotor-consumers/core';
import { InvalidInputError } from 'rotor-consumers/core';

const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

const envSchema = z.object({
  ROTOR_TASK_QUEUE: z
    .string()
    .min(1)
    .regex(/^[^'"\\]+$/, 'must not contain quotes or backslashes')
    .default(DEFAULT_TASK_QUEUE),
  ROTOR_DEFAULT_GRACE: duration.default(parseDuration(DEFAULT_GRACE)),
  ROTOR_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
  ROTOR_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(1000).default(20),
  /** Workflows kept in the worker's memory between their tasks; others are replayed from history when they wake. */
  ROTOR_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(2).max(100_000).optional(),
  /** rotor.yaml, when `-f` is not given: `rotor worker` (alert routes, guards, metrics), `rotor apply`, `rotor validate`. */
  ROTOR_CONFIG: z.string().min(1).optional(),
  /** The audit trail's PostgreSQL database. `rotor worker` needs it, unless ROTOR_AUDIT_DISABLED=true. */
  ROTOR_AUDIT_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /** Run `rotor worker` without an audit trail (events go to its log only). A choice made out loud, never a default. */
  ROTOR_AUDIT_DISABLED: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** Overrides rotor.yaml's metrics.port: the port of the worker's /metrics (0 turns it off). */
  ROTOR_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  /** Overrides rotor.yaml's reports.port (0 turns the endpoint off). */
  ROTOR_REPORTS_PORT: z.coerce.number().int().min(0).max(65_535).optional(),
  /** Where the Temporal SDK serves its own Prometheus metrics, e.g. 0.0.0.0:9465. Off when unset. */
  ROTOR_SDK_METRICS_ADDRESS: z
    .string()
    .regex(/^[^:]+:\d+$/, 'must be host:port')
    .optional(),
  /** The Temporal UI, for links in alerts and CLI output. */
  ROTOR_TEMPORAL_UI_URL: z.string().url().optional(),
});

/** rotor's settings from the environment. Temporal's own (TEMPORAL_*) and AWS's (AWS_*) are read by their SDKs. */
export type RotorEnv = z.output<typeof envSchema>;

/** Validates the environment; every problem is named with its variable, all at once. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): RotorEnv {
  const picked = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('ROTOR_') && v !== ''));
  const result = envSchema.safeParse(picked);
  if (result.success) return result.data;
  // The audit URL carries a password: name the variable, never echo the value.
  throw new InvalidInputError(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
}
