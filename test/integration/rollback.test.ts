import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli';
import { stackEnv, uniqueName } from '../helpers/env';
import { expectNoPasswords, newPassword as freshPassword, recordHistories } from '../helpers/hygiene';
import { createMysqlUser, mysqlLogsIn, mysqlSecret } from '../helpers/mysql';
import {
  adminSecret,
  createRole,
  createSecret,
  labels,
  logsIn,
  pgSecret,
  rememberPasswords,
  store,
  tagSecret,
  waitForStatus,
  pgClientAs,
} from '../helpers/stack';
import { UpdateName } from '../../packages/rotor/src/shared/constants';
import { rotateToCompletion, useWorkerRig } from '../helpers/rig';

const rig = useWorkerRig('it-rollback');
const passwords = new Set<string>();
const outputs: string[] = [];
const masters: Record<'postgres' | 'mysql', string> = { postgres: '', mysql: '' };

type Kind = 'postgres' | 'mysql';
type Login = { username: string; password: string };

const newPassword = () => freshPassword(passwords);

async function at(secretId: string, stage: 'AWSCURRENT' | 'AWSPREVIOUS'): Promise<Login & { versionId: string }> {
  const v = (await store.getByStage(secretId, stage))!;
  const json = JSON.parse(v.value);
  passwords.add(json.password);
  return { username: json.username, password: json.password, versionId: v.versionId };
}

const works = (kind: Kind, l: Login) =>
  kind === 'postgres' ? logsIn(l.username, l.password) : mysqlLogsIn(l.username, l.password);

/** A login and its secret; alternating pairs retire the previous login at grace end (disable-login). */
async function secretFor(kind: Kind, mode: 'single' | 'multi'): Promise<string> {
  const name = uniqueName(`rotor_rb_${kind[0]}${mode[0]}`).replace(/-/g, '_').slice(0, 40);
  const password = newPassword();
  const secretId = uniqueName(`it/rollback-${kind}-${mode}`);
  const extra = mode === 'multi' ? { masterarn: masters[kind] } : {};
  if (kind === 'postgres') {
    await createRole(name, password);
    await createSecret(secretId, pgSecret(name, password, extra));
  } else {
    await createMysqlUser(name, password);
    await createSecret(secretId, mysqlSecret(name, password, extra));
  }
  if (mode === 'multi')
    await tagSecret(secretId, { 'rotor:retire': 'disable-login', 'rotor:live-sessions': 'proceed' });
  return secretId;
}

const rotate = (secretId: string) => rotateToCompletion(rig, secretId, passwords);

beforeAll(async () => {
  masters.postgres = await adminSecret('rollback-pg-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
  masters.mysql = await adminSecret('rollback-mysql-master', 'ROTOR_MYSQL_ADMIN_URL', mysqlSecret, passwords);
});

describe('rotor rollback with no rotation running: AWSPREVIOUS reinstated in the target and the store', () => {
  for (const kind of ['postgres', 'mysql'] as const) {
    for (const mode of ['single', 'multi'] as const) {
      it(`${kind} ${mode === 'single' ? 'single-user' : 'alternating users, the previous login retired'}: after grace ended`, async () => {
        const secretId = await secretFor(kind, mode);
        await rotate(secretId);
        const newer = await at(secretId, 'AWSCURRENT');
        const older = await at(secretId, 'AWSPREVIOUS');
        // The previous credential no longer works: single-user changed the password, pairs retired the login.
        expect(await works(kind, older)).toBe(false);

        const rolled = await runCli(
          rig.taskQueue,
          ['rollback', secretId, '--reason', 'new credential breaks the app', '--wait'],
          { ROTOR_OPERATOR: 'erin' },
          outputs,
        );
        expect(rolled.stderr).toBe('');
        expect(rolled.code).toBe(0);
        expect(rolled.stdout).toContain(`${secretId} rolled back: version ${older.versionId} is AWSCURRENT again`);

        expect(await labels(secretId)).toEqual({ current: older.versionId, previous: newer.versionId, versions: 2 });
        expect(await works(kind, older)).toBe(true);
        if (mode === 'single') expect(await works(kind, newer)).toBe(false);
        const status = await rig.rotor.status(secretId);
        expect(status).toMatchObject({
          phase: 'rolled-back',
          operation: 'rollback',
          rollbackReason: 'new credential breaks the app',
          trigger: { kind: 'cli', by: 'erin' },
        });
        expect(status?.steps.map((s) => s.step)).toEqual(['prepare', 'rollback']);

        // Rotating again afterwards works from the reinstated version.
        await rotate(secretId);
        expect(await works(kind, await at(secretId, 'AWSCURRENT'))).toBe(true);
      });
    }
  }

  it('refuses before any rollback starts, changing nothing, when the secret is unknown, has no AWSPREVIOUS or it names another server', async () => {
    const fresh = await secretFor('postgres', 'single');
    const before = await labels(fresh);
    // Refused before any rollback starts, with exit code 3: no workflow under the secret's id.
    const refused = await runCli(rig.taskQueue, ['rollback', fresh], {}, outputs);
    expect(refused.code).toBe(3);
    expect(refused.stdout).not.toContain('started');
    expect(refused.stderr).toMatch(/has no AWSPREVIOUS version: there is nothing to roll back to/);
    expect(await rig.rotor.status(fresh)).toBeUndefined();
    expect(await labels(fresh)).toEqual(before);
    const missing = await runCli(rig.taskQueue, ['rollback', `${fresh}-does-not-exist`], {}, outputs);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/not found/);
    expect(missing.stdout).not.toContain('started');

    const moved = await secretFor('postgres', 'single');
    const current = await at(moved, 'AWSCURRENT');
    const sm = new SecretsManagerClient({});
    const elsewhere = {
      ...JSON.parse((await store.getByStage(moved, 'AWSCURRENT'))!.value),
      host: 'db.elsewhere.example',
    };
    // AWSPREVIOUS on another server: an old endpoint, say.
    await sm.send(
      new PutSecretValueCommand({
        SecretId: moved,
        SecretString: JSON.stringify(elsewhere),
        VersionStages: ['AWSCURRENT'],
      }),
    );
    await sm.send(
      new PutSecretValueCommand({
        SecretId: moved,
        SecretString: JSON.stringify({ ...elsewhere, host: new URL(stackEnv('ROTOR_PG_ADMIN_URL')).hostname }),
        VersionStages: ['AWSCURRENT'],
      }),
    );
    const labelsBefore = await labels(moved);
    await expect(rig.rotor.rollback(moved, 'try')).rejects.toThrow(
      /AWSPREVIOUS names another server .* rotor will not roll back across servers/,
    );
    expect(await labels(moved)).toEqual(labelsBefore);
    expect(await logsIn(current.username, current.password)).toBe(true);
  });

  it('a rollback asked while a rotation retires is refused with the reason', async () => {
    const secretId = await secretFor('postgres', 'multi');
    const previous = await at(secretId, 'AWSCURRENT');
    // A live session of the login being retired keeps the rotation in awaiting-sessions.
    await tagSecret(secretId, { 'rotor:live-sessions': 'wait', 'rotor:live-sessions-max-wait': '1m' });
    const held = pgClientAs(previous.username, previous.password);
    await held.connect();
    try {
      await rig.rotor.rotate(secretId, { graceMs: 0 });
      await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'awaiting-sessions');
      await expect(rig.rotor.rollback(secretId, 'too late')).rejects.toThrow(
        /refused: the rotation is awaiting-sessions: the previous credential is being retired; once the rotation has ended, rotor rollback reinstates it/,
      );
    } finally {
      await held.end();
    }
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await rememberPasswords(secretId, passwords);
  });

  it('grace requests are answered at once: accepted with the new end, or refused with the reason', async () => {
    const secretId = await secretFor('postgres', 'single');
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000 });
    const inGrace = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const extended = await runCli(
      rig.taskQueue,
      ['extend-grace', secretId, '1h', '--json'],
      { ROTOR_OPERATOR: 'erin' },
      outputs,
    );
    expect(extended.code).toBe(0);
    const answer = JSON.parse(extended.stdout);
    expect(Date.parse(answer.graceEndsAt) - Date.parse(inGrace.graceEndsAt!)).toBe(3_600_000);
    // 10 minutes + 1 hour are spent: 30 more days would exceed the maximum.
    await expect(rig.rotor.extendGrace(secretId, 30 * 86_400_000)).rejects.toThrow(
      /refused: the grace period would exceed the maximum of 30d/,
    );
    // What the Temporal UI shows for a refused Update: the reason, no stack trace with the worker's source paths.
    const refusal = await rig.rotor.client.workflow
      .getHandle(`rotor/rotate/${secretId}`)
      .executeUpdate(UpdateName.extendGrace, { args: [{ byMs: 30 * 86_400_000 }] })
      .then(
        () => undefined,
        (error: { cause?: { message?: string; stack?: string; type?: string } }) => error.cause,
      );
    expect(refusal).toMatchObject({ type: 'RotorRequestRefused' });
    expect(refusal?.stack ?? '').not.toMatch(/\.ts|\.js|workflow-bundle|node_modules/);
    const bare = await runCli(rig.taskQueue, ['extend-grace', secretId, '60'], {}, outputs);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/"60" has no unit/);
    expect((await rig.rotor.status(secretId))?.graceEndsAt).toBe(answer.graceEndsAt);

    await expect(rig.rotor.endGrace(secretId, 'erin')).resolves.toMatchObject({ accepted: true, phase: 'grace' });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await rememberPasswords(secretId, passwords);
    await expect(rig.rotor.endGrace(secretId)).rejects.toThrow(
      /no rotation is running, nothing to end the grace period of/,
    );
  });

  it('the Temporal UI shows what a rotation is: its summary, its current details, and a summary on the grace timer', async () => {
    const secretId = await secretFor('postgres', 'single');
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000, trigger: { kind: 'cli', by: 'erin' } });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    const handle = rig.rotor.client.workflow.getHandle(`rotor/rotate/${secretId}`);
    expect(await (await handle.describe()).staticSummary()).toBe(`rotate ${secretId} · cli:erin · grace 10m`);
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toMatch(
      new RegExp(`^\\*\\*grace\\*\\* · rotate ${secretId} · postgres-single-user · cli:erin · grace until \\d{4}-`),
    );
    const { events } = await handle.fetchHistory();
    const timer = events?.find((e) => e.timerStartedEventAttributes && e.userMetadata?.summary);
    expect(timer).toBeDefined();
    const summary = JSON.parse(Buffer.from(timer!.userMetadata!.summary!.data!).toString());
    expect(summary).toMatch(new RegExp(`^grace: the previous credential of ${secretId} stays valid until \\d{4}-`));
    await rig.rotor.endGrace(secretId);
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('completed');
    await rememberPasswords(secretId, passwords);
    // Ended, it says how to roll back, where the UI shows an ended run without a worker to ask (its result and its
    // memo) and in its current details: the UI then offers only Reset and Start Workflow Like This One.
    expect(outcome.outcome === 'completed' && outcome.result.rollBack).toBe(
      `rotor rollback ${secretId} reinstates the previous version (not Reset)`,
    );
    const { memo } = await handle.describe();
    expect(memo?.rollBack).toBe(`\`rotor rollback ${secretId}\` (not Reset)`);
    const ended = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(ended.currentDetails).toContain(`to roll back: \`rotor rollback ${secretId}\` (not Reset)`);
  });

  it('leaves no password in histories, worker logs or CLI output', async () => {
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, passwords, 'it/rollback-', outputs);
    await recordHistories(rig.rotor.client, rig.taskQueue, ['it/rollback-postgres-single']);
  });
});
