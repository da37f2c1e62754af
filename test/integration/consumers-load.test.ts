import { beforeAll, describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, SecretCache } from '../../src/consumers';
import { AUTH_FAILURES, rotatingMysql, rotatingPg, staticMysql, staticPg } from '../helpers/backends';
import { uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword } from '../helpers/hygiene';
import { serveUnderLoad, type Backend } from '../helpers/load-app';
import { createMysqlUser, mysqlSecret } from '../helpers/mysql';
import { rotateToCompletion, useWorkerRig } from '../helpers/rig';
import { adminSecret, createRole, createSecret, pgSecret, store, tagSecret } from '../helpers/stack';

const rig = useWorkerRig('it-consumers-load');
const passwords = new Set<string>();
const ROTATIONS = 20;
const RETIRE = { 'rotor:retire': 'disable-login', 'rotor:live-sessions': 'proceed' };

let pgMaster: string;
let mysqlMaster: string;

/** A login and its secret for one of the four strategies, alternating ones retiring by disable-login. */
async function secretFor(engine: 'postgres' | 'mysql', mode: 'single' | 'alternating'): Promise<string> {
  const username = uniqueName(`rotor_load_${engine[0]}${mode[0]}`).replace(/-/g, '_').slice(0, 40);
  const password = newPassword(passwords);
  const secretId = uniqueName(`it/consumers-load-${engine}-${mode}`);
  const extra = mode === 'alternating' ? { masterarn: engine === 'postgres' ? pgMaster : mysqlMaster } : {};
  if (engine === 'postgres') {
    await createRole(username, password);
    await createSecret(secretId, pgSecret(username, password, extra));
  } else {
    await createMysqlUser(username, password);
    await createSecret(secretId, mysqlSecret(username, password, extra));
  }
  if (mode === 'alternating') await tagSecret(secretId, RETIRE);
  return secretId;
}

beforeAll(async () => {
  pgMaster = await adminSecret('consumers-load-pg-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
  mysqlMaster = await adminSecret('consumers-load-mysql-master', 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, passwords);
});

describe(`an application on rotor/consumers, under load while ${ROTATIONS} rotations run back to back`, () => {
  for (const engine of ['postgres', 'mysql'] as const) {
    for (const mode of ['single', 'alternating'] as const) {
      it(`${engine} ${mode === 'single' ? 'single-user' : 'alternating users (previous login disabled)'}: 0 failed requests, pooled and a login per request; the same application reading its password at start fails`, async () => {
        const secretId = await secretFor(engine, mode);
        // A long refresh interval: the pools must notice rotations from refused logins, not from polling.
        const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 10 * 60_000 });
        const rotating: Backend = engine === 'postgres' ? rotatingPg(cache, secretId) : rotatingMysql(cache, secretId);
        const control: Backend = engine === 'postgres' ? await staticPg(secretId) : await staticMysql(secretId);
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
  }

  it('leaves no password in histories or worker logs', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/consumers-load-');
  });
});
