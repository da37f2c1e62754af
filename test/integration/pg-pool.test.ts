import { Pool } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, createRotatingPgPool, SecretCache } from '../../src/consumers';
import { uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword as freshPassword } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';
import { adminSecret, createRole, createSecret, pgSecret, rememberPasswords, store, tagSecret } from '../helpers/stack';

const rig = useWorkerRig('it-pg-pool');
const passwords = new Set<string>();
const newPassword = () => freshPassword(passwords);
let master: string;

/** Connections that close quickly, so that new logins happen all the time, as in a busy application. */
const CHURN = { max: 4, idleTimeoutMillis: 20, maxLifetimeSeconds: 1 };

/**
 * Serves "requests" until stopped: each one a pooled query. Counts what failed and, for the rotating pool, which
 * credential generation served it.
 */
function load(query: () => Promise<unknown>, generation: () => string | undefined) {
  let running = true;
  const served = new Map<string, number>();
  const failures: string[] = [];
  const workers = Array.from({ length: 4 }, async () => {
    while (running) {
      try {
        await query();
        const g = generation() ?? 'static';
        served.set(g, (served.get(g) ?? 0) + 1);
      } catch (error) {
        failures.push(String((error as { code?: string }).code ?? (error as Error).message));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    served,
    failures,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

async function rotate(secretId: string): Promise<void> {
  await rig.rotor.rotate(secretId, { graceMs: 0 });
  const outcome = await rig.rotor.wait(secretId);
  await rememberPasswords(secretId, passwords);
  expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
}

beforeAll(async () => {
  master = await adminSecret('pg-pool-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
});

describe('createRotatingPgPool under load while rotations run', () => {
  for (const mode of ['single', 'alternating'] as const) {
    it(`${mode === 'single' ? 'single-user' : 'alternating users, the previous login disabled'}: zero failed requests, while a pool that read its password at start fails`, async () => {
      const username = uniqueName(`rotor_pool_${mode[0]}`).replace(/-/g, '_');
      const password = newPassword();
      await createRole(username, password);
      const secretId = uniqueName(`it/pg-pool-${mode}`);
      await createSecret(secretId, pgSecret(username, password, mode === 'alternating' ? { masterarn: master } : {}));
      if (mode === 'alternating') await tagSecret(secretId, { 'rotor:retire': 'disable-login', 'rotor:live-sessions': 'proceed' });

      // A long refresh interval: the pool must notice rotations from refused logins, not from polling.
      const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 10 * 60_000 });
      const rotating = createRotatingPgPool({ cache, secretId, pool: CHURN });
      rotating.on('error', () => undefined);
      const initial = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value);
      const control = new Pool({ ...CHURN, host: initial.host, port: initial.port, user: initial.username, password: initial.password, database: 'postgres' });
      control.on('error', () => undefined);

      const app = load(() => rotating.query('SELECT 1'), () => rotating.generation?.versionId);
      const naive = load(() => control.query('SELECT 1'), () => undefined);
      try {
        for (let i = 0; i < 5; i++) {
          await rotate(secretId);
          await new Promise((r) => setTimeout(r, 300));
        }
      } finally {
        await app.stop();
        await naive.stop();
        await control.end().catch(() => undefined);
        await rotating.end();
      }
      expect(app.failures).toEqual([]);
      // Requests were served under several credential generations, the last one among them.
      expect(app.served.size).toBeGreaterThanOrEqual(3);
      const last = (await store.getByStage(secretId, 'AWSCURRENT'))!.versionId;
      expect(app.served.get(last) ?? 0).toBeGreaterThan(0);
      // The control: the same load with the password read at start fails once the first rotation retired it.
      expect(naive.failures.length).toBeGreaterThan(0);
      expect(naive.failures.every((code) => code === '28P01' || code === '28000')).toBe(true);
    });
  }

  it('leaves no password in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/pg-pool-');
  });
});
