import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ApiKeyVerifier, JwtSigner, SecretCache } from 'rotor-consumers';
import { generateSigningKey, JWKS_DDL, publicPart, type SigningKey } from 'rotor-consumers/credentials';
import { describe, expect, it } from 'vitest';
import { strategySecrets, type Engine, type Mode } from '../helpers/backends';
import { stackEnv, uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword } from '../helpers/hygiene';
import { mysqlLogsIn } from '../helpers/mysql';
import { baoAdmin, baoWorkerConfig, kvPath } from '../helpers/openbao';
import { redisLogsIn, redisSecret } from '../helpers/redis';
import { useRegistryDatabase } from '../helpers/registry';
import { rotateToCompletion, useWorkerRig } from '../helpers/rig';
import { createSecret, idOn, labels, logsIn, store, waitForStatus } from '../helpers/stack';

/**
 * Every rotation kind end to end on OpenBao KV v2, through a `rotor worker` whose rotor.yaml declares the stack's
 * OpenBao as the store `bao`: the four database strategies, API keys, JWT signing keys and a team's own rotator
 * (the Redis ACL example), and a rollback. The rest of the integration suite runs on AWS Secrets Manager only: the
 * engine is the same code over the SecretStore contract, which both stores pass (openbao-store.test.ts).
 */
const configFile = baoWorkerConfig();
const env = () => ({ ROTOR_CONFIG: configFile });
const rig = useWorkerRig('it-bao', { env });
const redisRig = useWorkerRig('it-bao-redis', { main: 'examples/redis-acl/worker.ts', env });
const values = new Set<string>();
const registry = useRegistryDatabase('baokeys', values);
const bao = (name: string) => idOn('bao', uniqueName(name));

/** The secret's latest KV version, as `bao kv get` shows it to a reader that knows nothing of rotor. */
async function latestKv(secretId: string): Promise<Record<string, unknown>> {
  return (await baoAdmin('GET', `secret/data/${kvPath(secretId)}`)).data.data;
}

const valueAt = async (secretId: string, stage: 'AWSCURRENT' | 'AWSPREVIOUS') =>
  JSON.parse((await store.getByStage(secretId, stage))!.value) as Record<string, string>;

describe('rotations on OpenBao KV v2', () => {
  it('the four database strategies: the new login works, the old one does not, the labels moved', async () => {
    const secretFor = strategySecrets('bao:secret/it/bao', values);
    const strategies: [Engine, Mode][] = [
      ['postgres', 'single'],
      ['postgres', 'alternating'],
      ['mysql', 'single'],
      ['mysql', 'alternating'],
    ];
    const secrets = await Promise.all(strategies.map(([engine, mode]) => secretFor(engine, mode)));
    // rotor check, through the worker, on both stores: these on OpenBao, their masters' logins included.
    for (const secretId of secrets) expect((await rig.rotor.check(secretId)).ok).toBe(true);
    const missing = await rig.rotor.check(bao('it/bao-missing'));
    expect(missing.checks[0]).toMatchObject({ name: 'store', ok: false });
    expect(missing.checks[0]!.detail).toMatch(/not found|OpenBao/i);
    const before = await Promise.all(secrets.map((id) => valueAt(id, 'AWSCURRENT')));
    await Promise.all(secrets.map((id) => rotateToCompletion(rig, id, values)));
    for (const [i, [engine]] of strategies.entries()) {
      const secretId = secrets[i]!;
      const login = engine === 'postgres' ? logsIn : mysqlLogsIn;
      const after = await valueAt(secretId, 'AWSCURRENT');
      expect(await labels(secretId)).toMatchObject({ previous: '1', versions: 2 });
      expect(await login(after.username!, after.password!)).toBe(true);
      expect(await login(before[i]!.username!, before[i]!.password!)).toBe(false);
      // A reader of the latest KV version (`bao kv get`, an agent template) sees the current login too.
      expect(await latestKv(secretId)).toEqual(after);
    }
  }, 180_000);

  it('rolls back during grace: the previous version is current again and logs in; the new one does not', async () => {
    const [secretId] = [await strategySecrets('bao:secret/it/bao-rollback', values)('postgres', 'single')];
    const before = await valueAt(secretId!, 'AWSCURRENT');
    await rig.rotor.rotate(secretId!, { graceMs: 60_000 });
    await waitForStatus(rig.rotor, secretId!, (s) => s.phase === 'grace');
    const next = await valueAt(secretId!, 'AWSCURRENT');
    await rig.rotor.rollback(secretId!, 'the new password breaks the reporting job', 'it');
    expect((await rig.rotor.wait(secretId!)).outcome).toBe('rolled-back');
    expect(await labels(secretId!)).toMatchObject({ current: '1' });
    expect(await logsIn(before.username!, before.password!)).toBe(true);
    expect(await logsIn(next.username!, next.password!)).toBe(false);
  }, 120_000);

  it('API keys: the new key verifies, the old one is refused after grace', async () => {
    const pepper = randomBytes(32).toString('base64');
    values.add(pepper);
    const pepperId = bao('it/bao-pepper');
    await createSecret(pepperId, { current: 'p1', peppers: { p1: pepper } });
    const service = uniqueName('baokey')
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-');
    const secretId = bao('it/bao-apikey');
    await createSecret(secretId, {
      engine: 'api-key',
      service,
      prefix: 'itk',
      registry: registry.registryId,
      pepper: pepperId,
    });
    const verifier = new ApiKeyVerifier({
      service,
      prefix: 'itk',
      query: (sql, params) => registry.reader.query(sql, params),
      pepper: { cache: new SecretCache({ store, refreshIntervalMs: 1000 }), secretId: pepperId },
      cacheTtlMs: 0,
    });
    await rotateToCompletion(rig, secretId, values);
    const first = (await valueAt(secretId, 'AWSCURRENT')).key!;
    values.add(first);
    expect((await verifier.verify(first)).ok).toBe(true);
    await rotateToCompletion(rig, secretId, values);
    const second = (await valueAt(secretId, 'AWSCURRENT')).key!;
    values.add(second);
    expect((await verifier.verify(second)).ok).toBe(true);
    expect((await verifier.verify(first)).ok).toBe(false);
  }, 120_000);

  it('JWT signing keys: the next key becomes current and signs, published in the JWKS table', async () => {
    await registry.asAdmin(JWKS_DDL);
    const service = uniqueName('baojwt')
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, '-');
    const keys: Record<string, SigningKey> = {};
    for (const role of ['current', 'next'] as const) {
      const key = await generateSigningKey('ES256');
      values.add(String(key.privateJwk.d));
      keys[role] = key;
      await registry.asAdmin(
        "INSERT INTO rotor_jwks (service, kid, jwk, published_at) VALUES ($1, $2, $3, now() - interval '1 hour')",
        [service, key.kid, JSON.stringify(publicPart(key.publicJwk))],
      );
    }
    const secretId = bao('it/bao-jwt');
    await createSecret(secretId, {
      engine: 'jwt-signing-key',
      service,
      registry: registry.registryId,
      jwks: { maxAge: '3s', cooldown: '6s' },
      tokens: { maxLifetime: '4s', clockSkew: '1s' },
      keys,
    });
    await rotateToCompletion(rig, secretId, values, 5000);
    const after = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as {
      keys: Record<string, SigningKey>;
    };
    for (const key of Object.values(after.keys)) values.add(String(key.privateJwk.d));
    expect(after.keys.current!.kid).toBe(keys.next!.kid);
    const signer = new JwtSigner({ cache: new SecretCache({ store, refreshIntervalMs: 100, jitter: 0 }), secretId });
    const token = await signer.sign();
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid).toBe(keys.next!.kid);
    const published = await registry.reader.query('SELECT kid FROM rotor_jwks WHERE service = $1', [service]);
    expect(published.rows.map((r: { kid: string }) => r.kid)).toContain(after.keys.next!.kid);
  }, 120_000);

  it("a team's own rotator (the Redis ACL example): the new password works, the old one does not", async () => {
    const admin = new URL(stackEnv('ROTOR_REDIS_ADMIN_URL'));
    const adminPassword = decodeURIComponent(admin.password);
    values.add(adminPassword);
    const masterId = bao('it/bao-redis-master');
    await createSecret(masterId, redisSecret('default', adminPassword));
    const username = uniqueName('bao-app');
    const password = newPassword(values);
    const redis = new Redis(admin.toString());
    await redis.call('ACL', 'SETUSER', username, 'on', `>${password}`, '~*', '+@all');
    redis.disconnect();
    const secretId = bao('it/bao-redis');
    await createSecret(secretId, redisSecret(username, password, { masterarn: masterId }));
    await rotateToCompletion(redisRig, secretId, values);
    const next = (await valueAt(secretId, 'AWSCURRENT')).password!;
    const auth = (pw: string) => redisLogsIn(username, pw);
    expect(await auth(next)).toBe(true);
    expect(await auth(password)).toBe(false);
    expect(await labels(secretId)).toMatchObject({ previous: '1', versions: 2 });
  }, 120_000);

  it('no value of any secret is in a history or a worker log', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, values, 'bao:secret/it/bao');
  });
});
