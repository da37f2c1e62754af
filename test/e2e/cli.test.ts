import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../helpers/cli';
import { stackEnv, uniqueName } from '../helpers/env';
import { freePort } from '../helpers/ops';
import {
  createSecret,
  labels,
  logsIn,
  passwordAt,
  roleWithSecret as roleWithSecretIn,
  waitForStatus,
} from '../helpers/stack';
import { useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('e2e-cli');
const { taskQueue } = rig;
const passwords = new Set<string>();
const outputs: string[] = [];

/** Runs the `rotor` CLI on this file's task queue. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runCli(taskQueue, args, env, outputs);
}

const roleWithSecret = (marker: string) => roleWithSecretIn('e2e', marker, passwords);

describe('rotor CLI', () => {
  it('rotate --wait prints the step timeline and exits 0 when the rotation completed', async () => {
    const { secretId, username, password } = await roleWithSecret('rotate');
    const run = await cli(['rotate', secretId, '--wait', '--grace', '1s']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    for (const step of ['prepare', 'create', 'set', 'test', 'finish', 'retire'])
      expect(run.stdout).toMatch(new RegExp(`✓ ${step}\\s`));
    expect(run.stdout).toMatch(/⧗ grace/);
    expect(run.stdout).toMatch(/rotation of .* completed: version [0-9a-f-]{36} is AWSCURRENT/);
    expect(run.stdout).toContain(`ui: ${stackEnv('ROTOR_TEMPORAL_UI_URL')}/namespaces/default/workflows/`);
    const current = await passwordAt(secretId, 'AWSCURRENT');
    passwords.add(current);
    expect(await logsIn(username, current)).toBe(true);
    expect(await logsIn(username, password)).toBe(false);

    const status = await cli(['status', secretId, '--json']);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout);
    expect(parsed).toMatchObject({
      secretId,
      phase: 'completed',
      rotator: 'postgres-single-user',
      trigger: { kind: 'cli' },
    });
    const human = await cli(['status', secretId]);
    expect(human.stdout).toMatch(/phase\s+completed/);
  });

  it('rollback during grace reinstates the previous password and exits 0', async () => {
    const { secretId, username, password, versionId } = await roleWithSecret('rollback');
    const start = await cli(['rotate', secretId, '--grace', '10m', '--json']);
    expect(start.code).toBe(0);
    expect(JSON.parse(start.stdout)).toMatchObject({ secretId, started: true });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    passwords.add(await passwordAt(secretId, 'AWSCURRENT'));
    const again = await cli(['rotate', secretId]);
    expect(again.stdout).toMatch(/already running: rotation of/);
    const rollback = await cli(['rollback', secretId, '--reason', 'canary failed', '--wait']);
    expect(rollback.code).toBe(0);
    expect(rollback.stdout).toMatch(/✓ rollback/);
    expect(rollback.stdout).toMatch(/rolled back: version .* is AWSCURRENT again/);
    expect((await labels(secretId)).current).toBe(versionId);
    expect(await logsIn(username, password)).toBe(true);
  });

  it('exits 3 for an unknown secret and for a secret never rotated, with one line on stderr', async () => {
    const missing = uniqueName('e2e/missing');
    const rotate = await cli(['rotate', missing, '--wait', '--grace', '0s']);
    expect(rotate.code).toBe(3);
    expect(rotate.stdout).toMatch(new RegExp(`did not complete: .*secret ${missing} not found`));
    const status = await cli(['status', uniqueName('e2e/never')]);
    expect(status.code).toBe(3);
    expect(status.stderr.trim().split('\n')).toHaveLength(1);
    expect(status.stderr).toMatch(/^rotor: secret .* has never been rotated by rotor/);
  });

  it('exits 2 on an invalid secret and on bad usage, changing nothing', async () => {
    const secretId = uniqueName('e2e/bad');
    const versionId = await createSecret(secretId, { engine: 'postgres', password: 'x-not-used-x' });
    const rotate = await cli(['rotate', secretId, '--wait', '--grace', '0s']);
    expect(rotate.code).toBe(2);
    expect(rotate.stdout).toMatch(/host: is required/);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
    const badGrace = await cli(['rotate', secretId, '--grace', '30x']);
    expect(badGrace.code).toBe(2);
    expect(badGrace.stderr).toMatch(/--grace: "30x" is not a duration/);
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    const rollback = await cli(['rollback', secretId, '--wait']);
    expect(rollback.code).toBe(2);
    // Refused before any rollback starts: the rollback's own prepare, run once on a worker.
    expect(rollback.stderr).toMatch(/host: is required/);
    expect(rollback.stdout).not.toContain('started');
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
    const endGrace = await cli(['end-grace', secretId]);
    expect(endGrace.code).toBe(3);
    expect(endGrace.stderr).toMatch(/no rotation is running/);
  });

  it('refuses a duration without a unit everywhere, naming the value, and starts nothing', async () => {
    const secretId = uniqueName('e2e/bare');
    const versionId = await createSecret(secretId, { engine: 'postgres', password: 'x-not-used-x' });
    for (const [args, env, what] of [
      [['rotate', secretId, '--grace', '60'], {}, '--grace: "60"'],
      [['extend-grace', secretId, '60'], {}, 'duration: "60"'],
      [['rotate', secretId], { ROTOR_DEFAULT_GRACE: '60' }, 'ROTOR_DEFAULT_GRACE: duration: "60"'],
    ] as const) {
      const run = await cli([...args], env);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`${what} has no unit (examples: 90s, 15m, 1h30m, 30d)`);
    }
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
    expect((await cli(['status', secretId])).code).toBe(3);
  });

  it('exits 4 with a hint when Temporal cannot be reached, from the client and from the worker', async () => {
    // A loopback port nothing listens on, rather than the stack's.
    const nowhere = `127.0.0.1:${await freePort()}`;
    const status = await cli(['status', 'any'], { TEMPORAL_ADDRESS: nowhere });
    // The worker connects through Temporal's native core, whose errors read differently from the client's.
    const worker = await cli(['worker'], {
      TEMPORAL_ADDRESS: nowhere,
      ROTOR_AUDIT_DISABLED: 'true',
      ROTOR_METRICS_PORT: '0',
    });
    for (const run of [status, worker]) {
      expect(run.code).toBe(4);
      expect(run.stderr).toContain(`rotor: cannot reach Temporal at ${nowhere} (`);
      expect(run.stderr).toMatch(/\((Connection refused|Failed to connect before the deadline)\) — .*TEMPORAL_ADDRESS/);
      expect(run.stderr).not.toMatch(/tonic|ConnectError|at .*\.(js|ts):\d+/);
    }
  });

  it("prints its version, and an example after every command's help", async () => {
    const version = await cli(['--version']);
    expect(version.stdout.trim()).toBe(
      (
        JSON.parse(await readFile(path.resolve(__dirname, '../../packages/rotor/package.json'), 'utf8')) as {
          version: string;
        }
      ).version,
    );
    const commands = [...(await cli(['--help'])).stdout.matchAll(/^ {2}([a-z-]+) /gm)]
      .map((m) => m[1]!)
      .filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['rotate', 'status', 'apply', 'worker', 'rollback']));
    for (const command of commands) {
      const help = await cli(command === 'audit' ? ['audit', 'verify', '--help'] : [command, '--help']);
      expect(help.stdout, command).toMatch(/\nExamples?:\n {2}\$ (\S+=\S+ )?(rotor|npm run demo)\b/);
    }
  });

  it('takes -f for the rotor.yaml in every command that reads one', async () => {
    for (const command of ['validate', 'check', 'apply', 'worker']) {
      expect((await cli([command, '--help'])).stdout, command).toMatch(/-f, --file <path>/);
    }
  });

  it('prints no password', async () => {
    expect(passwords.size).toBeGreaterThanOrEqual(4);
    const all = outputs.join('\n');
    expect(all).toContain('rotation of');
    for (const p of passwords) expect(all.includes(p)).toBe(false);
  });
});
