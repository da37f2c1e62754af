import { generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { JwksUnavailableError, JwtSigner, JwtVerifier, SecretCache } from 'rotor-consumers';
import { generateSigningKey, JWT_ALGORITHMS, publicPart } from 'rotor-consumers/credentials';
import { parseJwtSigningSecret } from '../../packages/rotor/src/rotators/jwt-signing-key';
import { InvalidSecretError } from 'rotor-consumers/core';
import { InMemorySecretStore } from 'rotor-consumers/stores';

const settings = {
  engine: 'jwt-signing-key',
  service: 'auth',
  registry: 'reg',
  jwks: { maxAge: '5m', cooldown: '30s' },
  tokens: { maxLifetime: '1h' },
};

function problemsOf(json: object): string[] {
  try {
    parseJwtSigningSecret('jwt', JSON.stringify(json));
  } catch (error) {
    return [...(error as InvalidSecretError).problems];
  }
  return [];
}

describe('jwt-signing-key secrets', () => {
  it('take durations with units and default to ES256 and one minute of clock skew', () => {
    const parsed = parseJwtSigningSecret('jwt', JSON.stringify(settings));
    expect(parsed).toMatchObject({
      alg: 'ES256',
      jwks: { maxAge: 300_000, cooldown: 30_000 },
      tokens: { maxLifetime: 3_600_000, clockSkew: 60_000 },
      keys: {},
    });
    expect(problemsOf({ ...settings, tokens: { maxLifetime: '3600' } })).toEqual([
      'tokens.maxLifetime: "3600" has no unit (examples: 90s, 15m, 1h30m, 30d)',
    ]);
  });

  it('refuse a pre-publication shorter than the JWKS cache lifetime plus the refetch cooldown, naming the numbers', () => {
    expect(problemsOf({ ...settings, prePublication: '2m' })).toEqual([
      'prePublication: 2m is shorter than jwks.maxAge 5m + jwks.cooldown 30s = 5m30s: a verifier that cached the JWKS just before the key was published would refuse tokens signed with it',
    ]);
    expect(problemsOf({ ...settings, prePublication: '6m' })).toEqual([]);
  });

  it('refuse an unknown algorithm and a private key without its private part', async () => {
    const key = await generateSigningKey('ES256');
    expect(problemsOf({ ...settings, alg: 'HS256' })[0]).toMatch(/^alg: /);
    expect(problemsOf({ ...settings, keys: { current: { ...key, privateJwk: key.publicJwk } } })).toEqual([
      'keys.current.privateJwk: must be a private key (with d)',
    ]);
  });
});

describe('signing keys', () => {
  it.each(JWT_ALGORITHMS)(
    '%s: made by jose, kid is the thumbprint, the published half has no private field',
    async (alg) => {
      const key = await generateSigningKey(alg);
      expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const published = publicPart(key.publicJwk);
      for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(published).not.toHaveProperty(field);
      expect(published).toMatchObject({ kid: key.kid, alg, use: 'sig' });

      const store = new InMemorySecretStore();
      store.create('jwt', JSON.stringify({ ...settings, alg, keys: { current: key } }));
      const signer = new JwtSigner({ cache: new SecretCache({ store }), secretId: 'jwt', issuer: 'rotor-test' });
      const token = await signer.sign({ sub: 'u1' }, { expiresInMs: 60_000 });
      const verifier = new JwtVerifier({ jwks: { keys: [published] }, issuer: 'rotor-test' });
      expect(await verifier.verify(token)).toMatchObject({
        ok: true,
        kid: key.kid,
        payload: { sub: 'u1', iss: 'rotor-test' },
      });
      await expect(signer.sign({}, { expiresInMs: 3_600_001 })).rejects.toThrow(
        /not within 1 to 3600000 \(tokens.maxLifetime of jwt\)/,
      );
    },
  );
});

describe('JwtVerifier bounds what a token may claim', () => {
  it('refuses a token without exp, and one with exp further out than maxTokenLifetimeMs', async () => {
    const key = await generateSigningKey('ES256');
    const { importJWK } = await import('jose');
    const privateKey = await importJWK(key.privateJwk, 'ES256');
    const sign = (build: (jwt: SignJWT) => SignJWT) =>
      build(new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuedAt()).sign(
        privateKey,
      );
    const verifier = new JwtVerifier({ jwks: { keys: [publicPart(key.publicJwk)] } });
    expect(await verifier.verify(await sign((j) => j))).toEqual({ ok: false, reason: 'claim-mismatch' });
    expect(await verifier.verify(await sign((j) => j.setExpirationTime('3650d')))).toEqual({
      ok: false,
      reason: 'lifetime',
    });
    expect((await verifier.verify(await sign((j) => j.setExpirationTime('2h')))).ok).toBe(true);
    // maxTokenAgeMs: a token issued longer ago than that is refused, whatever its exp says.
    const aged = new JwtVerifier({ jwks: { keys: [publicPart(key.publicJwk)] }, maxTokenAgeMs: 3600_000 });
    const issuedAgo = (s: number) =>
      new SignJWT({ sub: 'u' })
        .setProtectedHeader({ alg: 'ES256', kid: key.kid })
        .setIssuedAt(Math.floor(Date.now() / 1000) - s)
        .setExpirationTime('1h')
        .sign(privateKey);
    expect((await aged.verify(await issuedAgo(60))).ok).toBe(true);
    expect((await aged.verify(await issuedAgo(2 * 3600))).ok).toBe(false);
    expect((await verifier.verify(await issuedAgo(2 * 3600))).ok).toBe(true);
    const strict = new JwtVerifier({ jwks: { keys: [publicPart(key.publicJwk)] }, maxTokenLifetimeMs: 3600_000 });
    expect(await strict.verify(await sign((j) => j.setExpirationTime('2h')))).toEqual({
      ok: false,
      reason: 'lifetime',
    });
  });
});

/** A remote JWKS behind a fake fetch the test controls, and a clock it moves. */
async function remote(options: { maxAgeS?: number; cooldownMs?: number; maxStaleMs?: number } = {}) {
  const key = await generateSigningKey('ES256');
  let now = Date.now();
  let down = false;
  let published = true;
  let fetches = 0;
  const fakeFetch = (async () => {
    fetches++;
    if (down) throw new TypeError('fetch failed');
    return new Response(JSON.stringify({ keys: published ? [publicPart(key.publicJwk)] : [] }), {
      headers: { 'cache-control': `max-age=${options.maxAgeS ?? 60}` },
    });
  }) as unknown as typeof fetch;
  const verifier = new JwtVerifier({
    jwks: {
      url: 'https://auth.example/jwks',
      cooldownMs: options.cooldownMs ?? 30_000,
      maxStaleMs: options.maxStaleMs ?? 120_000,
    },
    fetch: fakeFetch,
    now: () => now,
  });
  const { privateKey } = await generateKeyPair('ES256');
  const stranger = (kid: string) =>
    new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setIssuedAt().setExpirationTime('2h').sign(privateKey);
  const store = new InMemorySecretStore();
  store.create('jwt', JSON.stringify({ ...settings, tokens: { maxLifetime: '2h' }, keys: { current: key } }));
  const signer = new JwtSigner({ cache: new SecretCache({ store }), secretId: 'jwt' });
  return {
    verifier,
    stranger,
    signer,
    fetches: () => fetches,
    advance: (ms: number) => (now += ms),
    setDown: (v: boolean) => (down = v),
    unpublish: () => (published = false),
  };
}

describe('JwtVerifier with a remote JWKS', () => {
  it('fetches again after maxCacheMs whatever max-age says: a key removed from the JWKS stops verifying', async () => {
    const { verifier, signer, fetches, advance, unpublish } = await remote({ maxAgeS: 365 * 24 * 3600 });
    const token = await signer.sign({}, { expiresInMs: 3_600_000 });
    expect((await verifier.verify(token)).ok).toBe(true);
    unpublish(); // the key leaves the JWKS; the JWKS said max-age of a year
    advance(14 * 60_000);
    expect((await verifier.verify(token)).ok).toBe(true);
    expect(fetches()).toBe(1);
    advance(2 * 60_000); // past the default maxCacheMs (15 min): fetched again, and the key is gone
    expect((await verifier.verify(token)).ok).toBe(false);
    expect(fetches()).toBe(2);
  });

  it('a flood of unknown kids costs at most one fetch per cooldown', async () => {
    const { verifier, stranger, signer, fetches, advance } = await remote({ cooldownMs: 30_000 });
    expect((await verifier.verify(await signer.sign())).ok).toBe(true);
    expect(fetches()).toBe(1);
    advance(30_000);
    const flood = await Promise.all(Array.from({ length: 200 }, (_, i) => stranger(`made-up-${i}`)));
    const verdicts = await Promise.all(flood.map((t) => verifier.verify(t)));
    expect(verdicts.every((v) => !v.ok && v.reason === 'unknown-kid')).toBe(true);
    expect(fetches()).toBe(2);
    advance(29_000);
    await Promise.all(flood.map((t) => verifier.verify(t)));
    expect(fetches()).toBe(2);
    advance(1_000);
    await Promise.all(flood.map((t) => verifier.verify(t)));
    expect(fetches()).toBe(3);
  });

  it('keeps verifying through a JWKS outage for max-age plus the stale bound, then says the JWKS is unavailable', async () => {
    const { verifier, signer, advance, setDown, fetches } = await remote({
      maxAgeS: 60,
      cooldownMs: 10_000,
      maxStaleMs: 120_000,
    });
    const token = await signer.sign();
    expect((await verifier.verify(token)).ok).toBe(true);
    setDown(true);
    advance(60_000 + 119_000);
    expect((await verifier.verify(token)).ok).toBe(true);
    expect(fetches()).toBe(2);
    advance(2_000);
    await expect(verifier.verify(token)).rejects.toBeInstanceOf(JwksUnavailableError);
    setDown(false);
    advance(10_000);
    expect((await verifier.verify(token)).ok).toBe(true);
  });

  it('does not retry a failed first fetch before the cooldown, and joins a fetch in flight', async () => {
    const { verifier, signer, advance, setDown, fetches } = await remote({ cooldownMs: 10_000 });
    const token = await signer.sign();
    setDown(true);
    await expect(verifier.verify(token)).rejects.toBeInstanceOf(JwksUnavailableError);
    await expect(verifier.verify(token)).rejects.toThrow(/no JWKS yet, and the last fetch failed/);
    expect(fetches()).toBe(1);
    setDown(false);
    advance(10_000);
    const verdicts = await Promise.all(Array.from({ length: 20 }, () => verifier.verify(token)));
    expect(verdicts.every((v) => v.ok)).toBe(true);
    expect(fetches()).toBe(2);
  });

  it('refuses a JWKS larger than 256 KiB (declared or streamed) or with more than 100 keys, reading no more of it', async () => {
    const key = await generateSigningKey('ES256');
    const store = new InMemorySecretStore();
    store.create('jwt', JSON.stringify({ ...settings, tokens: { maxLifetime: '2h' }, keys: { current: key } }));
    const token = await new JwtSigner({ cache: new SecretCache({ store }), secretId: 'jwt' }).sign();
    const keys = (n: number) =>
      JSON.stringify({
        keys: Array.from({ length: n }, (_, i) => ({
          ...publicPart(key.publicJwk),
          ...(i > 0 ? { kid: `other-${i}` } : {}),
        })),
      });
    let pulled = 0;
    const endless = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(64 * 1024).fill(32)); // spaces, forever
        },
      });
    const answers: Array<[string, () => Response, RegExp]> = [
      [
        'declared',
        () => new Response(keys(1), { headers: { 'content-length': String(10 * 1024 * 1024) } }),
        /larger than 256 KiB/,
      ],
      ['streamed', () => new Response(endless()), /larger than 256 KiB/],
      ['101 keys', () => new Response(keys(101)), /answered 101 keys; at most 100/],
    ];
    for (const [what, answer, reason] of answers) {
      const verifier = new JwtVerifier({
        jwks: { url: 'https://auth.example/jwks' },
        fetch: (async () => answer()) as unknown as typeof fetch,
      });
      const error = await verifier.verify(token).catch((e: unknown) => e);
      expect(error, what).toBeInstanceOf(JwksUnavailableError);
      expect((error as Error).message, what).toMatch(reason);
    }
    expect(pulled).toBeLessThanOrEqual(6); // 256 KiB in 64 KiB chunks, and no more
    const fine = new JwtVerifier({
      jwks: { url: 'https://auth.example/jwks' },
      fetch: (async () => new Response(keys(100))) as unknown as typeof fetch,
    });
    expect((await fine.verify(token)).ok).toBe(true);
  });

  it('refuses tampered, expired and algorithm-confused tokens with their reason', async () => {
    const { verifier, signer, advance } = await remote();
    const token = await signer.sign({ sub: 'a' }, { expiresInMs: 60_000 });
    const [h, p, s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', exp: 9e9 })).toString('base64url')}.${s}`;
    expect(await verifier.verify(forged)).toEqual({ ok: false, reason: 'bad-signature' });
    expect(await verifier.verify(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`)).toEqual({
      ok: false,
      reason: 'algorithm',
    });
    expect(await verifier.verify('not a token')).toEqual({ ok: false, reason: 'malformed' });
    advance(60_000 + 61_000);
    expect(await verifier.verify(token)).toEqual({ ok: false, reason: 'expired' });
  });
});
