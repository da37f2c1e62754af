import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertReceiver, workerWithConfig } from '../helpers/ops';
import { holdDirectory, releaseHold, waitUntilHeld } from '../helpers/faulty-rotators';
import { recordHistories } from '../helpers/hygiene';
import { createMysqlUser, mysqlLogsIn, mysqlSecret } from '../helpers/mysql';
import { newPassword } from '../helpers/hygiene';
import { BAO_MOUNT, baoWorkerConfig } from '../helpers/openbao';
import { tcpProxy } from '../helpers/outage';
import { useWorkerRig } from '../helpers/rig';
import { uniqueName, stackEnv } from '../helpers/env';
import {
  createRole,
  createSecret,
  idOn,
  labels,
  logsIn,
  passwordAt,
  pgSecret,
  rememberPasswords,
  waitForStatus,
} from '../helpers/stack';

/*
 * Outages ridden through, each behind a TCP proxy a test cuts (connections refused, open ones reset) or hangs:
 * - a failover: the database is unreachable for 2 minutes while one rotation starts and another has just set its new
 *   password; both complete once it answers again, on PostgreSQL and MariaDB at once. The control, with no outage
 *   budget, fails at prepare as every rotation did before. docs/operations.md, "A target that fails over";
 * - a database that never answers: the step gives up after its budget and the rotation compensates;
 * - OpenBao unreachable for 30 s: the same, for the store.
 * The three run at once (each has its own worker, proxies and secrets): most of their time is waiting.
 */

const holdDir = holdDirectory();
const rig = useWorkerRig('it-failover', { holdDir });
const passwords = new Set<string>();
const OUTAGE_MS = 120_000;
const proxies: Array<Awaited<ReturnType<typeof tcpProxy>>> = [];
afterAll(async () => Promise.all(proxies.map((p) => p.close())));

interface Engine {
  name: 'postgres' | 'mariadb';
  target: { host: string; port: number };
  account(name: string, password: string): Promise<void>;
  secret(username: string, password: string, port: number): object;
  logsIn(username: string, password: string): Promise<boolean>;
}

const pgUrl = () => new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
const myUrl = () => new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
const engines: Engine[] = [
  {
    name: 'postgres',
    target: { host: pgUrl().hostname, port: Number(pgUrl().port) },
    account: createRole,
    secret: (username, password, port) => pgSecret(username, password, { host: '127.0.0.1', port }),
    logsIn,
  },
  {
    name: 'mariadb',
    target: { host: myUrl().hostname, port: Number(myUrl().port) },
    account: (name, password) => createMysqlUser(name, password),
    secret: (username, password, port) => mysqlSecret(username, password, { host: '127.0.0.1', port }),
    logsIn: mysqlLogsIn,
  },
];

/** An account and its secret, reached through `port` (the proxy). */
async function accountBehind(engine: Engine, marker: string, port: number) {
  const username = uniqueName(`rotor_fo_${marker}`).replace(/-/g, '_').slice(0, 60);
  const password = `Init-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
  passwords.add(password);
  await engine.account(username, password);
  const secretId = uniqueName(`it/failover-${engine.name}-${marker}`);
  const versionId = await createSecret(secretId, engine.secret(username, password, port));
  return { secretId, username, password, versionId };
}

describe.concurrent('a database that fails over for 2 minutes', () => {
  it(
    'a rotation that starts during the outage and one past set when it begins both complete, on PostgreSQL and MariaDB',
    async () => {
      const cases = await Promise.all(
        engines.map(async (engine) => {
          const proxy = await tcpProxy(engine.target);
          proxies.push(proxy);
          return {
            engine,
            proxy,
            atStart: await accountBehind(engine, 'start', proxy.port),
            afterSet: await accountBehind(engine, 'hold-test', proxy.port),
            control: await accountBehind(engine, 'control', proxy.port),
          };
        }),
      );
      // Past set: the new password is in the database; the test step is held until the outage has begun.
      for (const c of cases) await rig.rotor.rotate(c.afterSet.secretId, { graceMs: 0 });
      for (const c of cases) await waitUntilHeld(holdDir, c.afterSet.secretId);
      for (const c of cases) await c.proxy.cut();
      const outageStarted = Date.now();
      for (const c of cases) {
        await rig.rotor.rotate(c.atStart.secretId, { graceMs: 0 });
        // The control: no outage budget, as every rotation was before.
        await rig.rotor.rotate(c.control.secretId, { graceMs: 0, outageBudgetMs: 0 });
        releaseHold(holdDir, c.afterSet.secretId);
      }
      for (const c of cases) {
        const control = await rig.rotor.wait(c.control.secretId);
        expect(control.outcome).toBe('failed');
        expect(control.outcome === 'failed' && control.message).toMatch(
          /failed at prepare: .*did not accept a connection.*nothing was changed/,
        );
      }
      // Both others are still waiting it out.
      for (const c of cases)
        for (const { secretId } of [c.atStart, c.afterSet])
          expect((await rig.rotor.status(secretId))?.phase).toMatch(/preparing|testing/);
      await new Promise((resolve) => setTimeout(resolve, outageStarted + OUTAGE_MS - Date.now()));
      for (const c of cases) await c.proxy.restore();

      for (const c of cases) {
        for (const { secretId, username, password, versionId } of [c.atStart, c.afterSet]) {
          const outcome = await rig.rotor.wait(secretId);
          expect(outcome.outcome, `${c.engine.name} ${secretId}`).toBe('completed');
          await rememberPasswords(secretId, passwords);
          expect(await labels(secretId)).toMatchObject({ previous: versionId });
          expect(await c.engine.logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
          expect(await c.engine.logsIn(username, password)).toBe(false);
        }
        expect(await c.engine.logsIn(c.control.username, c.control.password)).toBe(true);
      }
      // Rotations that waited out their target, for the replay tests (their histories hold the ride-through timers).
      await recordHistories(rig.rotor.client, rig.taskQueue, [
        'it/failover-postgres-start',
        'it/failover-mariadb-hold-test',
      ]);
    },
    OUTAGE_MS + 180_000,
  );
});

describe.concurrent('a database that never answers', () => {
  it('a step gives up after its outage budget, the rotation compensates once the database is back, and the alert says the target did not answer, on PostgreSQL and MariaDB', async () => {
    const alerts = await alertReceiver();
    const hold = holdDirectory();
    const worker = await workerWithConfig(
      `${rig.taskQueue}-silent`,
      `alerts:\n  webhooks:\n    oncall: { url: ${alerts.url}/oncall }\nsecrets:\n  - { id: it/silent-placeholder, schedule: { every: 30d } }\n`,
      { ROTOR_AUDIT_DISABLED: 'true' },
      hold,
    );
    try {
      const cases = await Promise.all(
        engines.map(async (engine) => {
          const proxy = await tcpProxy(engine.target);
          proxies.push(proxy);
          return { engine, proxy, account: await accountBehind(engine, 'silent-hold-test', proxy.port) };
        }),
      );
      // Past set, the test step held; then the database accepts connections and never answers them.
      const BUDGET_MS = 10_000;
      for (const { account } of cases)
        await worker.rotor.rotate(account.secretId, {
          graceMs: 0,
          outageBudgetMs: BUDGET_MS,
          maxStepAttempts: 1, // a round of attempts is one connection timeout: the test waits less
          reporting: { alerts: ['oncall'], stuckPhaseBudgetMs: 10 * 60_000 },
        });
      for (const { account } of cases) await waitUntilHeld(hold, account.secretId);
      for (const c of cases) {
        await c.proxy.hang();
        releaseHold(hold, c.account.secretId);
      }
      // The step waits out its budget, gives up, and compensation (which must put the target back) waits for it.
      for (const c of cases)
        await waitForStatus(worker.rotor, c.account.secretId, (s) => s.phase === 'compensating', 120_000);
      for (const c of cases) await c.proxy.restore();
      for (const { engine, account } of cases) {
        const outcome = await worker.rotor.wait(account.secretId);
        expect(outcome.outcome, engine.name).toBe('failed');
        expect(outcome.outcome === 'failed' && outcome.message).toMatch(
          /failed at test: .*did not answer for 10s, the outage budget.*compensated/,
        );
        await rememberPasswords(account.secretId, passwords);
        expect(await labels(account.secretId)).toEqual({ current: account.versionId, versions: 2 });
        expect(await engine.logsIn(account.username, account.password)).toBe(true);
        const alert = await alerts.alertFor(account.secretId, 'compensated');
        expect(alert.body.rotor.message).toMatch(/did not answer for 10s, the outage budget/);
      }
    } finally {
      await worker.stop();
      await alerts.close();
    }
  }, 240_000);
});

const BAO_OUTAGE_MS = 30_000;
const baoHoldDir = holdDirectory();
let baoProxy: Awaited<ReturnType<typeof tcpProxy>>;
let configFile = '';
beforeAll(async () => {
  const bao = new URL(stackEnv('BAO_ADDR'));
  baoProxy = await tcpProxy({ host: bao.hostname, port: Number(bao.port) });
  configFile = baoWorkerConfig(undefined, `http://127.0.0.1:${baoProxy.port}`);
});
afterAll(async () => baoProxy?.close());
const baoRig = useWorkerRig('it-bao-outage', { holdDir: baoHoldDir, env: () => ({ ROTOR_CONFIG: configFile }) });

async function baoPgAccount(marker: string) {
  const username = uniqueName(`rotor_bo_${marker}`).replace(/-/g, '_').slice(0, 60);
  const password = newPassword(passwords);
  await createRole(username, password);
  const secretId = idOn('bao', uniqueName(`it/bao-outage-${marker}`));
  const versionId = await createSecret(secretId, pgSecret(username, password));
  return { secretId, username, password, versionId };
}

describe.concurrent('OpenBao unreachable for 30 s', () => {
  it(
    'a rotation past set and one that starts during the outage both complete; the control without a budget fails',
    async () => {
      const afterSet = await baoPgAccount('hold-test');
      const atStart = await baoPgAccount('start');
      const control = await baoPgAccount('control');
      await baoRig.rotor.rotate(afterSet.secretId, { graceMs: 0 });
      await waitUntilHeld(baoHoldDir, afterSet.secretId);
      await baoProxy.cut();
      const outageStarted = Date.now();
      await baoRig.rotor.rotate(atStart.secretId, { graceMs: 0 });
      await baoRig.rotor.rotate(control.secretId, { graceMs: 0, outageBudgetMs: 0 });
      // Past set, the next store write is finish's label move: it meets the outage.
      releaseHold(baoHoldDir, afterSet.secretId);
      const failed = await baoRig.rotor.wait(control.secretId);
      expect(failed.outcome).toBe('failed');
      expect(failed.outcome === 'failed' && failed.message).toMatch(/failed at prepare: .*OpenBao.*did not answer/);
      for (const { secretId } of [afterSet, atStart])
        expect((await baoRig.rotor.status(secretId))?.phase).toMatch(/preparing|testing|finishing/);
      await new Promise((resolve) => setTimeout(resolve, outageStarted + BAO_OUTAGE_MS - Date.now()));
      await baoProxy.restore();

      for (const { secretId, username, password, versionId } of [afterSet, atStart]) {
        const outcome = await baoRig.rotor.wait(secretId);
        expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome, secretId).toBe('completed');
        await rememberPasswords(secretId, passwords);
        expect(await labels(secretId)).toMatchObject({ previous: versionId });
        expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
        expect(await logsIn(username, password)).toBe(false);
      }
      expect(await labels(control.secretId)).toEqual({ current: control.versionId, versions: 1 });
      expect(await logsIn(control.username, control.password)).toBe(true);
      expect(afterSet.secretId.startsWith(`bao:${BAO_MOUNT}/`)).toBe(true);
    },
    BAO_OUTAGE_MS + 120_000,
  );
});
