import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { stringify } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SecretCheckReport } from '../../packages/rotor/src/shared/reports';
import { runCli } from '../helpers/cli';
import { uniqueName } from '../helpers/env';
import {
  adminSecret,
  createRole,
  createSecret,
  labels,
  pgSecret,
  rememberPasswords,
  roleWithSecret,
  tagSecret,
  withAdmin,
} from '../helpers/stack';
import { expectNoPasswords, newPassword as freshPassword } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-check');
const passwords = new Set<string>();
const outputs: string[] = [];
let master: string;

const newPassword = () => freshPassword(passwords);

const failedChecks = (r: SecretCheckReport | undefined) => r?.checks.filter((c) => !c.ok).map((c) => c.name);

beforeAll(async () => {
  master = await adminSecret('check-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
});

describe('rotor check: everything a rotation needs, checked without changing anything', () => {
  it('passes healthy secrets and names each kind of failure with a hint, exiting 6', async () => {
    const healthy = await roleWithSecret('it', 'check-ok', passwords);
    const pairName = uniqueName('rotor_check_pair').replace(/-/g, '_');
    const pairPassword = newPassword();
    await createRole(pairName, pairPassword);
    const pair = uniqueName('it/check-pair');
    await createSecret(pair, pgSecret(pairName, pairPassword, { masterarn: master }));

    // The database no longer accepts AWSCURRENT (changed out of band).
    const wrong = await roleWithSecret('it', 'check-wrong', passwords);
    await withAdmin((a) =>
      a.query(`ALTER ROLE ${escapeIdentifier(wrong.username)} PASSWORD ${escapeLiteral(newPassword())}`),
    );
    // An unfinished rotation left AWSPENDING, and the database holds its password.
    const stray = await roleWithSecret('it', 'check-stray', passwords);
    const strayPassword = newPassword();
    const strayOut = await new SecretsManagerClient({}).send(
      new PutSecretValueCommand({
        SecretId: stray.secretId,
        SecretString: JSON.stringify(pgSecret(stray.username, strayPassword)),
        VersionStages: ['AWSPENDING'],
      }),
    );
    await withAdmin((a) =>
      a.query(`ALTER ROLE ${escapeIdentifier(stray.username)} PASSWORD ${escapeLiteral(strayPassword)}`),
    );
    // A bad policy tag, and a pair whose admin secret does not exist.
    const badTag = await roleWithSecret('it', 'check-tag', passwords);
    await tagSecret(badTag.secretId, { 'rotor:live-sessions': 'sometimes' });
    const orphan = uniqueName('it/check-orphan');
    await createSecret(orphan, pgSecret(pairName, pairPassword, { masterarn: uniqueName('it/no-such-admin') }));
    const missing = uniqueName('it/check-missing');

    const ids = [healthy.secretId, pair, wrong.secretId, stray.secretId, badTag.secretId, orphan, missing];
    const before = await Promise.all(ids.slice(0, 6).map((id) => labels(id)));
    const run = await runCli(rig.taskQueue, ['check', ...ids, '--json'], {}, outputs);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(6);
    const reports = JSON.parse(run.stdout) as SecretCheckReport[];
    const byId = new Map(reports.map((r) => [r.secretId, r]));
    expect(byId.get(healthy.secretId)).toMatchObject({ ok: true, rotator: 'postgres-single-user' });
    expect(byId.get(pair)).toMatchObject({ ok: true, rotator: 'postgres-alternating-users' });
    expect(failedChecks(byId.get(wrong.secretId))).toEqual(['login']);
    expect(failedChecks(byId.get(stray.secretId))).toEqual(['login', 'pending']);
    expect(byId.get(stray.secretId)?.checks.find((c) => c.name === 'pending')?.detail).toMatch(
      new RegExp(`version ${strayOut.VersionId} is AWSPENDING but not AWSCURRENT.*the database accepts its password`),
    );
    expect(failedChecks(byId.get(badTag.secretId))).toEqual(['policies']);
    expect(byId.get(orphan)?.checks.find((c) => c.name === 'login')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/not found/),
      hint: expect.stringMatching(/masterarn must name an existing admin secret/),
    });
    expect(failedChecks(byId.get(missing))).toEqual(['store']);
    // Nothing changed.
    expect(await Promise.all(ids.slice(0, 6).map((id) => labels(id)))).toEqual(before);

    const text = await runCli(rig.taskQueue, ['check', healthy.secretId, wrong.secretId], {}, outputs);
    expect(text.code).toBe(6);
    expect(text.stdout).toMatch(new RegExp(`^ok {4}${healthy.secretId}  \\(postgres-single-user\\)$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^FAIL  ${wrong.secretId}`, 'm'));
    expect(text.stdout).toMatch(/^ {6}login: .*no version of the secret .* logs in/m);
    expect(text.stdout).toMatch(/^ {8}hint: make AWSCURRENT hold the password the database accepts/m);
    expect(text.stdout).toMatch(/2 checked, 1 failed/);
    for (const id of ids) await rememberPasswords(id, passwords).catch(() => undefined);
  });

  it("checks every secret of rotor.yaml with the file's strategy, exiting 0 when all pass", async () => {
    const a = await roleWithSecret('it', 'check-file-a', passwords);
    const b = await roleWithSecret('it', 'check-file-b', passwords);
    const dir = mkdtempSync(path.join(tmpdir(), 'rotor-check-'));
    const file = path.join(dir, 'rotor.yaml');
    writeFileSync(
      file,
      stringify({
        secrets: [
          { id: a.secretId, schedule: { every: '30d' } },
          { id: b.secretId, schedule: { every: '30d' } },
        ],
      }),
    );
    const ok = await runCli(rig.taskQueue, ['check', '-f', file], {}, outputs);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/2 checked, all passed/);

    // The file says alternating users; the secret has no masterarn: the shape check says so.
    writeFileSync(
      file,
      stringify({ secrets: [{ id: a.secretId, schedule: { every: '30d' }, strategy: 'alternating-users' }] }),
    );
    const wrongStrategy = await runCli(rig.taskQueue, ['check', '-f', file, '--json'], {}, outputs);
    expect(wrongStrategy.code).toBe(6);
    const [report] = JSON.parse(wrongStrategy.stdout) as SecretCheckReport[];
    expect(report?.checks.find((c) => c.name === 'shape')).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/masterarn: is required/),
    });
  });

  it('leaves no password in histories, worker logs or CLI output', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/check-', outputs);
  });
});
