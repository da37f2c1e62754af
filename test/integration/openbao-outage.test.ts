import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdDirectory, releaseHold, waitUntilHeld } from '../helpers/faulty-rotators';
import { stackEnv, uniqueName } from '../helpers/env';
import { newPassword } from '../helpers/hygiene';
import { BAO_MOUNT, baoWorkerConfig } from '../helpers/openbao';
import { tcpProxy } from '../helpers/outage';
import { useWorkerRig } from '../helpers/rig';
import {
  createRole,
  createSecret,
  idOn,
  labels,
  logsIn,
  passwordAt,
  pgSecret,
  rememberPasswords,
} from '../helpers/stack';

/*
 * OpenBao unreachable for 30 s (a TCP proxy in front of it cut: connections refused, open ones reset) while one
 * rotation has just set its new password and another starts: both complete once it answers again. The control, with
 * no outage budget, fails at prepare and changes nothing.
 */

const OUTAGE_MS = 30_000;
const holdDir = holdDirectory();
const passwords = new Set<string>();
let proxy: Awaited<ReturnType<typeof tcpProxy>>;
let configFile = '';
beforeAll(async () => {
  const bao = new URL(stackEnv('BAO_ADDR'));
  proxy = await tcpProxy({ host: bao.hostname, port: Number(bao.port) });
  configFile = baoWorkerConfig(undefined, `http://127.0.0.1:${proxy.port}`);
});
afterAll(async () => proxy?.close());
const rig = useWorkerRig('it-bao-outage', { holdDir, env: () => ({ ROTOR_CONFIG: configFile }) });

async function pgAccount(marker: string) {
  const username = uniqueName(`rotor_bo_${marker}`).replace(/-/g, '_').slice(0, 60);
  const password = newPassword(passwords);
  await createRole(username, password);
  const secretId = idOn('bao', uniqueName(`it/bao-outage-${marker}`));
  const versionId = await createSecret(secretId, pgSecret(username, password));
  return { secretId, username, password, versionId };
}

describe('OpenBao unreachable for 30 s', () => {
  it(
    'a rotation past set and one that starts during the outage both complete; the control without a budget fails',
    async () => {
      const afterSet = await pgAccount('hold-test');
      const atStart = await pgAccount('start');
      const control = await pgAccount('control');
      await rig.rotor.rotate(afterSet.secretId, { graceMs: 0 });
      await waitUntilHeld(holdDir, afterSet.secretId);
      await proxy.cut();
      const outageStarted = Date.now();
      await rig.rotor.rotate(atStart.secretId, { graceMs: 0 });
      await rig.rotor.rotate(control.secretId, { graceMs: 0, outageBudgetMs: 0 });
      // Past set, the next store write is finish's label move: it meets the outage.
      releaseHold(holdDir, afterSet.secretId);
      const failed = await rig.rotor.wait(control.secretId);
      expect(failed.outcome).toBe('failed');
      expect(failed.outcome === 'failed' && failed.message).toMatch(/failed at prepare: .*OpenBao.*did not answer/);
      for (const { secretId } of [afterSet, atStart])
        expect((await rig.rotor.status(secretId))?.phase).toMatch(/preparing|testing|finishing/);
      await new Promise((resolve) => setTimeout(resolve, outageStarted + OUTAGE_MS - Date.now()));
      await proxy.restore();

      for (const { secretId, username, password, versionId } of [afterSet, atStart]) {
        const outcome = await rig.rotor.wait(secretId);
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
    OUTAGE_MS + 120_000,
  );
});
