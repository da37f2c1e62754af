import { RewrapClient } from '../../client/rewrap-client';
import type { RewrapProgress } from '../../shared/rewrap';
import { ExitCode } from '../exit-codes';
import { operator, out, outJson, rotationClient, statusLine } from '../context';
import { renderTable } from '../render';

export interface RewrapOptions {
  batch?: string;
  rate?: string;
  passes?: string;
  wait?: boolean;
  json?: boolean;
}

async function rewrapClient(): Promise<RewrapClient> {
  const rotor = await rotationClient();
  return new RewrapClient(rotor.client, rotor.taskQueue);
}

const whole = (text: string | undefined) => (text === undefined ? undefined : Number(text));

/** One line of a re-wrap's progress: counts and key ids only. */
export function rewrapLine(p: RewrapProgress): string {
  const refused = Object.entries(p.refused).reduce((sum, [, n]) => sum + (n ?? 0), 0);
  const where = p.tables.length > 1 ? ` table ${Math.min(p.table + 1, p.tables.length)}/${p.tables.length}` : '';
  return (
    `${p.secretId}: ${p.phase}${p.outcome && p.outcome !== p.phase ? ` (${p.outcome})` : ''}, pass ${p.pass}${where}, ` +
    `${p.rewrapped} re-wrapped under ${p.primaryId ?? '-'}, ${p.changedMeanwhile} changed meanwhile, ${refused} refused`
  );
}

function rowsTable(rows: Record<string, number>): string {
  return renderTable(
    ['KEY', 'ROWS'],
    Object.entries(rows).map(([id, n]) => [id || '(not rotor ciphertexts)', String(n)]),
  );
}

/** `rotor rewrap <secretId>`: starts (or joins) the keyring's re-wrap; `--wait` follows it to its end. */
export async function rewrapStartCommand(secretId: string, opts: RewrapOptions): Promise<number> {
  const client = await rewrapClient();
  const run = await client.start({
    secretId,
    actor: operator(),
    ...(opts.batch !== undefined ? { batchSize: whole(opts.batch)! } : {}),
    ...(opts.rate !== undefined ? { ratePerSecond: whole(opts.rate)! } : {}),
    ...(opts.passes !== undefined ? { maxPasses: whole(opts.passes)! } : {}),
  });
  if (!opts.wait) {
    out(
      opts.json
        ? JSON.stringify(run)
        : `re-wrap of ${secretId} ${run.started ? 'started' : 'already running'} (run ${run.runId})`,
    );
    return ExitCode.ok;
  }
  const line = statusLine(Boolean(opts.json));
  const result = await client.wait(secretId, (p) => line(rewrapLine(p)));
  line(undefined);
  if (opts.json) outJson(result);
  else {
    out(rewrapLine(result));
    if (result.rowsAfter) out(rowsTable(result.rowsAfter));
    if (result.disabled?.length) out(`disabled: ${result.disabled.join(', ')}`);
  }
  return result.phase === 'done' ? ExitCode.ok : ExitCode.rotationNotCompleted;
}

/** `rotor rewrap status|pause|resume|cancel <secretId>`. */
export async function rewrapControlCommand(
  action: 'status' | 'pause' | 'resume' | 'cancel',
  secretId: string,
  opts: { json?: boolean },
): Promise<number> {
  const client = await rewrapClient();
  const progress = action === 'status' ? await client.progress(secretId) : await client[action](secretId, operator());
  if (!progress) {
    out(opts.json ? 'null' : `${secretId}: no re-wrap ever ran`);
    return ExitCode.ok;
  }
  if (opts.json) outJson(progress);
  else out(rewrapLine(progress));
  return ExitCode.ok;
}

/** `rotor status <secretId> --keys`: a keyring's keys and the rows each protects now (counted on a worker). */
export async function keyringKeysCommand(secretId: string, opts: { json?: boolean }): Promise<number> {
  const client = await rewrapClient();
  const { keys, rows } = await client.keys(secretId);
  if (opts.json) {
    outJson(keys.map((k) => ({ ...k, rows: rows[k.id] ?? 0 })));
    return ExitCode.ok;
  }
  const unknown = Object.entries(rows).filter(([id]) => !keys.some((k) => k.id === id));
  out(
    renderTable(
      ['KEY', 'STATE', 'CREATED', 'ROWS'],
      [
        ...keys.map((k) => [k.id, k.state, k.createdAt, String(rows[k.id] ?? 0)]),
        ...unknown.map(([id, n]) => [id || '(not rotor ciphertexts)', 'not in the keyring', '-', String(n)]),
      ],
    ),
  );
  return ExitCode.ok;
}
