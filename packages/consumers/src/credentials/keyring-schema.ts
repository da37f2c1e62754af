import type { z } from 'zod';
import { loadZod } from '../lazy';
import { KEY_ID, KEYRING_ALGORITHMS, KEYRING_ENGINE, type KeyringKey } from './keyring';
import { zodDuration } from './zod-duration';

// The zod schema of an `encryption-keyring` secret, built with its first use.

function build(zod: typeof import('zod')) {
  const { z } = zod;
  const key = z.object({
    id: z.string().regex(KEY_ID, 'must be 1 to 64 of A-Z, a-z, 0-9, _ and -'),
    algorithm: z.enum(KEYRING_ALGORITHMS),
    state: z.enum(['primary', 'decrypt-only', 'disabled']),
    createdAt: z.string().max(64),
    material: z.base64().refine((m) => Buffer.from(m, 'base64').length === 32, 'must be 32 bytes, base64'),
  }) satisfies z.ZodType<KeyringKey>;
  return z
    .looseObject({
      engine: z.literal(KEYRING_ENGINE),
      // How soon every reader has the keyring's new version: its SecretCache refresh interval.
      readers: z.object({ refresh: zodDuration(zod, 'readers.refresh') }),
      keys: z.array(key).max(1000).default([]),
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
