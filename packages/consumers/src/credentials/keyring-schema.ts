import type { z } from 'zod';
import { loadZod } from '../lazy';
import { associatedDataColumns, KEY_ID, KEYRING_ALGORITHMS, KEYRING_ENGINE, type KeyringKey } from './keyring';
import { zodDuration } from './zod-duration';

const SQL_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const TABLE_NAME = /^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$/;

// The zod schema of an `encryption-keyring` secret, built with its first use.

function build(zod: typeof import('zod')) {
  const { z } = zod;
  const key = z.object({
    id: z.string().regex(KEY_ID, 'must be 1 to 64 of A-Z, a-z, 0-9, _ and -'),
    algorithm: z.enum(KEYRING_ALGORITHMS),
    state: z.enum(['primary', 'decrypt-only', 'disabled']),
    createdAt: z.string().max(64),
    disabledAt: z.string().max(64).optional(),
    material: z.base64().refine((m) => Buffer.from(m, 'base64').length === 32, 'must be 32 bytes, base64'),
  }) satisfies z.ZodType<KeyringKey>;
  const identifier = z.string().regex(SQL_NAME, 'must be 1 to 63 of a-z, A-Z, 0-9 and _, not starting with a digit');
  const table = z
    .object({
      // A PostgreSQL login secret (AWS's JSON) that may read and update the table.
      database: z.string().min(1).max(2048),
      // `users` or `app.users`.
      table: z.string().regex(TABLE_NAME, 'must be a table name, optionally schema-qualified (app.users)'),
      primaryKey: identifier,
      column: identifier,
      // Built from the row's columns, as the application builds it: `users/{id}/token`.
      associatedData: z.string().min(1).max(512),
    })
    .superRefine((t, ctx) => {
      for (const c of associatedDataColumns(t.associatedData))
        if (!SQL_NAME.test(c))
          ctx.addIssue({ code: 'custom', path: ['associatedData'], message: `names column ${c}, not a column name` });
    });
  return z
    .looseObject({
      engine: z.literal(KEYRING_ENGINE),
      // How soon every reader has the keyring's new version: its SecretCache refresh interval.
      readers: z.object({ refresh: zodDuration(zod, 'readers.refresh') }),
      keys: z.array(key).max(1000).default([]),
      // Where ciphertexts under the keyring's keys live: what `rotor rewrap` re-encrypts and retirement counts.
      data: z.array(table).max(100).default([]),
      retention: z
        .object({ removeAfter: zodDuration(zod, 'retention.removeAfter').default(7 * 86_400_000) })
        .default({ removeAfter: 7 * 86_400_000 }),
    })
    .superRefine((s, ctx) => {
      const primaries = s.keys.filter((k) => k.state === 'primary').length;
      if (primaries > 1)
        ctx.addIssue({ code: 'custom', path: ['keys'], message: `has ${primaries} primary keys, not one` });
      const ids = new Set<string>();
      for (const [i, k] of s.keys.entries()) {
        if (ids.has(k.id))
          ctx.addIssue({ code: 'custom', path: ['keys', i, 'id'], message: `${k.id} is listed twice` });
        ids.add(k.id);
      }
    });
}

let built: ReturnType<typeof build> | undefined;

/** An encryption keyring: its keys (one primary at most) and how soon its readers see a new version. */
export function keyringSchema(): ReturnType<typeof build> {
  return (built ??= build(loadZod()));
}

export type KeyringShape = z.output<ReturnType<typeof build>>;

/** Where a keyring's ciphertexts live: one column of one PostgreSQL table. */
export type KeyringDataTable = KeyringShape['data'][number];
