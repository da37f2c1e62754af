import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier, generateApiKey, JwtSigner, LeasedCredentials, SecretCache } from '../src';
import { Generations, type PoolDriver } from '../src/generations';
import { InMemorySecretStore } from '../src/stores/in-memory';
import { drawnText, everything, quotes } from './contract/no-values';

/*
 * Nothing the library throws quotes a secret's value: a property test feeds malformed values (not JSON, JSON of the
 * wrong shape, login fields of the wrong types) to every path that parses one, and searches each error's message,
 * cause and stack for any 4-character piece of the value. The values are drawn from characters no message uses, so
 * a piece found there can only have come from the value.
 */

const text = drawnText;
const malformed = fc.oneof(
  text, // not JSON at all
  text.map((t) => `{"password": "${t}"`), // cut short
  text.map((t) => JSON.stringify([t, t])), // JSON, not an object
  text.map((t) => JSON.stringify({ password: t })), // no host, no username
  text.map((t) => JSON.stringify({ host: 'h', username: 'u', password: t, port: t })), // a port of the wrong type
  text.map((t) => JSON.stringify({ host: 'h', username: { t }, password: t })),
  text.map((t) => JSON.stringify({ current: t, keys: [{ kid: t, privateJwk: t }] })), // a broken signing key
);

async function errorOf(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** A driver that never connects (unit test only): parsing the secret fails before any login. */
const driver: PoolDriver<object> = {
  open: () => ({}),
  probe: async () => undefined,
  end: async () => undefined,
  authErrorClass: () => undefined,
  endWaitsForBusy: true,
};

describe('errors never quote a secret value (property)', () => {
  it('from getJson, the rotating pools and the JWT signer', async () => {
    await fc.assert(
      fc.asyncProperty(malformed, async (value) => {
        const store = new InMemorySecretStore();
        await store.create('app/db', value);
        const cache = new SecretCache({ store });
        const paths = {
          getJson: () => cache.getJson('app/db'),
          pool: () => new Generations({ cache, secretId: 'app/db' }, driver, () => undefined).run(async () => 1),
          signer: () => new JwtSigner({ cache, secretId: 'app/db' }).sign({ sub: 'x' }),
        };
        for (const [path, run] of Object.entries(paths)) {
          const error = await errorOf(run);
          if (path !== 'getJson' || !value.startsWith('{')) expect(error, `${path} accepted it`).toBeDefined();
          if (error === undefined) continue;
          const found = quotes(everything(error), value);
          expect(found, `${path} quoted part of the value in: ${(error as Error).message}`).toBeUndefined();
          expect((error as Error).message).toContain('app/db');
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('nothing quotes a value that reaches the library from outside (property)', () => {
  it('ApiKeyVerifier: keys made of any text, and a pepper secret that is not one, give reasons and errors without the text', async () => {
    const key = generateApiKey('bill');
    const presented = fc.oneof(
      text, // not a key at all
      text.map((t) => `bill_${t}`), // the prefix, then anything
      text.map((t) => `${key.key.slice(0, 5)}${t}${key.key.slice(5 + t.length)}`), // a key with part of it replaced
    );
    await fc.assert(
      fc.asyncProperty(presented, malformed, async (attempt, pepperValue) => {
        const store = new InMemorySecretStore();
        await store.create('pepper', pepperValue);
        const verifier = new ApiKeyVerifier({
          service: 'billing',
          prefix: 'bill',
          // Every key id is registered: the pepper secret is read for each well-formed key.
          query: async () => ({ rows: [{ pepper_id: 'p1', digest: Buffer.alloc(32) }] }),
          pepper: { cache: new SecretCache({ store }), secretId: 'pepper' },
        });
        for (const candidate of [attempt, key.key]) {
          let verdict: unknown;
          const error = await errorOf(async () => (verdict = await verifier.verify(candidate)));
          const said = error === undefined ? JSON.stringify(verdict) : everything(error);
          expect(quotes(said, attempt), `verdict or error quoted the key: ${said}`).toBeUndefined();
          expect(quotes(said, pepperValue), `verdict or error quoted the pepper secret: ${said}`).toBeUndefined();
        }
      }),
      { numRuns: 200 },
    );
  });

  it('LeasedCredentials: an endpoint answer that is not a lease is refused naming fields, never quoting the answer', async () => {
    const answer = fc.oneof(
      text, // not JSON
      text.map((t) => JSON.stringify([t])),
      text.map((t) => JSON.stringify({ leaseId: 'l1', password: t })), // fields missing
      text.map((t) =>
        JSON.stringify({
          leaseId: 'l1',
          secretId: 'app/leased',
          generation: 0,
          engine: 'postgres',
          host: 'h',
          port: t, // a port that is the text
          username: 'u',
          password: t,
          expiresAtMs: 1,
          renewEveryMs: 0, // would spin the renewal timer
        }),
      ),
      text.map((t) => JSON.stringify({ leaseId: t, password: { t }, renewEveryMs: t })),
    );
    await fc.assert(
      fc.asyncProperty(answer, async (body) => {
        const leased = new LeasedCredentials({
          url: 'http://rotor.invalid:9466',
          token: 'a-token-for-the-test',
          fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } }),
        });
        try {
          const error = await errorOf(() => leased.getByStage('app/leased', 'AWSCURRENT' as never));
          expect(error, 'a malformed answer was taken as a lease').toBeDefined();
          const found = quotes(everything(error), body);
          expect(found, `quoted part of the answer in: ${(error as Error).message}`).toBeUndefined();
          expect((error as Error).message).toContain('app/leased');
        } finally {
          await leased.close();
        }
      }),
      { numRuns: 200 },
    );
  });
});
