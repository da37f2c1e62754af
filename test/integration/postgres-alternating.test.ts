import { SecretsManagerClient, TagResourceCommand } from '@aws-sdk/client-secrets-manager';
import { escapeIdentifier as q, escapeLiteral, Client as PgClient } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../helpers/env';
import { holdDirectory } from '../helpers/faulty-rotators';
import { historiesText } from '../helpers/hygiene';
import {
  adminSecret,
  createSecret,
  labels,
  logsIn,
  pgSecret,
  rememberPasswords,
  roleExists,
  store,
  tagSecret,
  waitForStatus,
  withAdmin,
  pgClientAs,
  asPgLogin,
} from '../helpers/stack';
import { rotateToEnd as rotateToEndOn, useWorkerRig } from '../helpers/rig';
import { WorkerProcess } from '../helpers/worker-process';

const holdDir = holdDirectory();
const rig = useWorkerRig('it-pg-alt', { holdDir });
const { taskQueue } = rig;
let masterId: string;
const passwords = new Set<string>();
const remember = (secretId: string) => rememberPasswords(secretId, passwords);

/** The one-time DBA setup of the README: a NOLOGIN owner role, the login a member of it, SET role by default. */
async function loginWithOwnerModel(
  marker: string,
  base = uniqueName(`rotor_alt_${marker}`).replace(/-/g, '_'),
  extra: object = {},
) {
  const password = `Init-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  passwords.add(password);
  const owner = `${base}_owner`;
  await withAdmin(async (admin) => {
    await admin.query(`CREATE ROLE ${q(owner)} NOLOGIN`);
    await admin.query(`CREATE ROLE ${q(base)} LOGIN PASSWORD ${escapeLiteral(password)} IN ROLE ${q(owner)}`);
    await admin.query(`ALTER ROLE ${q(base)} SET role = ${escapeLiteral(owner)}`);
    await admin.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${q(owner)}`);
  });
  const secretId = uniqueName(`it/alt-${marker}`);
  const versionId = await createSecret(secretId, pgSecret(base, password, { masterarn: masterId, ...extra }));
  return { secretId, base, owner, password, versionId };
}

async function current(secretId: string): Promise<{ username: string; password: string; versionId: string }> {
  const v = (await store.getByStage(secretId, 'AWSCURRENT'))!;
  const json = JSON.parse(v.value);
  passwords.add(json.password);
  return { username: json.username, password: json.password, versionId: v.versionId };
}

/** An application's open connection as a login of the pair. */
async function openSession(username: string, password: string): Promise<PgClient> {
  const c = pgClientAs(username, password);
  await c.connect();
  return c;
}

/** Runs SQL as a login of the pair (its default role setting applies, as for an application). */
const asLogin = asPgLogin;

const rotateToEnd = (secretId: string, graceMs = 0) => rotateToEndOn(rig, secretId, passwords, graceMs);

beforeAll(async () => {
  masterId = await adminSecret('alt-master', 'ROTOR_PG_ADMIN_URL', pgSecret, passwords);
});

describe('PostgreSQL alternating users on the real stack', () => {
  it('alternates between name and name_clone; the login applications hold keeps working', async () => {
    const { secretId, base, password, versionId } = await loginWithOwnerModel('happy');
    expect(await rotateToEnd(secretId)).toBe('completed');
    const first = await current(secretId);
    expect(first.username).toBe(`${base}_clone`);
    expect(await logsIn(first.username, first.password)).toBe(true);
    expect(await logsIn(base, password)).toBe(true);
    expect(await labels(secretId)).toMatchObject({ current: first.versionId, previous: versionId, versions: 2 });
    expect((await rig.rotor.status(secretId))?.rotator).toBe('postgres-alternating-users');

    expect(await rotateToEnd(secretId)).toBe('completed');
    const second = await current(secretId);
    expect(second.username).toBe(base);
    expect(second.password).not.toBe(password);
    expect(await logsIn(base, second.password)).toBe(true);
    expect(await logsIn(base, password)).toBe(false);
    expect(await logsIn(first.username, first.password)).toBe(true);
    expect((await labels(secretId)).pending).toBeUndefined();
  });

  it('keeps everything either login created or was granted usable by the other', async () => {
    const { secretId, base, password } = await loginWithOwnerModel('owner');
    const t1 = `${base}_t1`;
    const t2 = `${base}_t2`;
    const g = `${base}_granted`;
    await asLogin(base, password, async (a) => {
      await a.query(`CREATE TABLE ${q(t1)} (id int)`);
      await a.query(`INSERT INTO ${q(t1)} VALUES (1)`);
    });
    expect(await rotateToEnd(secretId)).toBe('completed');
    const b = await current(secretId);
    await asLogin(b.username, b.password, async (c) => {
      await c.query(`INSERT INTO ${q(t1)} VALUES (2)`);
      expect((await c.query(`SELECT count(*)::int AS n FROM ${q(t1)}`)).rows[0].n).toBe(2);
      await c.query(`CREATE TABLE ${q(t2)} (id int)`);
    });
    expect(await rotateToEnd(secretId)).toBe('completed');
    const a = await current(secretId);
    expect(a.username).toBe(base);
    await asLogin(a.username, a.password, async (c) => {
      await c.query(`INSERT INTO ${q(t2)} VALUES (3)`);
      expect((await c.query(`SELECT count(*)::int AS n FROM ${q(t2)}`)).rows[0].n).toBe(1);
    });
    // A grant made to the login itself, after the clone existed, reaches the clone at the next rotation.
    await withAdmin(async (admin) => {
      await admin.query(`CREATE TABLE ${q(g)} (id int)`);
      await admin.query(`GRANT SELECT ON ${q(g)} TO ${q(base)}`);
    });
    expect(await rotateToEnd(secretId)).toBe('completed');
    const clone = await current(secretId);
    expect(clone.username).toBe(`${base}_clone`);
    // Sessions run as the owner role by default; the login's own grants apply once it sets its role back to itself.
    await asLogin(clone.username, clone.password, async (c) => {
      await expect(c.query(`SELECT * FROM ${q(g)}`)).rejects.toThrow(/permission denied/);
      await c.query('SET ROLE NONE');
      await expect(c.query(`SELECT * FROM ${q(g)}`)).resolves.toBeDefined();
    });
  });

  it("copies role settings so the clone sees what the login sees (a list-valued search_path, one per database), drops the ones reset since, and test proves it with the secret's testQuery", async () => {
    const { secretId, base, owner, password } = await loginWithOwnerModel('settings', undefined, {
      testQuery: 'SELECT count(*) FROM invoices',
    });
    const schema = `${base}_billing`;
    await withAdmin(async (admin) => {
      await admin.query(`CREATE SCHEMA ${q(schema)} AUTHORIZATION ${q(owner)}`);
      await admin.query(`CREATE TABLE ${q(schema)}.invoices (id int)`);
      await admin.query(`ALTER TABLE ${q(schema)}.invoices OWNER TO ${q(owner)}`);
      // A list-valued setting, and a plain one whose value has a comma in it.
      await admin.query(`ALTER ROLE ${q(base)} SET search_path = ${escapeLiteral(schema)}, 'public'`);
      await admin.query(`ALTER ROLE ${q(base)} SET application_name = 'billing, v2'`);
      // One for this database only (ALTER ROLE ... IN DATABASE).
      await admin.query(`ALTER ROLE ${q(base)} IN DATABASE postgres SET work_mem = '8MB'`);
    });
    const settingsOf = (role: string) =>
      withAdmin(async (admin) =>
        (
          await admin.query<{ s: string }>(
            `SELECT coalesce(d.datname, '*') || ':' || s AS s
               FROM pg_db_role_setting rs LEFT JOIN pg_database d ON d.oid = rs.setdatabase, unnest(rs.setconfig) s
              WHERE rs.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`,
            [role],
          )
        ).rows.map((r) => r.s),
      );
    const original = await settingsOf(base);
    // The application's query (the secret's testQuery too), unqualified: it needs the search_path.
    await asLogin(base, password, (c) => c.query('SELECT count(*) FROM invoices'));

    expect(await rotateToEnd(secretId)).toBe('completed');
    const clone = await current(secretId);
    expect(clone.username).toBe(`${base}_clone`);
    expect(original).toContain('postgres:work_mem=8MB');
    expect((await settingsOf(clone.username)).filter((x) => !x.startsWith('*:role='))).toEqual(
      original.filter((x) => !x.startsWith('*:role=')),
    );
    await asLogin(clone.username, clone.password, async (c) => {
      expect((await c.query('SHOW search_path')).rows[0].search_path).toBe(`${schema}, public`);
      expect((await c.query('SHOW work_mem')).rows[0].work_mem).toBe('8MB');
      await c.query('SELECT count(*) FROM invoices');
    });
    // A setting reset on the login in use since: the next rotation leaves it off the other login too.
    await withAdmin((admin) => admin.query(`ALTER ROLE ${q(clone.username)} RESET application_name`));
    // And back: the original login's settings are as they were, not copied back broken, less the one reset.
    expect(await rotateToEnd(secretId)).toBe('completed');
    expect(await settingsOf(base)).toEqual(original.filter((x) => !x.startsWith('*:application_name=')));
  });

  it('refuses, changing nothing, a testQuery that fails with AWSCURRENT too: the query is wrong, not the new login', async () => {
    const { secretId, base, versionId } = await loginWithOwnerModel('testquery', undefined, {
      testQuery: 'SELECT 1 FROM no_such_table',
    });
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome).toBe('failed');
    expect(outcome.outcome === 'failed' && outcome.message).toMatch(
      /failed at prepare: .*testQuery: fails with AWSCURRENT too \(42P01: relation "no_such_table" does not exist\); fix the query.*nothing was changed/,
    );
    expect(await labels(secretId)).toMatchObject({ current: versionId, versions: 1 });
    expect(await roleExists(`${base}_clone`)).toBe(false);
  });

  it('needs no setup: objects either login creates stay usable by the other over three round trips', async () => {
    // A login that owns a schema, as an application's login does; nobody ran any owner-role SQL.
    const base = uniqueName('rotor_alt_zero').replace(/-/g, '_');
    const password = `Init-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    passwords.add(password);
    await withAdmin(async (admin) => {
      await admin.query(`CREATE ROLE ${q(base)} LOGIN PASSWORD ${escapeLiteral(password)}`);
      await admin.query(`CREATE SCHEMA ${q(base)} AUTHORIZATION ${q(base)}`);
    });
    const secretId = uniqueName('it/alt-zero');
    await createSecret(secretId, pgSecret(base, password, { masterarn: masterId }));
    const t = (name: string) => `${q(base)}.${q(name)}`;
    await asLogin(base, password, (a) => a.query(`CREATE TABLE ${t('a0')} (id int)`));
    const made = ['a0'];
    for (let trip = 1; trip <= 3; trip++) {
      for (const side of ['b', 'a'] as const) {
        expect(await rotateToEnd(secretId)).toBe('completed');
        const now = await current(secretId);
        expect(now.username).toBe(side === 'b' ? `${base}_clone` : base);
        await asLogin(now.username, now.password, async (c) => {
          for (const name of made) {
            await c.query(`INSERT INTO ${t(name)} VALUES (${trip})`);
            await c.query(`SELECT count(*) FROM ${t(name)}`);
          }
          await c.query(`CREATE TABLE ${t(`${side}${trip}`)} (id int)`);
        });
        made.push(`${side}${trip}`);
      }
    }
    // Every table belongs to the original login, whichever login created it.
    const owners = await withAdmin(async (admin) =>
      (
        await admin.query<{ owner: string }>(
          'SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE schemaname = $1',
          [base],
        )
      ).rows.map((r) => r.owner),
    );
    expect(owners).toEqual([base]);

    // A grant to the original login, made after the clone existed, reaches the clone at once; its sessions still
    // show under its own name (session_user, pg_stat_activity), so live-session counting sees the right login.
    await withAdmin(async (admin) => {
      await admin.query(`CREATE TABLE ${q(`${base}_granted`)} (id int)`);
      await admin.query(`GRANT SELECT ON ${q(`${base}_granted`)} TO ${q(base)}`);
    });
    const clone = JSON.parse((await store.getByStage(secretId, 'AWSPREVIOUS'))!.value) as {
      username: string;
      password: string;
    };
    passwords.add(clone.password);
    expect(clone.username).toBe(`${base}_clone`);
    await asLogin(clone.username, clone.password, async (c) => {
      await expect(c.query(`SELECT * FROM ${q(`${base}_granted`)}`)).resolves.toBeDefined();
      const who = (await c.query('SELECT session_user AS s, current_user AS c')).rows[0];
      expect(who).toEqual({ s: clone.username, c: base });
      const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const seen = await withAdmin((admin) =>
        admin.query('SELECT usename FROM pg_stat_activity WHERE pid = $1', [pid]),
      );
      expect(seen.rows[0].usename).toBe(clone.username);
    });
  });

  it('refuses to use the admin secret when AWSCURRENT does not log in (confused-deputy guard)', async () => {
    const { secretId, base, versionId } = await loginWithOwnerModel('deputy');
    const outOfBand = `Oob-${Date.now()}`;
    passwords.add(outOfBand);
    await withAdmin((admin) => admin.query(`ALTER ROLE ${q(base)} PASSWORD ${escapeLiteral(outOfBand)}`));
    expect(await rotateToEnd(secretId)).toMatch(
      /failed: .*failed at prepare: .*AWSCURRENT does not log in .*rotor will not use the admin secret.*nothing was changed/,
    );
    expect(await roleExists(`${base}_clone`)).toBe(false);
    expect((await labels(secretId)).current).toBe(versionId);
  });

  it('compensates when the test step fails: AWSCURRENT stays the login it was', async () => {
    const { secretId, base, password, versionId } = await loginWithOwnerModel('fail-test');
    await rig.rotor.rotate(secretId, { graceMs: 0, maxStepAttempts: 2 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('failed');
    await remember(secretId);
    expect(await labels(secretId)).toEqual({ current: versionId, versions: 2 });
    expect(await logsIn(base, password)).toBe(true);
  });

  it('rolls back during grace: the previous login is AWSCURRENT again and logs in', async () => {
    const { secretId, base, password, versionId } = await loginWithOwnerModel('rollback');
    await rig.rotor.rotate(secretId, { graceMs: 10 * 60_000 });
    await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace');
    await rig.rotor.rollback(secretId, 'clone lacks a grant');
    expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
    await remember(secretId);
    expect((await labels(secretId)).current).toBe(versionId);
    expect(await logsIn(base, password)).toBe(true);
  });

  it('a worker killed with SIGKILL mid-rotation: a new worker finishes it', async () => {
    const { secretId, base } = await loginWithOwnerModel('hold-test');
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    await rig.killWhileHeld(secretId);
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    const now = await current(secretId);
    expect(now.username).toBe(`${base}_clone`);
    expect(await logsIn(now.username, now.password)).toBe(true);
  });

  it('refuses names too long to alternate, alternating without masterarn, and a missing admin secret', async () => {
    const longId = uniqueName('it/alt-long');
    await createSecret(longId, pgSecret('a'.repeat(58), 'x-unused-2', { masterarn: masterId }));
    expect(await rotateToEnd(longId)).toMatch(/username: too long to alternate .*nothing was changed/);

    const tagged = uniqueName('it/alt-tag');
    await createSecret(tagged, pgSecret('rotor_alt_tagged', 'x-unused-3'));
    await new SecretsManagerClient({}).send(
      new TagResourceCommand({ SecretId: tagged, Tags: [{ Key: 'rotor:strategy', Value: 'alternating-users' }] }),
    );
    expect(await rotateToEnd(tagged)).toMatch(/masterarn: is required for alternating users.*nothing was changed/);

    const { secretId } = await loginWithOwnerModel('nomaster');
    const v = (await store.getByStage(secretId, 'AWSCURRENT'))!;
    const orphan = uniqueName('it/alt-orphan');
    await createSecret(orphan, { ...JSON.parse(v.value), masterarn: uniqueName('it/no-such-master') });
    expect(await rotateToEnd(orphan)).toMatch(/failed at prepare: .*not found.*nothing was changed/);
    expect(await labels(orphan)).toMatchObject({ versions: 1 });
    expect((await labels(orphan)).pending).toBeUndefined();
  });

  describe('retirement of the previous login at grace end', () => {
    async function pairWithPolicy(marker: string, tags: Record<string, string>) {
      const pair = await loginWithOwnerModel(marker);
      await tagSecret(pair.secretId, tags);
      return pair;
    }

    async function rotation(secretId: string) {
      await rig.rotor.rotate(secretId, { graceMs: 0 });
      const outcome = await rig.rotor.wait(secretId);
      await remember(secretId);
      if (outcome.outcome !== 'completed') throw new Error(`rotation ${outcome.outcome}`);
      return outcome.result;
    }

    it('disables the previous login, and the next rotation brings it back', async () => {
      const { secretId, base, password } = await pairWithPolicy('disable', {
        'rotor:retire': 'disable-login',
        'rotor:live-sessions': 'proceed',
      });
      expect((await rotation(secretId)).retirement).toBe('disabled-login');
      expect(await logsIn(base, password)).toBe(false);
      const clone = await current(secretId);
      expect(await logsIn(clone.username, clone.password)).toBe(true);
      await rotation(secretId);
      const back = await current(secretId);
      expect(back.username).toBe(base);
      expect(await logsIn(base, back.password)).toBe(true);
      expect(await logsIn(clone.username, clone.password)).toBe(false);
    });

    it('replaces the previous password with one nobody holds', async () => {
      const { secretId, base, password } = await pairWithPolicy('scramble', { 'rotor:retire': 'scramble-password' });
      expect((await rotation(secretId)).retirement).toBe('scrambled-password');
      expect(await logsIn(base, password)).toBe(false);
    });

    it('waits for a live session of the previous login, visible in the status, and retires when it ends', async () => {
      const { secretId, base, password } = await pairWithPolicy('wait', {
        'rotor:retire': 'disable-login',
        'rotor:live-sessions-max-wait': '2m',
      });
      const held = await openSession(base, password);
      await rig.rotor.rotate(secretId, { graceMs: 0 });
      const waiting = await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'awaiting-sessions');
      expect(waiting.liveSessions).toBe(1);
      const description = await rig.rotor.client.workflow.getHandle(`rotor/rotate/${secretId}`).describe();
      expect(description.searchAttributes.RotorPhase).toEqual(['awaiting-sessions']);
      await held.end();
      const outcome = await rig.rotor.wait(secretId);
      await remember(secretId);
      expect(outcome.outcome === 'completed' && outcome.result.retirement).toBe('disabled-login');
      expect(await logsIn(base, password)).toBe(false);
    });

    it('says so in its result when the wait reaches its bound, and retires anyway', async () => {
      const { secretId, base, password } = await pairWithPolicy('bound', {
        'rotor:retire': 'disable-login',
        'rotor:live-sessions-max-wait': '3s',
      });
      const held = await openSession(base, password);
      try {
        expect((await rotation(secretId)).retirement).toBe('disabled-login; 1 live sessions left after waiting 3.0s');
        expect(await logsIn(base, password)).toBe(false);
      } finally {
        await held.end().catch(() => undefined);
      }
    });

    it('terminates the live sessions of the previous login when the policy says so', async () => {
      const { secretId, base, password } = await pairWithPolicy('terminate', {
        'rotor:retire': 'disable-login',
        'rotor:live-sessions': 'terminate',
      });
      const held = await openSession(base, password);
      held.on('error', () => undefined);
      expect((await rotation(secretId)).retirement).toBe('disabled-login; terminated 1 sessions');
      await expect(held.query('SELECT 1')).rejects.toThrow();
      expect(await logsIn(base, password)).toBe(false);
    });

    it('refuses a bad retirement tag before anything changes', async () => {
      const { secretId, versionId } = await pairWithPolicy('badtag', { 'rotor:retire': 'sometimes' });
      expect(await rotateToEnd(secretId)).toMatch(
        /tag rotor:retire: "sometimes" is not none, disable-login or scramble-password.*nothing was changed/,
      );
      expect(await labels(secretId)).toEqual({ current: versionId, versions: 1 });
    });
  });

  it('leaves no password, the admin password included, in histories or worker logs', async () => {
    const { text } = await historiesText(rig.rotor.client, taskQueue);
    const logs = WorkerProcess.allLogs.join('\n');
    expect(text).toContain('it/alt-happy');
    for (const password of passwords) {
      expect(text.includes(password)).toBe(false);
      expect(logs.includes(password)).toBe(false);
    }
  });
});
