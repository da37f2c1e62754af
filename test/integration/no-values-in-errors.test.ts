import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRotatingMysqlPool, createRotatingPgPool, InMemorySecretStore, SecretCache } from 'rotor-consumers';
import { drawnText, everything, quotes } from '../../packages/consumers/test/contract/no-values';
import { mysqlSecret, mysqlUserWithSecret } from '../helpers/mysql';
import { pgSecret, roleWithSecret } from '../helpers/stack';

/*
 * The rotating pools with the real drivers (pg, mysql2) against the stack's databases: secrets that are not logins,
 * and logins whose password the database refuses, give errors (and pool `error` events) that never quote the value.
 * As in packages/consumers/test/no-values-in-errors.test.ts, values are drawn from characters no message uses, so a
 * 4-character piece of one found in a message can only have come from the value.
 */

const text = drawnText;

describe('the rotating pools on the real drivers never quote a secret value (property)', () => {
  it.each(['postgres', 'mysql'] as const)(
    '%s: malformed secrets, and passwords the database refuses',
    async (engine) => {
      const seen = new Set<string>();
      const login =
        engine === 'postgres'
          ? { ...(await roleWithSecret('it', 'no-values', seen)), secret: pgSecret }
          : { ...(await mysqlUserWithSecret('no-values', seen)), secret: mysqlSecret };
      const valid = login.secret(login.username, 'placeholder') as Record<string, unknown>;
      const values = fc.oneof(
        text, // not JSON
        text.map((t) => `{"password": "${t}"`), // cut short
        text.map((t) => JSON.stringify({ ...valid, password: t, port: t })), // a port of the wrong type
        text.map((t) => JSON.stringify({ ...valid, password: t, username: { t } })),
        text.map((t) => JSON.stringify({ ...valid, password: t })), // a login the database refuses
        text.map((t) => JSON.stringify({ ...valid, password: `${t}'; DROP TABLE x; --` })),
      );
      let refusedByTheDatabase = 0;
      await fc.assert(
        fc.asyncProperty(values, async (value) => {
          const store = new InMemorySecretStore();
          await store.create('app/db', value);
          const events: unknown[] = [];
          const options = { cache: new SecretCache({ store }), secretId: 'app/db', maxFailedLogins: 100 };
          const pool = (engine === 'postgres' ? createRotatingPgPool(options) : createRotatingMysqlPool(options)) as {
            query(sql: string): Promise<unknown>;
            on(event: 'error', listener: (error: unknown) => void): void;
            end(): Promise<void>;
          };
          pool.on('error', (error) => events.push(error));
          try {
            const error = await pool.query('SELECT 1').then(
              () => undefined,
              (e: unknown) => e,
            );
            expect(error, 'a value that is not the login logged in').toBeDefined();
            const { code, errno } = error as { code?: string; errno?: number };
            if (code === '28P01' || errno === 1045) refusedByTheDatabase++;
            for (const said of [error, ...events]) {
              const found = quotes(everything(said), value);
              expect(found, `quoted part of the value in: ${(said as Error).message}`).toBeUndefined();
            }
          } finally {
            await pool.end();
          }
        }),
        { numRuns: 30 },
      );
      // The database itself refused some of them: the drivers' own errors were searched, not only rotor's checks.
      expect(refusedByTheDatabase).toBeGreaterThan(0);
    },
  );
});
