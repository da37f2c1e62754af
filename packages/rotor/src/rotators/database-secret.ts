import { z } from 'zod';

/** Text that a driver must pass through untouched: non-empty, without NUL. */
const text = () =>
  z
    .string()
    .min(1, 'must not be empty')
    .refine((v) => !v.includes('\0'), 'must not contain NUL');

/**
 * AWS's documented JSON for a database secret (`engine`, `host`, `port`, `username`, `password`, `dbname`, `ssl`),
 * with the engine's names and its rule for user names. Other fields are kept untouched through rotation.
 */
export function databaseSecretSchema<E extends readonly [string, ...string[]]>(
  engines: E,
  username: { fits: (name: string) => boolean; limit: string },
) {
  return z.looseObject({
    engine: z.enum(engines),
    host: z
      .string()
      .min(1, 'must not be empty')
      .regex(/^[^\s/@?#]+$/, 'must be a host name or IP address (no spaces, slashes, @, ? or #)'),
    port: z
      .union([z.number().int().min(1).max(65535), z.string().regex(/^\d{1,5}$/, 'must be a port number')])
      .optional(),
    username: text().refine(username.fits, username.limit),
    password: text(),
    dbname: z.string().min(1, 'must not be empty').optional(),
    ssl: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
    /** rotor's: a read-only query `test` runs with the new credential (the tables the application needs). */
    testQuery: z.string().min(1, 'must not be empty').max(4000, 'must be at most 4000 characters').optional(),
  });
}

/** The fields every database login has, read from a validated shape: the port as a number, `ssl` as a boolean. */
export function loginFields(
  shape: {
    host: string;
    port?: number | string | undefined;
    username: string;
    password: string;
    ssl?: boolean | 'true' | 'false' | undefined;
  },
  defaultPort: number,
): { host: string; port: number; username: string; password: string; ssl: boolean | undefined } {
  return {
    host: shape.host,
    port: shape.port === undefined ? defaultPort : Number(shape.port),
    username: shape.username,
    password: shape.password,
    ssl: shape.ssl === undefined ? undefined : shape.ssl === true || shape.ssl === 'true',
  };
}
