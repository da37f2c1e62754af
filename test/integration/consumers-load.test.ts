import { describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, createRotatingMysqlPool, createRotatingPgPool, SecretCache } from 'rotor-consumers';
import { AUTH_FAILURES, rotatingBackend, staticBackend, strategySecrets } from '../helpers/backends';
import { expectNoPasswords } from '../helpers/hygiene';
import { serveUnderLoad } from '../helpers/load-app';
import { rotateToCompletion, useWorkerRig } from '../helpers/rig';
import { BAO_MOUNT, baoStore, baoWorkerConfig } from '../helpers/openbao';
import { store } from '../helpers/stack';

// The worker knows both stores: plain ids on AWS Secrets Manager, bao: ids on the stack's OpenBao.
const configFile = baoWorkerConfig();
const rig = useWorkerRig('it-consumers-load', { env: () => ({ ROTOR_CONFIG: configFile }) });
const passwords = new Set<string>();
const ROTATIONS = 20;

const secrets = {
  aws: strategySecrets('consumers-load', passwords),
  bao: strategySecrets(`bao:${BAO_MOUNT}/it/consumers-load`, passwords),
};
/** The application's store: its own client of each, as an application makes it. */
const appStore = { aws: () => new AwsSecretsManagerStore(), bao: () => baoStore() };
/**
 * All four strategies on AWS; on OpenBao one per engine (the pools' code is the same over any SecretStore, the store
 * contract covers the rest): each slow proof once per store and kind.
 */
const cases = [
  ['aws', 'postgres', 'single'],
  ['aws', 'postgres', 'alternating'],
  ['aws', 'mysql', 'single'],
  ['aws', 'mysql', 'alternating'],
  ['bao', 'postgres', 'single'],
  ['bao', 'mysql', 'alternating'],
] as const;

describe(`an application on rotor-consumers, under load while ${ROTATIONS} rotations run back to back`, () => {
  for (const [where, engine, mode] of cases) {
    it(`${where === 'aws' ? 'AWS Secrets Manager' : 'OpenBao'}, ${engine} ${mode === 'single' ? 'single-user' : 'alternating users (previous login disabled)'}: 0 failed requests, pooled and a login per request; the same application reading its password at start fails`, async () => {
      const secretId = await secrets[where](engine, mode);
      // A long refresh interval: the pools must notice rotations from refused logins, not from polling.
      const cache = new SecretCache({ store: appStore[where](), refreshIntervalMs: 10 * 60_000 });
      const rotating = rotatingBackend(engine, cache, secretId);
      const control = await staticBackend(engine, secretId);
      const first = (await store.getByStage(secretId, 'AWSCURRENT'))!.versionId;

      const app = await serveUnderLoad(rotating);
      const naive = await serveUnderLoad(control, 1);
      try {
        for (let i = 0; i < ROTATIONS; i++) {
          await rotateToCompletion(rig, secretId, passwords);
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await app.stop();
        await naive.stop();
      }

      expect(app.failures).toEqual([]);
      // Served under many generations, from the first to the last: the application followed every rotation.
      const last = (await store.getByStage(secretId, 'AWSCURRENT'))!.versionId;
      expect(app.served.get(first) ?? 0).toBeGreaterThan(0);
      expect(app.served.get(last) ?? 0).toBeGreaterThan(0);
      expect(app.served.size).toBeGreaterThanOrEqual(ROTATIONS / 2);
      expect(app.total()).toBeGreaterThan(ROTATIONS * 10);
      // The control, under the same rotations: its logins are refused once the first rotation retired its password.
      expect(naive.failures.length).toBeGreaterThan(0);
      expect(naive.failures.filter((code) => !AUTH_FAILURES.has(code))).toEqual([]);
    });
  }

  for (const engine of ['postgres', 'mysql'] as const) {
    it(`${engine}: maxLifetimeMs closes busy connections once they are older than their lifetime, without a failed query`, async () => {
      const secretId = await secrets.aws(engine, 'single');
      const cache = new SecretCache({ store: new AwsSecretsManagerStore() });
      const logins = async (maxLifetimeMs?: number) => {
        const lifetime = maxLifetimeMs === undefined ? {} : { maxLifetimeMs, lifetimeJitter: 0.2 };
        let count = 0;
        let query: () => Promise<unknown>;
        let pool: { end(): Promise<void> };
        if (engine === 'postgres') {
          const pg = createRotatingPgPool({
            cache,
            secretId,
            pool: { max: 1, idleTimeoutMillis: 60_000 },
            ...lifetime,
          });
          pg.on('connect', () => count++);
          [pool, query] = [pg, () => pg.query('SELECT 1')];
        } else {
          const mysql = createRotatingMysqlPool({
            cache,
            secretId,
            pool: { connectionLimit: 1, maxIdle: 1, idleTimeout: 60_000 },
            ...lifetime,
          });
          mysql.on('connection', () => count++);
          [pool, query] = [mysql, () => mysql.query('SELECT 1')];
        }
        // 5.5 s: with a 1 s lifetime drawn within ±20 %, at least 4 generations even when every draw is 1.2 s.
        const until = Date.now() + 5500;
        try {
          while (Date.now() < until) {
            await query();
            await new Promise((r) => setTimeout(r, 20));
          }
        } finally {
          await pool.end();
        }
        return count;
      };
      // The probe before the first switch is a login too: one generation, one pool, without a lifetime 2 logins.
      expect(await logins()).toBeLessThanOrEqual(2);
      expect(await logins(1000)).toBeGreaterThanOrEqual(4);
    });
  }

  it('leaves no password in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/consumers-load-');
  });
});
