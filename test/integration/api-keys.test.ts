import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyVerifier, apiKeyMiddleware, generateApiKey, SecretCache, type RegistryQuery } from 'rotor-consumers';
import { runCli } from '../helpers/cli';
import { uniqueName, until } from '../helpers/env';
import { holdDirectory } from '../helpers/faulty-rotators';
import { expectNoPasswords, recordHistories } from '../helpers/hygiene';
import { rotateOnSchedule, rotateToCompletion, useWorkerRig } from '../helpers/rig';
import { useRegistryDatabase } from '../helpers/registry';
import { createSecret, labels, store, waitForStatus } from '../helpers/stack';

/**
 * API keys on the real stack: keys in Secrets Manager, their HMAC digests in a PostgreSQL registry, verified by
 * ApiKeyVerifier instances reading that registry through a read-only role, rotated by a `rotor worker`.
 */
const holdDir = holdDirectory();
const rig = useWorkerRig('it-apikey', { holdDir });
/** Every key and pepper the tests see, for the hygiene check. */
const values = new Set<string>();
const outputs: string[] = [];
const registry = useRegistryDatabase('apikeys', values);
let pepperId = '';

beforeAll(async () => {
  const pepper = randomBytes(32).toString('base64');
  values.add(pepper);
  pepperId = uniqueName('it/apikey-pepper');
  await createSecret(pepperId, { current: 'p1', peppers: { p1: pepper } });
});

/**
 * An API key secret: with no key yet (its first rotation makes one), or, with `adopt`, holding a key made before
 * rotor managed it (not yet in the registry: the first `set` registers it beside the new one).
 */
async function keySecret(
  marker: string,
  adopt = false,
): Promise<{ secretId: string; service: string; versionId: string; adopted?: string }> {
  const secretId = uniqueName(`it/apikey-${marker}`);
  const service = uniqueName(marker)
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-');
  const key = adopt ? generateApiKey('itk') : undefined;
  if (key) values.add(key.key);
  const versionId = await createSecret(secretId, {
    engine: 'api-key',
    service,
    prefix: 'itk',
    registry: registry.registryId,
    pepper: pepperId,
    ...key,
  });
  return { secretId, service, versionId, ...(key ? { adopted: key.key } : {}) };
}

/** The key of the version with `stage`, remembered for the hygiene check. */
async function keyAt(
  secretId: string,
  stage: 'AWSCURRENT' | 'AWSPREVIOUS' | 'AWSPENDING',
): Promise<{ keyId: string; key: string; versionId: string }> {
  const v = (await store.getByStage(secretId, stage))!;
  const { keyId, key } = JSON.parse(v.value) as { keyId: string; key: string };
  values.add(key);
  return { keyId, key, versionId: v.versionId };
}

/** A verifier instance as a service runs it: the read-only registry role, the pepper through a SecretCache. */
function verifier(
  service: string,
  options: { cacheTtlMs?: number; now?: () => number; query?: RegistryQuery } = {},
): ApiKeyVerifier {
  return new ApiKeyVerifier({
    service,
    prefix: 'itk',
    query: options.query ?? ((sql, params) => registry.reader.query(sql, params)),
    pepper: { cache: new SecretCache({ store, refreshIntervalMs: 1000 }), secretId: pepperId },
    cacheTtlMs: options.cacheTtlMs ?? 200,
    ...(options.now ? { now: options.now } : {}),
  });
}

const verifies = async (v: ApiKeyVerifier, key: string) => (await v.verify(key)).ok;

/** An HTTP service behind apiKeyMiddleware. */
async function guardedServer(v: ApiKeyVerifier): Promise<{ server: Server; url: string }> {
  const guard = apiKeyMiddleware(v);
  const server = createServer((req, res) => guard(req, res, () => res.writeHead(200).end('ok')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

describe('API keys rotated by rotor, verified from a PostgreSQL registry of digests', () => {
  it('a client holding the old key keeps working through grace and is refused after; the new key works from finish', async () => {
    const { secretId, service } = await keySecret('overlap');
    expect((await rig.rotor.check(secretId)).ok).toBe(true);
    await rotateToCompletion(rig, secretId, values);
    const old = await keyAt(secretId, 'AWSCURRENT');
    const { server, url } = await guardedServer(verifier(service));
    const call = async (key: string) => (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).status;
    // A client that reads its key through SecretCache, and one that kept the key it read at start.
    const cache = new SecretCache({ store, refreshIntervalMs: 100, jitter: 0 });
    const fresh = async () => (JSON.parse((await cache.get(secretId)).value) as { key: string }).key;
    try {
      expect(await call(old.key)).toBe(200);
      await rig.rotor.rotate(secretId, { graceMs: 4000 });
      const grace = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
      expect(grace.rotator).toBe('api-key');
      const next = await keyAt(secretId, 'AWSCURRENT');
      expect(next.keyId).not.toBe(old.keyId);
      expect(await call(next.key)).toBe(200);
      expect(await call(old.key)).toBe(200);
      await until(
        'the caching client to pick up the new key',
        async () => ((await fresh()) === next.key ? true : undefined),
        5000,
      );

      const outcome = await rig.rotor.wait(secretId);
      expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
      if (outcome.outcome === 'completed')
        expect(outcome.result.status.steps.find((s) => s.step === 'retire')?.outcome).toBe('previous-key-revoked');
      await until(
        'the revocation to pass the verifier cache',
        async () => ((await call(old.key)) === 401 ? true : undefined),
        5000,
      );
      expect(await call(await fresh())).toBe(200);
      expect(await labels(secretId)).toEqual({ current: next.versionId, previous: old.versionId, versions: 3 });
    } finally {
      server.close();
    }
  });

  it('two verifier instances see a leaked key revoked by rotate --grace 0s within their cache TTL', async () => {
    const { secretId, service } = await keySecret('leak');
    await rotateToCompletion(rig, secretId, values);
    const leaked = await keyAt(secretId, 'AWSCURRENT');
    let now = 1_000_000;
    const clock = () => now;
    const instances = [
      verifier(service, { cacheTtlMs: 30_000, now: clock }),
      verifier(service, { cacheTtlMs: 30_000, now: clock }),
    ];
    for (const v of instances) expect(await verifies(v, leaked.key)).toBe(true);

    const cli = await runCli(rig.taskQueue, ['rotate', secretId, '--grace', '0s', '--wait'], {}, outputs);
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    const current = await keyAt(secretId, 'AWSCURRENT');
    // The CLI names key ids at most, never a key.
    expect(cli.stdout).not.toContain(leaked.key);

    // Within the TTL an instance may still answer from its cache; past it, no instance accepts the leaked key.
    now += 29_000;
    for (const v of instances) expect(await verifies(v, leaked.key)).toBe(true);
    now += 1_001;
    for (const v of instances) expect(await v.verify(leaked.key)).toEqual({ ok: false, reason: 'unknown-key' });
    for (const v of instances) expect(await verifies(v, current.key)).toBe(true);
  });

  it('refuses mistyped, empty, huge and non-ASCII keys without a registry lookup; a made-up key costs one', async () => {
    const { secretId, service } = await keySecret('forged');
    await rotateToCompletion(rig, secretId, values);
    const { key } = await keyAt(secretId, 'AWSCURRENT');
    let lookups = 0;
    const v = verifier(service, { query: (sql, params) => (lookups++, registry.reader.query(sql, params)) });
    const typo = key.slice(0, 20) + (key[20] === 'A' ? 'B' : 'A') + key.slice(21);
    for (const presented of [
      typo,
      '',
      'itk_' + 'a'.repeat(5000),
      `itk_${'é'.repeat(48)}`,
      key.toUpperCase(),
      `${key} `,
    ]) {
      expect((await v.verify(presented)).ok).toBe(false);
    }
    expect(lookups).toBe(0);
    expect(await v.verify(generateApiKey('itk').key)).toEqual({ ok: false, reason: 'unknown-key' });
    expect(lookups).toBe(1);
    expect(await verifies(v, key)).toBe(true);
  });

  it('rolls back during grace: the old key is current again and verifies, the new one is revoked', async () => {
    const { secretId, service } = await keySecret('rollback');
    await rotateToCompletion(rig, secretId, values);
    const old = await keyAt(secretId, 'AWSCURRENT');
    await rig.rotor.rotate(secretId, { graceMs: 60_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const next = await keyAt(secretId, 'AWSCURRENT');
    await rig.rotor.rollback(secretId, 'clients of the new key are misconfigured', 'it');
    expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
    expect((await store.getByStage(secretId, 'AWSCURRENT'))!.versionId).toBe(old.versionId);
    const v = verifier(service);
    expect(await verifies(v, old.key)).toBe(true);
    expect(await v.verify(next.key)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('compensates a failed test step: the key registered by set is revoked, the adopted key still verifies', async () => {
    const { secretId, service, versionId, adopted } = await keySecret('fail-test', true);
    const v = verifier(service);
    expect(await v.verify(adopted)).toEqual({ ok: false, reason: 'unknown-key' });
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 1 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed')
      expect(outcome.message).toMatch(/failed at test: .*injected by the test rotator.*compensated/);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    const made = (await store.describe(secretId)).versions.find((x) => x.versionId !== versionId)!;
    const { key } = JSON.parse((await store.getByVersion(secretId, made.versionId))!.value) as { key: string };
    values.add(key);
    expect(await verifies(verifier(service), adopted!)).toBe(true);
    expect(await verifier(service).verify(key)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('compensates a first rotation (no key yet): the secret is as it was, the key set registered is revoked', async () => {
    const { secretId, service, versionId } = await keySecret('fail-test-first');
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 1 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed') expect(outcome.message).toMatch(/failed at test: .*compensated/);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    const made = (await store.describe(secretId)).versions.find((x) => x.versionId !== versionId)!;
    const { key } = JSON.parse((await store.getByVersion(secretId, made.versionId))!.value) as { key: string };
    values.add(key);
    expect(await verifier(service).verify(key)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('a worker killed with SIGKILL between set and test: a new worker finishes, one row per key', async () => {
    const { secretId, service, adopted } = await keySecret('hold-test-kill', true);
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await rig.killWhileHeld(secretId);
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
    const next = await keyAt(secretId, 'AWSCURRENT');
    const v = verifier(service);
    expect(await verifies(v, next.key)).toBe(true);
    expect(await v.verify(adopted)).toEqual({ ok: false, reason: 'unknown-key' });
    const { rows } = await registry.reader.query<{ key_id: string }>(
      'SELECT key_id FROM rotor_api_keys WHERE service = $1',
      [service],
    );
    expect(rows.map((r) => r.key_id)).toEqual([next.keyId]);
  });

  it('rotates on a schedule from rotor.yaml', async () => {
    const { secretId, service } = await keySecret('scheduled');
    await rotateOnSchedule(rig, secretId, '0s');
    expect(await verifies(verifier(service), (await keyAt(secretId, 'AWSCURRENT')).key)).toBe(true);
  });

  it('refuses a secret with a hostile service name before anything changes', async () => {
    const secretId = uniqueName('it/apikey-hostile');
    const versionId = await createSecret(secretId, {
      engine: 'api-key',
      service: "x'); DROP TABLE rotor_api_keys; --",
      prefix: 'itk',
      registry: registry.registryId,
      pepper: pepperId,
    });
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    if (outcome.outcome === 'failed') expect(outcome.message).toMatch(/service: must be 1 to 63 of a-z/);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
  });

  it('leaves no key, pepper or registry password in histories, worker logs or CLI output', async () => {
    expect(values.size).toBeGreaterThanOrEqual(12);
    await recordHistories(rig.rotor.client, rig.taskQueue, ['it/apikey-overlap', 'it/apikey-rollback']);
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, values, 'it/apikey-', outputs);
  });
});
