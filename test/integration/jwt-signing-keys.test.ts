import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateKeyPair, SignJWT, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  jwksHandler,
  JwksUnavailableError,
  JwtSigner,
  JwtVerifier,
  SecretCache,
  type JwtVerdict,
} from 'rotor-consumers';
import { generateSigningKey, JWKS_DDL, publicPart, type SigningKey } from 'rotor-consumers/credentials';
import { runCli } from '../helpers/cli';
import { uniqueName, until } from '../helpers/env';
import { expectNoPasswords, recordHistories } from '../helpers/hygiene';
import { useRegistryDatabase } from '../helpers/registry';
import { rotateOnSchedule, useWorkerRig } from '../helpers/rig';
import { createSecret, labels, store, waitForStatus } from '../helpers/stack';

/**
 * JWT signing keys on the real stack: key sets in Secrets Manager, public keys in a PostgreSQL JWKS table that
 * rotor's jwksHandler serves over HTTP, a signer following AWSCURRENT and a verifier caching the JWKS as the
 * publisher's Cache-Control says, rotated by a `rotor worker`.
 */
const rig = useWorkerRig('it-jwt');
/** Every private key part and password the tests see, for the hygiene check. */
const values = new Set<string>();
const outputs: string[] = [];
const registry = useRegistryDatabase('jwks', values);
/** maxAge 3s + cooldown 6s: a new key waits 9s before it signs; tokens live 4s + 1s skew: grace must be 5s or more. */
const MAX_AGE_MS = 3000;
const COOLDOWN_MS = 6000;
const timings = { jwks: { maxAge: '3s', cooldown: '6s' }, tokens: { maxLifetime: '4s', clockSkew: '1s' } };

beforeAll(async () => {
  // Created ahead, as an operator may: the tests publish a team's existing keys before rotor adopts them.
  await registry.asAdmin(JWKS_DDL);
});

const remember = (key: SigningKey | undefined) => key && values.add(String(key.privateJwk.d));

/** Adds the private parts of every version of `secretId` to the hygiene set. */
async function rememberKeys(secretId: string): Promise<void> {
  for (const v of (await store.describe(secretId)).versions) {
    const { keys } = JSON.parse((await store.getByVersion(secretId, v.versionId))!.value) as {
      keys?: Record<string, SigningKey>;
    };
    for (const key of Object.values(keys ?? {})) remember(key);
  }
}

/**
 * A team's existing signing key set, adopted by rotor: its keys already published (an hour ago) in the JWKS table.
 * Without `next`, the first rotation's signing key is new, and must wait to be known before it signs.
 */
async function adoptedKeySet(
  marker: string,
  roles: ('current' | 'next')[],
  extra: object = {},
): Promise<{ secretId: string; service: string; keys: Record<string, SigningKey> }> {
  const service = uniqueName(marker)
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-');
  const keys: Record<string, SigningKey> = {};
  for (const role of roles) {
    const key = await generateSigningKey('ES256');
    remember(key);
    keys[role] = key;
    await registry.asAdmin(
      "INSERT INTO rotor_jwks (service, kid, jwk, published_at) VALUES ($1, $2, $3, now() - interval '1 hour')",
      [service, key.kid, JSON.stringify(publicPart(key.publicJwk))],
    );
  }
  const secretId = uniqueName(`it/jwt-${marker}`);
  await createSecret(secretId, {
    engine: 'jwt-signing-key',
    service,
    registry: registry.registryId,
    ...timings,
    keys,
    ...extra,
  });
  return { secretId, service, keys };
}

/** rotor's JWKS publisher for `service` on a loopback port, counting requests. */
async function publisher(service: string, options: { jitter?: number } = {}) {
  const handle = jwksHandler({
    service,
    query: (sql, params) => registry.reader.query(sql, params),
    maxAgeMs: MAX_AGE_MS,
    jitter: options.jitter ?? 0,
  });
  let requests = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++;
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  return { url, requests: () => requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const signerFor = (secretId: string) =>
  new JwtSigner({ cache: new SecretCache({ store, refreshIntervalMs: 100, jitter: 0 }), secretId });
const verifierFor = (url: string, options: { cooldownMs?: number; maxStaleMs?: number } = {}) =>
  new JwtVerifier({
    jwks: { url, cooldownMs: options.cooldownMs ?? COOLDOWN_MS, maxStaleMs: options.maxStaleMs ?? 60_000 },
    clockToleranceMs: 1000,
  });

/** An issuer and a relying party: sign a token, verify it, every 25 ms; verdicts counted by kid and reason. */
function traffic(signer: JwtSigner, verifier: JwtVerifier) {
  const served = new Map<string, number>();
  const refused = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const verdict: JwtVerdict = await verifier.verify(await signer.sign());
      const counts = verdict.ok ? served : refused;
      const label = verdict.ok ? verdict.kid : verdict.reason;
      counts.set(label, (counts.get(label) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    served,
    refused,
    async stop() {
      running = false;
      await loop;
      return { served: Object.fromEntries(served), refused: Object.fromEntries(refused) };
    },
  };
}

const publishedKids = async (url: string) =>
  ((await (await fetch(url)).json()) as { keys: JWK[] }).keys.map((k) => k.kid);

describe('JWT signing keys rotated by rotor, published as a JWKS', () => {
  it('a verifier that cached the JWKS just before the rotation sees 0 failures: the new key waits max-age + cooldown before it signs', async () => {
    const { secretId, service, keys } = await adoptedKeySet('prepub', ['current']);
    const jwks = await publisher(service);
    const verifier = verifierFor(jwks.url);
    const load = traffic(signerFor(secretId), verifier);
    try {
      await until(
        'the verifier to have cached the JWKS',
        () => (verifier.fetches === 1 && load.served.size > 0 ? true : undefined),
        5000,
      );
      const before = await signerFor(secretId).sign({ sub: 'signed-just-before' });
      await rig.rotor.rotate(secretId, { graceMs: 6000 });
      const holding = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'publishing');
      expect(holding.holdUntil).toBeDefined();
      expect(Date.parse(holding.holdUntil!) - Date.now()).toBeGreaterThan(MAX_AGE_MS);
      expect(await verifier.verify(before)).toMatchObject({ ok: true, kid: keys.current!.kid });
      // A token signed with the old key right before finish verifies until it expires (grace outlives it).
      await new Promise((r) => setTimeout(r, Date.parse(holding.holdUntil!) - Date.now() - 500));
      const last = await signerFor(secretId).sign({ sub: 'signed-right-before-finish' });
      const expiresAt =
        (JSON.parse(Buffer.from(last.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
      await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
      expect(await verifier.verify(last)).toMatchObject({ ok: true, kid: keys.current!.kid });
      await new Promise((r) => setTimeout(r, expiresAt - Date.now() - 700));
      expect((await rig.rotor.status(secretId))?.phase).toBe('grace');
      expect(await verifierFor(jwks.url).verify(last)).toMatchObject({ ok: true, kid: keys.current!.kid });
      const outcome = await rig.rotor.wait(secretId);
      expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
      // Recorded now, while the rotation that waited is the newest run: replay covers the publishing wait.
      await recordHistories(rig.rotor.client, rig.taskQueue, ['it/jwt-prepub']);
      const { keys: after } = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as {
        keys: Record<string, SigningKey>;
      };
      expect(after.previous!.kid).toBe(keys.current!.kid);
      // Retired: the previous key is no longer published; current and next are.
      expect((await publishedKids(jwks.url)).sort()).toEqual([after.current!.kid, after.next!.kid].sort());
      await until(
        'tokens signed with the new key',
        () => (load.served.get(after.current!.kid) ?? 0) > 20 || undefined,
        10_000,
      );

      // The next rotation: its signing key was published as `next` a rotation ago, so no wait.
      await rig.rotor.rotate(secretId, { graceMs: 6000 });
      const second = await rig.rotor.wait(secretId);
      expect(second.outcome === 'failed' ? second.message : second.outcome).toBe('completed');
      if (second.outcome === 'completed') expect(second.result.status.holdUntil).toBeUndefined();
      await until(
        'tokens signed with the second new key',
        () => (load.served.get(after.next!.kid) ?? 0) > 10 || undefined,
        10_000,
      );
      const result = await load.stop();
      expect(result.refused).toEqual({});
      expect(Object.keys(result.served)).toEqual([keys.current!.kid, after.current!.kid, after.next!.kid]);
    } finally {
      await load.stop();
      await jwks.close();
      await rememberKeys(secretId);
    }
  });

  it('control: without the wait, the same verifier refuses tokens signed with the new key until its cooldown passes', async () => {
    const { secretId, service, keys } = await adoptedKeySet('no-hold', ['current']);
    const jwks = await publisher(service);
    const verifier = verifierFor(jwks.url);
    const load = traffic(signerFor(secretId), verifier);
    try {
      await until(
        'the verifier to have cached the JWKS',
        () => (verifier.fetches === 1 && load.served.size > 0 ? true : undefined),
        5000,
      );
      await rig.rotor.rotate(secretId, { graceMs: 6000 });
      const outcome = await rig.rotor.wait(secretId);
      expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
      const { keys: after } = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as {
        keys: Record<string, SigningKey>;
      };
      await until(
        'the verifier to learn the new key',
        () => (load.served.get(after.current!.kid) ?? 0) > 5 || undefined,
        15_000,
      );
      const result = await load.stop();
      expect(result.refused['unknown-kid']).toBeGreaterThan(0);
      expect(Object.keys(result.refused)).toEqual(['unknown-kid']);
      expect(result.served[keys.current!.kid]).toBeGreaterThan(0);
    } finally {
      await load.stop();
      await jwks.close();
      await rememberKeys(secretId);
    }
  });

  it('rolls back during grace: the old key signs again, nothing a valid token needs is unpublished', async () => {
    const { secretId, service, keys } = await adoptedKeySet('rollback', ['current', 'next']);
    const jwks = await publisher(service);
    try {
      await rig.rotor.rotate(secretId, { graceMs: 60_000 });
      await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
      const { keys: pending } = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as {
        keys: Record<string, SigningKey>;
      };
      expect(pending.current!.kid).toBe(keys.next!.kid);
      const duringGrace = await signerFor(secretId).sign();
      await rig.rotor.rollback(secretId, 'the new key breaks a partner', 'it');
      expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
      const signer = signerFor(secretId);
      expect(await signer.kid()).toBe(keys.current!.kid);
      const verifier = verifierFor(jwks.url);
      expect(await verifier.verify(duringGrace)).toMatchObject({ ok: true, kid: keys.next!.kid });
      expect(await verifier.verify(await signer.sign())).toMatchObject({ ok: true, kid: keys.current!.kid });
      // The new `next` never signed: it is the only key that went.
      expect((await publishedKids(jwks.url)).sort()).toEqual([keys.current!.kid, keys.next!.kid].sort());
    } finally {
      await jwks.close();
      await rememberKeys(secretId);
    }
  });

  it('refuses a grace shorter than token lifetime + skew and a pre-publication shorter than max-age + cooldown, changing nothing', async () => {
    const short = await adoptedKeySet('short-grace', ['current']);
    await rig.rotor.rotate(short.secretId, { graceMs: 2000 });
    const refused = await rig.rotor.wait(short.secretId);
    expect(refused.outcome).toBe('failed');
    if (refused.outcome === 'failed') {
      expect(refused.message).toContain(
        'grace 2.0s is shorter than tokens.maxLifetime 4.0s + tokens.clockSkew 1.0s = 5.0s',
      );
    }
    expect((await labels(short.secretId)).versions).toBe(1);
    const cli = await runCli(rig.taskQueue, ['rotate', short.secretId, '--grace', '3s', '--wait'], {}, outputs);
    expect(cli.code).not.toBe(0);
    expect(cli.stdout + cli.stderr).toContain('grace 3.0s is shorter than tokens.maxLifetime 4.0s');
    // rotor check with the grace rotor.yaml gives the secret says the same before any rotation runs.
    const dir = mkdtempSync(path.join(tmpdir(), 'rotor-jwt-'));
    writeFileSync(
      path.join(dir, 'rotor.yaml'),
      `secrets:\n  - id: ${short.secretId}\n    grace: 4s\n    schedule:\n      every: 30d\n`,
    );
    const check = await runCli(rig.taskQueue, ['check', '-f', path.join(dir, 'rotor.yaml')], {}, outputs);
    expect(check.code).toBe(6);
    expect(check.stdout).toContain('grace 4.0s is shorter than tokens.maxLifetime 4.0s + tokens.clockSkew 1.0s = 5.0s');

    const early = await adoptedKeySet('early', ['current'], { prePublication: '2s' });
    await rig.rotor.rotate(early.secretId, { graceMs: 6000 });
    const outcome = await rig.rotor.wait(early.secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed')
      expect(outcome.message).toContain(
        'prePublication: 2.0s is shorter than jwks.maxAge 3.0s + jwks.cooldown 6.0s = 9.0s',
      );
    expect((await labels(early.secretId)).versions).toBe(1);
  });

  it('rotates on a schedule from rotor.yaml', async () => {
    const { secretId, service, keys } = await adoptedKeySet('scheduled', ['current', 'next']);
    // Another issuer's key under the same service: retire must leave it published.
    const other = await generateSigningKey('ES256');
    await registry.asAdmin('INSERT INTO rotor_jwks (service, kid, jwk) VALUES ($1, $2, $3)', [
      service,
      other.kid,
      JSON.stringify(publicPart(other.publicJwk)),
    ]);
    try {
      const status = await rotateOnSchedule(rig, secretId, '6s');
      const made = JSON.parse((await store.getByVersion(secretId, status.versions.current!))!.value) as {
        keys: Record<string, SigningKey>;
      };
      expect(made.keys.current!.kid).toBe(keys.next!.kid);
      const { rows } = await registry.reader.query<{ kid: string }>('SELECT kid FROM rotor_jwks WHERE service = $1', [
        service,
      ]);
      expect(rows.map((r) => r.kid).sort()).toEqual([made.keys.current!.kid, made.keys.next!.kid, other.kid].sort());
    } finally {
      await rememberKeys(secretId);
    }
  });

  it('the publisher: public keys only, Cache-Control max-age jittered down never up, ETag and 304', async () => {
    const { service, keys } = await adoptedKeySet('publisher', ['current', 'next']);
    const jwks = await publisher(service, { jitter: 0.5 });
    try {
      const first = await fetch(jwks.url);
      const body = (await first.json()) as { keys: JWK[] };
      expect(first.headers.get('content-type')).toBe('application/jwk-set+json');
      expect(body.keys.map((k) => k.kid).sort()).toEqual([keys.current!.kid, keys.next!.kid].sort());
      for (const key of body.keys)
        expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      const ages = new Set<number>();
      for (let i = 0; i < 20; i++)
        ages.add(Number(/max-age=(\d+)/.exec((await fetch(jwks.url)).headers.get('cache-control')!)![1]));
      expect([...ages].every((a) => a >= 1 && a <= 3)).toBe(true);
      expect(ages.size).toBeGreaterThan(1);
      const etag = first.headers.get('etag')!;
      expect((await fetch(jwks.url, { headers: { 'if-none-match': etag } })).status).toBe(304);
    } finally {
      await jwks.close();
    }
  });

  it('a JWKS outage longer than its cache lifetime: valid tokens keep verifying within the stale bound, then verification says unavailable', async () => {
    const { secretId, service } = await adoptedKeySet('outage', ['current'], {
      tokens: { maxLifetime: '1h', clockSkew: '1m' },
    });
    const jwks = await publisher(service);
    const verifier = verifierFor(jwks.url, { cooldownMs: 500, maxStaleMs: 3000 });
    const token = await signerFor(secretId).sign();
    expect((await verifier.verify(token)).ok).toBe(true);
    await jwks.close();
    await new Promise((r) => setTimeout(r, MAX_AGE_MS + 1000));
    expect((await verifier.verify(token)).ok).toBe(true);
    await new Promise((r) => setTimeout(r, 2500));
    await expect(verifier.verify(token)).rejects.toBeInstanceOf(JwksUnavailableError);
  });

  it('a flood of unknown kids costs at most one JWKS fetch per cooldown', async () => {
    const { secretId, service } = await adoptedKeySet('flood', ['current'], {
      tokens: { maxLifetime: '1h', clockSkew: '1m' },
    });
    const jwks = await publisher(service);
    try {
      const verifier = verifierFor(jwks.url, { cooldownMs: 1000 });
      expect((await verifier.verify(await signerFor(secretId).sign())).ok).toBe(true);
      expect(jwks.requests()).toBe(1);
      const { privateKey } = await generateKeyPair('ES256');
      const flood = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          new SignJWT({})
            .setProtectedHeader({ alg: 'ES256', kid: `made-up-${i}` })
            .setIssuedAt()
            .setExpirationTime('1h')
            .sign(privateKey),
        ),
      );
      const first = await Promise.all(flood.map((t) => verifier.verify(t)));
      expect(first.every((v) => !v.ok && v.reason === 'unknown-kid')).toBe(true);
      expect(jwks.requests()).toBe(1);
      await new Promise((r) => setTimeout(r, 1100));
      await Promise.all(flood.map((t) => verifier.verify(t)));
      await Promise.all(flood.map((t) => verifier.verify(t)));
      expect(jwks.requests()).toBe(2);
    } finally {
      await jwks.close();
    }
  });

  it('leaves no private key or password in histories, worker logs or CLI output', async () => {
    expect(values.size).toBeGreaterThanOrEqual(10);
    await recordHistories(rig.rotor.client, rig.taskQueue, ['it/jwt-prepub', 'it/jwt-rollback']);
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, values, 'it/jwt-', outputs);
  });
});
