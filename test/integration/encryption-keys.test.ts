import { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AwsSecretsManagerStore, Keyring, SecretCache } from 'rotor-consumers';
import {
  decryptWithKey,
  encryptWithKey,
  generateKeyringKey,
  KeyringError,
  parseCiphertext,
  type KeyringKey,
} from 'rotor-consumers/credentials';
import { AuditStore } from '../../packages/rotor/src/audit/audit-store';
import { RewrapClient } from '../../packages/rotor/src/client/rewrap-client';
import type { RewrapProgress } from '../../packages/rotor/src/shared/rewrap';
import { runCli } from '../helpers/cli';
import { stackEnv, uniqueName, until } from '../helpers/env';
import { expectNoPasswords, recordHistories } from '../helpers/hygiene';
import { useRegistryDatabase } from '../helpers/registry';
import { useWorkerRig } from '../helpers/rig';
import { createSecret, labels, store, waitForStatus } from '../helpers/stack';

/**
 * Encryption keyrings on the real stack: keyrings in Secrets Manager, ciphertexts in PostgreSQL tables, applications
 * on rotor-consumers' Keyring, rotated and re-wrapped by a `rotor worker` (SIGKILLed during the re-wrap).
 */
const rig = useWorkerRig('it-keys');
/** Every key's material and a sample of plaintexts, for the hygiene check. */
const values = new Set<string>();
const outputs: string[] = [];
/** Every keyring secret the tests made, for the audit trail's check. */
const keyrings: string[] = [];
const data = useRegistryDatabase('keys', values);
let app: Pool;
let rewraps: RewrapClient;

beforeAll(async () => {
  const url = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  url.pathname = `/${data.database}`;
  app = new Pool({ connectionString: url.toString(), application_name: 'app', max: 8 });
  rewraps = new RewrapClient(rig.rotor.client, rig.taskQueue);
});
afterAll(async () => {
  await app?.end();
});

const ad = (table: string, id: number) => `${table}/${id}/secret`;

/** A table of ciphertexts, and a log of every update rotor's login makes to it (application_name 'rotor'). */
async function createTable(table: string): Promise<void> {
  await app.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, secret text, version int NOT NULL DEFAULT 0)`);
  await app.query(`CREATE TABLE ${table}_rotor_writes (id bigint, old_key text, new_key text)`);
  await app.query(
    `CREATE FUNCTION ${table}_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
       INSERT INTO ${table}_rotor_writes VALUES (NEW.id, split_part(OLD.secret, '.', 3), split_part(NEW.secret, '.', 3));
       RETURN NEW; END $$`,
  );
  await app.query(
    `CREATE TRIGGER ${table}_log AFTER UPDATE ON ${table} FOR EACH ROW
       WHEN (current_setting('application_name') = 'rotor') EXECUTE FUNCTION ${table}_log()`,
  );
}

/** Inserts rows `from..to` encrypted under `key`, the plaintext `plain(id)`. */
async function fill(table: string, key: KeyringKey, from: number, to: number, plain: (id: number) => string) {
  for (let start = from; start <= to; start += 10_000) {
    const ids = Array.from({ length: Math.min(10_000, to - start + 1) }, (_, i) => start + i);
    await app.query(`INSERT INTO ${table} (id, secret) SELECT * FROM unnest($1::bigint[], $2::text[])`, [
      ids,
      ids.map((id) => encryptWithKey(key, plain(id), ad(table, id))),
    ]);
  }
}

/** A keyring secret with one primary key, its data the `table`'s `secret` column. */
async function createKeyring(marker: string, table: string | undefined, extra: object = {}) {
  const first = generateKeyringKey(`k0${marker.replace(/[^a-z0-9]/gi, '')}`, 'primary');
  values.add(first.material);
  const secretId = uniqueName(`it/keys-${marker}`);
  keyrings.push(secretId);
  await createSecret(secretId, {
    engine: 'encryption-keyring',
    readers: { refresh: '1s' },
    keys: [first],
    data: table
      ? [
          {
            database: data.registryId,
            table,
            primaryKey: 'id',
            column: 'secret',
            associatedData: `${table}/{id}/secret`,
          },
        ]
      : [],
    ...extra,
  });
  return { secretId, first };
}

/** The keyring AWSCURRENT holds now. */
async function keysNow(secretId: string): Promise<KeyringKey[]> {
  const keys = (JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as { keys: KeyringKey[] }).keys;
  for (const k of keys) values.add(k.material);
  return keys;
}

const remembered = (key: KeyringKey) => (values.add(key.material), key);
const stateOf = (keys: KeyringKey[], id: string) => keys.find((k) => k.id === id)?.state ?? 'absent';
const appKeyring = (secretId: string) =>
  new Keyring({ cache: new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 1000 }), secretId });

describe('encryption keyrings', () => {
  it('makes a new key readable before it encrypts, keeps it through a rollback, and refuses a grace readers cannot meet', async () => {
    await createTable('notes');
    const { secretId, first } = await createKeyring('rot', 'notes');
    await fill('notes', first, 1, 20, (id) => `note ${id}`);
    // An application writing new rows and reading them back through its Keyring, and a reader that read the
    // keyring once at start (the control).
    const writer = appKeyring(secretId);
    const reader = appKeyring(secretId);
    const frozen = new Map((await keysNow(secretId)).map((k) => [k.id, k]));
    const counts = { written: 0, failed: 0, frozenFailed: 0 };
    let next = 1000;
    let running = true;
    const traffic = (async () => {
      while (running) {
        const id = next++;
        const ciphertext = await writer.encrypt(`note ${id}`, ad('notes', id));
        await app.query('INSERT INTO notes (id, secret) VALUES ($1, $2)', [id, ciphertext]);
        counts.written++;
        const { rows } = await app.query<{ secret: string }>('SELECT secret FROM notes WHERE id = $1', [id]);
        try {
          expect((await reader.decrypt(rows[0]!.secret, ad('notes', id))).toString()).toBe(`note ${id}`);
        } catch {
          counts.failed++;
        }
        const parsed = parseCiphertext(rows[0]!.secret);
        const key = frozen.get(parsed.keyId);
        if (!key) counts.frozenFailed++;
        else decryptWithKey(key, parsed, ad('notes', id));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // What AWSCURRENT holds, as the rotation goes.
    const seen: string[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const keys = await keysNow(secretId);
        const line = keys.map((k) => `${k.id === first.id ? 'old' : 'new'}:${k.state}`).join(' ');
        if (seen.at(-1) !== line) seen.push(line);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      await rig.rotor.rotate(secretId, { graceMs: 60_000 });
      await waitForStatus(rig.rotor, secretId, (s) => s.phase === 'grace', 30_000);
      await new Promise((r) => setTimeout(r, 1500)); // rows under the new key, and readers past a refresh
      // The new key was readable (decrypt-only) while the old one still encrypted; then it became primary.
      expect(seen).toEqual(['old:primary', 'old:primary new:decrypt-only', 'old:decrypt-only new:primary']);
      const newKey = (await keysNow(secretId)).find((k) => k.id !== first.id)!;
      const { rows } = await app.query<{ n: string }>(
        "SELECT count(*) AS n FROM notes WHERE split_part(secret, '.', 3) = $1",
        [newKey.id],
      );
      expect(Number(rows[0]!.n)).toBeGreaterThan(0);

      // A rollback in grace: the old key is primary again, and the new one stays readable for the rows it made.
      await rig.rotor.rollback(secretId, 'test');
      expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
      const after = await keysNow(secretId);
      expect([stateOf(after, first.id), stateOf(after, newKey.id)]).toEqual(['primary', 'decrypt-only']);
      // AWSCURRENT went straight there: never back to a keyring without the new key.
      await until('the watcher to see the rollback', () => (seen.length > 3 ? true : undefined), 10_000);
      expect(seen.slice(3)).toEqual(['old:primary new:decrypt-only']);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      running = false;
      watching = false;
      await traffic;
      await watch;
    }
    expect(counts.written).toBeGreaterThan(50);
    expect(counts.failed).toBe(0);
    // The control: a reader that never looks again cannot read what the new key made.
    expect(counts.frozenFailed).toBeGreaterThan(0);
    const all = await app.query<{ id: string; secret: string }>('SELECT id, secret FROM notes');
    for (const row of all.rows)
      expect((await reader.decrypt(row.secret, ad('notes', Number(row.id)))).toString()).toBe(`note ${row.id}`);

    // A grace shorter than twice readers.refresh is refused before anything changes.
    const versions = (await labels(secretId)).versions;
    await rig.rotor.rotate(secretId, { graceMs: 1500 });
    const refused = await rig.rotor.wait(secretId);
    expect(refused.outcome).toBe('failed');
    if (refused.outcome === 'failed')
      expect(refused.message).toContain('grace 1.5s is shorter than twice readers.refresh (2.0s)');
    expect((await labels(secretId)).versions).toBe(versions);
  });

  it('disables a key only when no row uses it, and removes it after retention.removeAfter', async () => {
    await createTable('empty_table');
    const { secretId, first } = await createKeyring('retire', 'empty_table', { retention: { removeAfter: '1s' } });
    await rig.rotor.rotate(secretId, { graceMs: 2000 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    // No row under the old key: retired at the end of grace.
    const retired = await keysNow(secretId);
    expect(stateOf(retired, first.id)).toBe('disabled');
    expect(retired.find((k) => k.id === first.id)!.disabledAt).toBeDefined();
    await new Promise((r) => setTimeout(r, 1000));
    await rig.rotor.rotate(secretId, { graceMs: 2000 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    const keys = await keysNow(secretId);
    expect(stateOf(keys, first.id)).toBe('absent');
    expect(keys.map((k) => k.state).sort()).toEqual(['disabled', 'primary']);

    // Invalid data declarations are refused naming the field, before anything changes.
    const hostile = uniqueName('it/keys-hostile');
    await createSecret(hostile, {
      engine: 'encryption-keyring',
      readers: { refresh: '1s' },
      keys: [remembered(generateKeyringKey('h1', 'primary'))],
      data: [
        {
          database: data.registryId,
          table: 'items; DROP TABLE notes',
          primaryKey: 'id',
          column: 'secret',
          associatedData: 'x/{id}',
        },
      ],
    });
    const check = await rig.rotor.check(hostile, undefined, 5000);
    expect(check.ok).toBe(false);
    expect(JSON.stringify(check.checks)).toContain('data.0.table: must be a table name');
    const missing = uniqueName('it/keys-missing');
    await createSecret(missing, {
      engine: 'encryption-keyring',
      readers: { refresh: '1s' },
      keys: [remembered(generateKeyringKey('m1', 'primary'))],
      data: [{ database: data.registryId, table: 'no_such', primaryKey: 'id', column: 'c', associatedData: '{id}' }],
    });
    const absent = await rig.rotor.check(missing, undefined, 5000);
    expect(absent.ok).toBe(false);
    expect(JSON.stringify(absent.checks)).toContain('data table no_such does not exist');
  });

  it('re-wraps refusing tampered rows, naming them, and leaves their key in place; a re-wrap cancelled in its wait changes nothing', async () => {
    await createTable('tampered');
    const { secretId, first } = await createKeyring('tamper', 'tampered');
    await fill('tampered', first, 1, 8, (id) => `value ${id}`);
    const stranger = generateKeyringKey('stranger', 'primary');
    values.add(stranger.material);
    const original = new Map(
      (await app.query<{ id: string; secret: string }>('SELECT id, secret FROM tampered')).rows.map((r) => [
        Number(r.id),
        r.secret,
      ]),
    );
    const flip = (c: string) => {
      const at = c.length - 10;
      return `${c.slice(0, at)}${c[at] === 'A' ? 'B' : 'A'}${c.slice(at + 1)}`;
    };
    const planted = new Map<number, string>();
    const set = (id: number, secret: string) => {
      planted.set(id, secret);
      return app.query('UPDATE tampered SET secret = $1 WHERE id = $2', [secret, id]);
    };
    await set(2, flip(original.get(2)!)); // a flipped byte
    await set(3, original.get(4)!); // another row's ciphertext
    await set(5, encryptWithKey(stranger, 'value 5', ad('tampered', 5))); // a key the keyring does not have
    await set(6, original.get(6)!.slice(0, -20)); // truncated
    await set(7, 'not a ciphertext');
    const reader = appKeyring(secretId);
    const reasons: Record<number, string> = {};
    for (const id of [2, 3, 5, 6, 7]) {
      const { rows } = await app.query<{ secret: string }>('SELECT secret FROM tampered WHERE id = $1', [id]);
      reasons[id] = await reader.decrypt(rows[0]!.secret, ad('tampered', id)).then(
        () => 'decrypted',
        (e: KeyringError) => e.reason,
      );
    }
    expect(reasons).toEqual({ 2: 'tampered', 3: 'tampered', 5: 'unknown-key', 6: 'malformed', 7: 'malformed' });

    // Cancelled during its wait for readers: no row written.
    await rig.rotor.rotate(secretId, { graceMs: 2000 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    await rewraps.start({ secretId });
    const cancelled = await runCli(rig.taskQueue, ['rewrap', 'cancel', secretId], {}, outputs);
    expect(cancelled.code).toBe(0);
    expect((await rewraps.wait(secretId)).phase).toBe('cancelled');
    expect(Number((await app.query('SELECT count(*) AS n FROM tampered_rotor_writes')).rows[0].n)).toBe(0);
    expect((await rewraps.progress(secretId))!.scanned).toBe(0);
    // Once it has ended, a request is refused, naming why.
    const late = await runCli(rig.taskQueue, ['rewrap', 'pause', secretId], {}, outputs);
    expect(late.code).toBe(3);
    expect(late.stderr).toContain('no re-wrap is running');

    const started = await runCli(rig.taskQueue, ['rewrap', 'start', secretId, '--wait'], {}, outputs);
    expect(started.code).toBe(0);
    const result = (await rewraps.progress(secretId))!;
    expect(result).toMatchObject({ phase: 'done', refused: { tampered: 2, 'unknown-key': 1, malformed: 2 } });
    expect(result.refusedKeys.slice().sort()).toEqual(['2', '3', '5', '6', '7']);
    // The good rows moved; the refused ones are as they were; the old key still protects rows, so it stays.
    const { rows } = await app.query<{ id: string; secret: string }>('SELECT id, secret FROM tampered ORDER BY id');
    const primary = (await keysNow(secretId)).find((k) => k.state === 'primary')!;
    for (const row of rows) {
      const id = Number(row.id);
      if ([1, 4, 8].includes(id)) {
        expect(parseCiphertext(row.secret).keyId).toBe(primary.id);
        expect((await reader.decrypt(row.secret, ad('tampered', id))).toString()).toBe(`value ${id}`);
      } else expect(row.secret).toBe(planted.get(id));
    }
    expect(stateOf(await keysNow(secretId), first.id)).toBe('decrypt-only');
    expect(result.outcome).toBe('kept-1-keys-with-rows');
    expect(started.stdout).toContain('re-wrapped under');
  });

  it('re-wraps 100,000 rows under live traffic through three SIGKILLs: 0 failed reads, 0 lost updates, nothing written twice, the old key disabled last', async () => {
    const ROWS = 100_000;
    await createTable('items');
    const { secretId, first } = await createKeyring('proof', 'items');
    const plain = (id: number) => `personal-data-${id}`;
    await fill('items', first, 1, ROWS, plain);
    await rig.rotor.rotate(secretId, { graceMs: 2000 });
    expect((await rig.rotor.wait(secretId)).outcome).toBe('completed');
    expect(stateOf(await keysNow(secretId), first.id)).toBe('decrypt-only');

    // The application: reads random rows, and updates some (optimistic, on its version column).
    const keyring = appKeyring(secretId);
    const expected = new Map<number, string>();
    const counts = { reads: 0, failedReads: 0, updates: 0 };
    let running = true;
    const appLoop = async (lane: number) => {
      let n = 0;
      while (running) {
        // Each lane its own rows (id ≡ lane mod 4): what a lane expects is never another lane's write in flight.
        const id = 1 + lane + 4 * Math.floor((Math.random() * (ROWS - lane)) / 4);
        const { rows } = await app.query<{ secret: string; version: number }>(
          'SELECT secret, version FROM items WHERE id = $1',
          [id],
        );
        try {
          const value = (await keyring.decrypt(rows[0]!.secret, ad('items', id))).toString();
          expect(value).toBe(expected.get(id) ?? plain(id));
          counts.reads++;
        } catch {
          counts.failedReads++;
        }
        if (n++ % 2 === 0) {
          const value = `updated-${id}-${lane}-${n}`;
          const { rowCount } = await app.query(
            'UPDATE items SET secret = $1, version = version + 1 WHERE id = $2 AND version = $3',
            [await keyring.encrypt(value, ad('items', id)), id, rows[0]!.version],
          );
          if (rowCount === 1) {
            expected.set(id, value);
            counts.updates++;
          }
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const lanes = [0, 1, 2, 3].map(appLoop);
    let progress: RewrapProgress | undefined;
    try {
      const start = await runCli(
        rig.taskQueue,
        ['rewrap', 'start', secretId, '--batch', '500', '--rate', '50000'],
        {},
        outputs,
      );
      expect(start.code).toBe(0);
      const progressed = (rows: number) =>
        until(
          `${rows} rows re-wrapped`,
          async () => {
            const p = await rewraps.progress(secretId).catch(() => undefined);
            return p && p.rewrapped >= rows ? p : undefined;
          },
          120_000,
        );
      for (const [i, at] of [15_000, 40_000, 65_000].entries()) {
        await progressed(at);
        // Until the re-wrap's final count, the old key still decrypts.
        expect(stateOf(await keysNow(secretId), first.id)).toBe('decrypt-only');
        await rig.killAndRestart();
        if (i === 0) {
          // Paused, it reads no more rows until resumed.
          expect((await runCli(rig.taskQueue, ['rewrap', 'pause', secretId], {}, outputs)).code).toBe(0);
          const paused = await until('paused', async () => {
            const p = await rewraps.progress(secretId).catch(() => undefined);
            return p?.phase === 'paused' ? p : undefined;
          });
          await new Promise((r) => setTimeout(r, 1000));
          expect((await rewraps.progress(secretId))!.scanned).toBe(paused.scanned);
          expect((await runCli(rig.taskQueue, ['rewrap', 'resume', secretId], {}, outputs)).code).toBe(0);
        }
      }
      progress = await rewraps.wait(secretId);
    } finally {
      running = false;
      await Promise.all(lanes);
    }
    expect(progress.phase).toBe('done');
    expect(progress.run).toBeGreaterThan(1); // continued as new: the history stays bounded
    expect(progress.disabled).toEqual([first.id]);
    const keys = await keysNow(secretId);
    const primary = keys.find((k) => k.state === 'primary')!;
    expect(progress.rowsAfter).toEqual({ [primary.id]: ROWS });
    expect(stateOf(keys, first.id)).toBe('disabled');

    // The application saw no failure and lost no update; every row holds what it should, under the primary.
    expect(counts.reads).toBeGreaterThan(500);
    expect(counts.updates).toBeGreaterThan(200);
    expect(counts.failedReads).toBe(0);
    const { rows } = await app.query<{ id: string; secret: string }>('SELECT id, secret FROM items');
    let wrong = 0;
    for (const row of rows) {
      const id = Number(row.id);
      const parsed = parseCiphertext(row.secret);
      if (parsed.keyId !== primary.id) wrong++;
      else if (decryptWithKey(primary, parsed, ad('items', id)).toString() !== (expected.get(id) ?? plain(id))) wrong++;
    }
    expect(rows).toHaveLength(ROWS);
    expect(wrong).toBe(0);
    // rotor wrote each row at most once, old key to primary, and at least as many as the workflow counted (a batch
    // whose worker died after its swap is counted by no run).
    const writes = await app.query<{ id: string; n: string; old_key: string; new_key: string }>(
      'SELECT id, count(*) AS n, min(old_key) AS old_key, max(new_key) AS new_key FROM items_rotor_writes GROUP BY id',
    );
    expect(progress.rewrapped).toBeGreaterThan(ROWS / 2);
    expect(writes.rows.length).toBeGreaterThanOrEqual(progress.rewrapped);
    expect(writes.rows.filter((w) => Number(w.n) > 1)).toEqual([]);
    expect(writes.rows.filter((w) => w.old_key !== first.id || w.new_key !== primary.id)).toEqual([]);
    // Rows rotor moved plus rows the application rewrote first: all of them.
    const appMoved = [...expected.keys()].length;
    expect(writes.rows.length + appMoved).toBeGreaterThanOrEqual(ROWS);

    const status = await runCli(rig.taskQueue, ['status', secretId, '--keys'], {}, outputs);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`${first.id}\\s+disabled\\s+\\S+\\s+0`));
    expect(status.stdout).toMatch(new RegExp(`${primary.id}\\s+primary\\s+\\S+\\s+${ROWS}`));
    for (const id of [1, 2, 3, 50_000]) values.add(plain(id));
  }, 300_000);

  it('puts no key material or plaintext in any history, worker log, audit row or CLI output', async () => {
    await recordHistories(rig.rotor.client, rig.taskQueue, ['it/keys-rot', 'it/keys-tamper', 'it/keys-proof']);
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, values, 'rewrapKeyring', outputs);
    // The audit trail (the worker's ROTOR_AUDIT_URL): rotations and re-wraps recorded, key ids and counts only.
    const audit = await AuditStore.connect(stackEnv('ROTOR_AUDIT_URL'));
    try {
      const rows = JSON.stringify(await Promise.all(keyrings.map((id) => audit.history(id))));
      expect(rows).toContain('rewrap-ended');
      expect(rows).toContain('staged-1-keys-decrypt-only');
      for (const value of values) expect(rows.includes(value), 'a key or a plaintext in the audit trail').toBe(false);
    } finally {
      await audit.close();
    }
  });
});
