import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli';
import { uniqueName } from '../helpers/env';
import { expectNoPasswords } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';
import {
  createSecret,
  labels,
  logsIn,
  passwordAt,
  pgSecret,
  rememberPasswords,
  roleWithSecret,
  waitForStatus,
} from '../helpers/stack';

/*
 * Incident mode: `rotor rotate --prefix|--tag|--all -f rotor.yaml` rotates a fleet at once, a bounded number at a
 * time, skips what is already rotating, names why each failure failed, and exits 1 when any did not complete.
 */
const rig = useWorkerRig('it-fleet');
const passwords = new Set<string>();
const outputs: string[] = [];

describe('rotor rotate over a fleet', () => {
  it('lists on --dry-run, then rotates every secret under a prefix without waiting out their grace: switched, failed with its reason, skipped', async () => {
    const prefix = uniqueName('it/fleet');
    const healthy = await Promise.all(['a', 'b', 'c'].map((m) => roleWithSecret(prefix, m, passwords)));
    const running = await roleWithSecret(prefix, 'running', passwords);
    // A secret whose AWSCURRENT password the database does not hold: refused at prepare, nothing changed.
    const wrong = await roleWithSecret(prefix, 'wrong', passwords);
    const broken = `${prefix}/broken`;
    await createSecret(broken, pgSecret(wrong.username, 'Not-The-Password-0'));
    const outside = await roleWithSecret(uniqueName('it/fleetx'), 'outside', passwords);
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'rotor-fleet-')), 'rotor.yaml');
    const entry = (id: string, tags: string[] = []) =>
      `  - id: ${id}\n    schedule: { every: 30d }\n    grace: 1h\n${tags.length ? `    tags: [${tags.join(', ')}]\n` : ''}`;
    writeFileSync(
      file,
      `secrets:\n${entry(healthy[0]!.secretId, ['pci'])}${entry(healthy[1]!.secretId, ['pci'])}${entry(healthy[2]!.secretId)}` +
        `${entry(running.secretId)}${entry(broken)}${entry(outside.secretId, ['pci'])}`,
    );

    const dry = await runCli(rig.taskQueue, ['rotate', '--tag', 'pci', '-f', file, '--dry-run'], {}, outputs);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`would rotate ${healthy[0]!.secretId}  grace 1h`);
    expect(dry.stdout).toContain('3 secrets would rotate');
    for (const { secretId } of [...healthy, outside]) expect(await rig.rotor.status(secretId)).toBeUndefined();

    await rig.rotor.rotate(running.secretId, { graceMs: 10 * 60_000 });
    await waitForStatus(rig.rotor, running.secretId, (s) => s.phase === 'grace');

    // The file's grace of an hour: the command is done once each new credential is current, not an hour later.
    const fleet = await runCli(
      rig.taskQueue,
      ['rotate', '--prefix', prefix, '-f', file, '--no-bake', '--concurrency', '2'],
      {},
      outputs,
    );
    expect(fleet.code).toBe(1);
    // The table: one row per secret (id, outcome, detail), then the summary.
    const lines = fleet.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(
      /^5 secrets in \S+: 3 on their new credential, 1 not, 1 skipped \(already rotating\)$/,
    );
    const rows = lines.slice(0, -1).map((l) => {
      const [, secretId, outcome, detail] = /^(\S+)\s+(\S+)\s+(.*)$/.exec(l)!;
      return { secretId: secretId!, outcome: outcome!, detail: detail! };
    });
    const byId = new Map(rows.map((r) => [r.secretId, r]));
    expect(rows).toHaveLength(5); // the prefix is whole path segments: it/fleetx-... is not under it/fleet-...
    for (const h of healthy) {
      expect(byId.get(h.secretId)?.outcome).toBe('switched');
      expect(byId.get(h.secretId)?.detail).toMatch(/is AWSCURRENT, in grace until \d{4}-/);
      expect((await rig.rotor.status(h.secretId))?.phase).toBe('grace');
      await rememberPasswords(h.secretId, passwords);
      expect(await logsIn(h.username, await passwordAt(h.secretId, 'AWSCURRENT'))).toBe(true);
      expect(await logsIn(h.username, h.password)).toBe(false); // single-user: the password changed in place
    }
    expect(byId.get(running.secretId)).toMatchObject({ outcome: 'skipped', detail: 'already rotating' });
    expect(byId.get(broken)).toMatchObject({ outcome: 'failed' });
    expect(byId.get(broken)!.detail).toMatch(/failed at prepare: .*nothing was changed/);
    expect((await labels(broken)).previous).toBeUndefined();
    expect(await rig.rotor.status(outside.secretId)).toBeUndefined();

    const table = await runCli(rig.taskQueue, ['rotate', '--tag', 'nothing', '-f', file], {}, outputs);
    expect(table.code).toBe(2);
    expect(table.stderr).toContain('no secret of');
    const both = await runCli(rig.taskQueue, ['rotate', healthy[0]!.secretId, '--all', '-f', file], {}, outputs);
    expect(both.code).toBe(2);
    for (const { secretId, username, password } of [...healthy, running]) {
      await rig.rotor.endGrace(secretId);
      expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
      expect(await logsIn(username, password)).toBe(false);
    }
    await rememberPasswords(running.secretId, passwords);
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, prefix, outputs);
  });
});
