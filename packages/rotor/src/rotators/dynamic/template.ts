import { hkdfSync } from 'node:crypto';
import { InvalidSecretError, parseDuration } from 'rotor-consumers/core';
import { z } from 'zod';
import type { LeaseTerms } from '../../shared/lease';
import { parseJsonObject } from '../secret-json';

/**
 * A short-lived database credential template: the secret an application leases credentials from. Its value:
 *
 *   { "kind": "dynamic-database", "engine": "postgres" | "mysql" | "mariadb",
 *     "admin": "<id of the admin login's secret>", "dbname": "orders",
 *     "creationStatements": ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}",
 *                            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {{name}}"],
 *     "defaultTtl": "1h", "maxTtl": "24h", "usernamePrefix": "orders", "passwordKey": "<base64, 32 bytes or more>",
 *     "reassignTo": "orders_owner", "standby": 1 }
 *
 * Placeholders stand for values already quoted by the driver (`{{name}}` an identifier, `{{password}}` and
 * `{{expiration}}` literals): write them bare, never inside quotes.
 */
export const DYNAMIC_KIND = 'dynamic-database';
export const DYNAMIC_ENGINES = ['postgres', 'postgresql', 'mysql', 'mariadb'] as const;
const PLACEHOLDERS = ['name', 'password', 'expiration'] as const;
/** Leases renew at most every 30 s; the instance times out after four missed renewals (at most the TTL). */
const MAX_RENEW_EVERY_MS = 30_000;
const MISSED_RENEWALS = 4;

export interface DynamicTemplate {
  engine: 'postgres' | 'mysql';
  admin: string;
  dbname?: string;
  creationStatements: string[];
  ttlMs: number;
  maxTtlMs: number;
  usernamePrefix: string;
  passwordKey: Buffer;
  reassignTo?: string;
  /** Leases each worker's endpoint keeps ready, so a request is answered without waiting for a login (default 0). */
  standby: number;
}

const schema = z
  .object({
    kind: z.literal(DYNAMIC_KIND),
    engine: z.enum(DYNAMIC_ENGINES),
    admin: z.string().min(1),
    dbname: z.string().min(1).optional(),
    creationStatements: z.array(z.string().min(1).max(4000)).min(1).max(20),
    defaultTtl: z.string(),
    maxTtl: z.string(),
    usernamePrefix: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,11}$/, 'must be 1 to 12 of a-z, 0-9 and _, starting with a letter'),
    passwordKey: z.string(),
    reassignTo: z.string().min(1).max(63).optional(),
    standby: z.number().int().min(0).max(10).optional(),
  })
  .passthrough();

/** Parses and checks a template; every problem at once, naming fields, never a value. */
export function parseDynamicTemplate(secretId: string, raw: string): DynamicTemplate {
  const json = parseJsonObject(secretId, raw);
  const parsed = schema.safeParse(json);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  const has = (field: string) => problems.some((p) => p.startsWith(`${field}:`) || p.startsWith(`${field}.`));
  const duration = (field: 'defaultTtl' | 'maxTtl') => {
    if (typeof json[field] !== 'string' || has(field)) return 0;
    try {
      return parseDuration(json[field]);
    } catch (error) {
      problems.push(`${field}: ${(error as Error).message}`);
      return 0;
    }
  };
  const ttlMs = duration('defaultTtl');
  const maxTtlMs = duration('maxTtl');
  if (ttlMs && ttlMs < 3000) problems.push('defaultTtl: must be at least 3s');
  if (ttlMs && maxTtlMs && maxTtlMs < ttlMs) problems.push('maxTtl: must be at least defaultTtl');
  const key = typeof json.passwordKey === 'string' ? Buffer.from(json.passwordKey, 'base64') : Buffer.alloc(0);
  if (typeof json.passwordKey === 'string' && key.length < 32)
    problems.push('passwordKey: must be base64 of at least 32 random bytes');
  const statements = Array.isArray(json.creationStatements)
    ? json.creationStatements.filter((s): s is string => typeof s === 'string')
    : [];
  statements.forEach((statement, i) => {
    for (const match of statement.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(match[1]!))
        problems.push(`creationStatements.${i}: unknown placeholder {{${match[1]}}} (${PLACEHOLDERS.join(', ')})`);
      const before = statement[match.index! - 1];
      if (before === "'" || before === '"' || before === '`')
        problems.push(`creationStatements.${i}: {{${match[1]}}} is quoted already: write placeholders bare`);
    }
  });
  if (statements.length && !statements.some((s) => /\{\{\s*name\s*\}\}/.test(s)))
    problems.push('creationStatements: none creates {{name}}');
  if (statements.length && !statements.some((s) => /\{\{\s*password\s*\}\}/.test(s)))
    problems.push('creationStatements: none sets {{password}}');
  if (problems.length || !parsed.success) throw new InvalidSecretError(secretId, problems);
  const t = parsed.data;
  return {
    engine: t.engine === 'postgres' || t.engine === 'postgresql' ? 'postgres' : 'mysql',
    admin: t.admin,
    ...(t.dbname ? { dbname: t.dbname } : {}),
    creationStatements: t.creationStatements,
    ttlMs,
    maxTtlMs,
    usernamePrefix: t.usernamePrefix,
    passwordKey: key,
    ...(t.reassignTo ? { reassignTo: t.reassignTo } : {}),
    standby: t.standby ?? 0,
  };
}

export function leaseTerms(template: Pick<DynamicTemplate, 'ttlMs' | 'maxTtlMs'>): LeaseTerms {
  // A sixth of the maximum at most: a new login comes three renewals before the end, the old one is revoked one
  // renewal before it, so the holder renews (and moves) at least once in between.
  const renewEveryMs = Math.min(Math.floor(template.ttlMs / 3), Math.floor(template.maxTtlMs / 6), MAX_RENEW_EVERY_MS);
  return {
    ttlMs: template.ttlMs,
    maxTtlMs: template.maxTtlMs,
    renewEveryMs,
    // Never longer than the TTL: an abandoned lease's logins end no later than a lease nobody renews would.
    instanceTimeoutMs: Math.min(renewEveryMs * MISSED_RENEWALS, template.ttlMs),
    // Three renewals before the end: the instance learns of the new credential at the first and its pool moves.
    replaceLeadMs: renewEveryMs * 3,
  };
}

/**
 * The login name of a lease's generation: `v_<prefix>_<10 hex of the lease id>_<generation>`, at most 32 characters
 * (MySQL's limit), from characters no identifier needs quoting for.
 */
export function leaseUsername(prefix: string, leaseId: string, generation: number): string {
  const id = leaseId
    .replace(/[^0-9a-f]/gi, '')
    .slice(0, 10)
    .toLowerCase();
  return `v_${prefix}_${id}_${generation}`;
}

/**
 * Whether `name` has the shape of a lease login (what revocation may drop, and nothing else), whatever prefix its
 * template had when it was made.
 */
export function isLeaseUsername(name: string): boolean {
  return /^v_[a-z][a-z0-9_]{0,11}_[0-9a-f]{10}_[0-9]+$/.test(name);
}

/**
 * A lease generation's password, derived (HKDF-SHA256) from the template's key, the lease and the generation: every
 * worker computes the same one, so it never travels through Temporal, and a retried issue sets the same password.
 */
export function leasePassword(key: Buffer, leaseId: string, generation: number): string {
  return Buffer.from(hkdfSync('sha256', key, leaseId, `rotor lease password ${generation}`, 24)).toString('base64url');
}

/** Renders the creation statements with values the driver quoted. */
export function renderStatements(
  template: DynamicTemplate,
  quoted: { name: string; password: string; expiration: string },
): string[] {
  return template.creationStatements.map((s) =>
    s.replace(/\{\{\s*(name|password|expiration)\s*\}\}/g, (_, key: keyof typeof quoted) => quoted[key]),
  );
}
