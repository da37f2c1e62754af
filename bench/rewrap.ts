/**
 * A keyring's re-wrap, three ways over the same rows (N rows of a PostgreSQL table, one ciphertext column):
 * - rotor: `rotor rewrap` on a worker process (a durable workflow: pages, decrypt-check-encrypt, a compare-and-swap
 *   per page, a checkpoint per page), its rate limit off; the worker's peak memory (VmHWM);
 * - a direct loop: the same pages, decryptions and compare-and-swaps in this one process, no Temporal;
 * - OpenBao transit: its batch rewrap (`transit/rewrap/<key>`, 1,000 ciphertexts a call) of the same plaintexts
 *   encrypted by transit, with the same pages and compare-and-swaps around it.
 * The figure is rows per second of each, and rotor's beside the direct loop (a ratio).
 */
import { readFileSync } from 'node:fs';
import { escapeIdentifier, Pool } from 'pg';
import {
  associatedDataFor,
  decryptWithKey,
  encryptWithKey,
  generateKeyringKey,
  parseCiphertext,
  type KeyringKey,
} from 'rotor-consumers/credentials';
import { RewrapClient } from '../packages/rotor/src/client/rewrap-client';
import { pageNotUnder, prepareTable, swapCiphertexts } from '../packages/rotor/src/rotators/keyring/data';
import { stackEnv, uniqueName } from '../test/helpers/env';
import { baoAdmin } from '../test/helpers/openbao';
import { workerWithConfig } from '../test/helpers/ops';
import { createSecret, pgSecret, withAdmin } from '../test/helpers/stack';

const BATCH = Number(process.env.ROTOR_BENCH_REWRAP_BATCH ?? 1000);
/** OpenBao refuses a request of more than about 1,000 JSON strings: transit calls take 250 ciphertexts. */
const TRANSIT_CALL = 250;

export interface RewrapBench {
  rows: number;
  batch: number;
  rotor: { rowsPerSecond: number; ms: number; idleWorkerRssMiB: number; peakWorkerRssMiB: number };
  direct: { rowsPerSecond: number; ms: number };
  transit: { rowsPerSecond: number; ms: number } | { skipped: string };
  /** rotor's rows per second over the direct loop's. */
  ratio: number;
}

const perSecond = (rows: number, ms: number) => Math.round((rows / ms) * 1000);

async function fill(pool: Pool, table: string, rows: number, ciphertext: (id: number) => string): Promise<void> {
  await pool.query(`CREATE TABLE ${escapeIdentifier(table)} (id bigint PRIMARY KEY, secret text)`);
  for (let start = 1; start <= rows; start += 10_000) {
    const ids = Array.from({ length: Math.min(10_000, rows - start + 1) }, (_, i) => start + i);
    await pool.query(`INSERT INTO ${escapeIdentifier(table)} SELECT * FROM unnest($1::bigint[], $2::text[])`, [
      ids,
      ids.map(ciphertext),
    ]);
  }
}

/** The peak resident memory of a process, in MiB (Linux). */
const peakRssMiB = (pid: number) =>
  Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);

export async function benchRewrap(rows: number): Promise<RewrapBench> {
  const database = uniqueName('bench_rewrap')
    .replace(/[^a-z0-9_]/gi, '_')
    .toLowerCase();
  await withAdmin((a) => a.query(`CREATE DATABASE ${escapeIdentifier(database)}`));
  const admin = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  const url = new URL(admin);
  url.pathname = `/${database}`;
  const pool = new Pool({ connectionString: url.toString(), max: 2 });
  const dataId = uniqueName('bench/rewrap-db');
  await createSecret(
    dataId,
    pgSecret(decodeURIComponent(admin.username), decodeURIComponent(admin.password), { dbname: database }),
  );
  const plain = (id: number) => `personal-data-${id}`;
  const ad = (table: string, id: number) => `${table}/${id}/secret`;
  const old = generateKeyringKey('k0', 'decrypt-only');
  const primary = generateKeyringKey('k1', 'primary');
  const spec = (table: string) => ({
    database: dataId,
    table,
    primaryKey: 'id',
    column: 'secret',
    associatedData: `${table}/{id}/secret`,
  });
  try {
    // rotor: a keyring whose primary is k1, its table under k0.
    await fill(pool, 'rotor_rows', rows, (id) => encryptWithKey(old, plain(id), ad('rotor_rows', id)));
    const secretId = uniqueName('bench/keyring');
    await createSecret(secretId, {
      engine: 'encryption-keyring',
      readers: { refresh: '1s' },
      keys: [old, primary],
      data: [spec('rotor_rows')],
    });
    const taskQueue = uniqueName('bench-rewrap');
    const rig = await workerWithConfig(taskQueue, `secrets:\n  - id: ${secretId}\n    schedule: { every: 30d }\n`, {});
    let rotor: RewrapBench['rotor'];
    try {
      const client = new RewrapClient(rig.rotor.client, taskQueue);
      const idle = peakRssMiB(rig.worker.pid);
      await client.start({ secretId, batchSize: BATCH, ratePerSecond: 1_000_000 });
      const result = await client.wait(secretId, undefined, 100);
      if (result.phase !== 'done' || result.rewrapped !== rows)
        throw new Error(`the re-wrap ended ${result.phase} with ${result.rewrapped} of ${rows} rows`);
      // From its first page to its end (not the wait for readers it makes before the first page).
      const ms = Date.parse(result.endedAt!) - Date.parse(result.rewrapStartedAt!);
      rotor = {
        rowsPerSecond: perSecond(rows, ms),
        ms,
        idleWorkerRssMiB: idle,
        peakWorkerRssMiB: peakRssMiB(rig.worker.pid),
      };
    } finally {
      await rig.stop();
    }

    // The direct loop: the same SQL and the same checks, in this process.
    await fill(pool, 'direct_rows', rows, (id) => encryptWithKey(old, plain(id), ad('direct_rows', id)));
    const client = await pool.connect();
    let direct: RewrapBench['direct'];
    try {
      const table = await prepareTable(client, 'bench', spec('direct_rows'));
      const keys = new Map<string, KeyringKey>([
        [old.id, old],
        [primary.id, primary],
      ]);
      const began = performance.now();
      let after: string | undefined;
      for (;;) {
        const page = await pageNotUnder(client, table, primary.id, after, BATCH);
        const swaps = page.map((row) => {
          const parsed = parseCiphertext(row.ciphertext);
          const data = associatedDataFor(table.spec.associatedData, row.row);
          const value = decryptWithKey(keys.get(parsed.keyId)!, parsed, data);
          const next = encryptWithKey(primary, value, data);
          if (!decryptWithKey(primary, parseCiphertext(next), data).equals(value)) throw new Error('check failed');
          return { key: row.key, old: row.ciphertext, next };
        });
        await swapCiphertexts(client, table, swaps);
        if (page.length < BATCH) break;
        after = page.at(-1)!.key;
      }
      const ms = Math.round(performance.now() - began);
      direct = { rowsPerSecond: perSecond(rows, ms), ms };
    } finally {
      client.release();
    }

    // OpenBao transit: batch rewrap of transit ciphertexts, with the same pages and compare-and-swaps.
    let transit: RewrapBench['transit'];
    try {
      await baoAdmin('POST', 'sys/mounts/transit', { type: 'transit' }).catch(() => undefined);
      const key = uniqueName('bench-rewrap');
      await baoAdmin('POST', `transit/keys/${key}`, { type: 'aes256-gcm96' });
      const encrypted: string[] = [];
      for (let start = 1; start <= rows; start += TRANSIT_CALL) {
        const ids = Array.from({ length: Math.min(TRANSIT_CALL, rows - start + 1) }, (_, i) => start + i);
        const { data } = await baoAdmin('POST', `transit/encrypt/${key}`, {
          batch_input: ids.map((id) => ({ plaintext: Buffer.from(plain(id)).toString('base64') })),
        });
        for (const r of data.batch_results as { ciphertext: string }[]) encrypted.push(r.ciphertext);
      }
      await fill(pool, 'transit_rows', rows, (id) => encrypted[id - 1]!);
      await baoAdmin('POST', `transit/keys/${key}/rotate`, {});
      const c = await pool.connect();
      try {
        const table = await prepareTable(c, 'bench', spec('transit_rows'));
        const began = performance.now();
        let after: string | undefined;
        for (;;) {
          const page = (
            await c.query<{ k: string; ct: string }>(
              `SELECT id::text AS k, secret AS ct FROM transit_rows WHERE secret NOT LIKE 'vault:v2:%' ${after ? 'AND id > $2' : ''} ORDER BY id LIMIT $1`,
              after ? [BATCH, after] : [BATCH],
            )
          ).rows;
          if (page.length === 0) break;
          const results: { ciphertext: string }[] = [];
          for (let i = 0; i < page.length; i += TRANSIT_CALL) {
            const { data } = await baoAdmin('POST', `transit/rewrap/${key}`, {
              batch_input: page.slice(i, i + TRANSIT_CALL).map((r) => ({ ciphertext: r.ct })),
            });
            results.push(...(data.batch_results as { ciphertext: string }[]));
          }
          await swapCiphertexts(
            c,
            table,
            page.map((r, i) => ({ key: r.k, old: r.ct, next: results[i]!.ciphertext })),
          );
          if (page.length < BATCH) break;
          after = page.at(-1)!.k;
        }
        const ms = Math.round(performance.now() - began);
        transit = { rowsPerSecond: perSecond(rows, ms), ms };
      } finally {
        c.release();
      }
    } catch (error) {
      transit = { skipped: (error as Error).message };
    }
    return {
      rows,
      batch: BATCH,
      rotor,
      direct,
      transit,
      ratio: Number((rotor.rowsPerSecond / direct.rowsPerSecond).toFixed(2)),
    };
  } finally {
    await pool.end();
  }
}
