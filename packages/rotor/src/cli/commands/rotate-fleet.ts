import { formatDuration, InvalidInputError, parseDuration } from 'rotor-consumers/core';
import { loadConfig } from '../../config/rotor-config';
import type { ManagedSecret, RotorConfig } from '../../config/types';
import { rotationInputFor } from '../../schedules/plan';
import type { RotationInput } from '../../shared/rotation';
import { mapLimit } from '../../client/concurrency';
import { ExitCode } from '../exit-codes';
import { bakeUnlessIncident } from './rotate';
import { configFile, operator, out, outJson, rotationClient, statusLine } from '../context';

/** The most rotations `rotor rotate` runs at once over a fleet, whatever --concurrency says. */
const MAX_CONCURRENCY = 200;

export interface FleetOptions {
  file?: string;
  all?: boolean;
  prefix?: string;
  tag?: string;
  grace?: string;
  bake?: boolean;
  concurrency?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** How one secret of the fleet ended. */
export interface FleetRow {
  secretId: string;
  /** `switched`: the new credential is current and the rotation waits out its grace (or retires the previous one). */
  outcome: 'switched' | 'completed' | 'rolled-back' | 'failed' | 'skipped';
  /** Why it failed or was skipped; the current version when it completed. */
  detail: string;
}

/** The secrets of rotor.yaml the options select: all, those under a prefix of whole path segments, or with a tag. */
export function selectFleet(config: RotorConfig, opts: Pick<FleetOptions, 'all' | 'prefix' | 'tag'>): ManagedSecret[] {
  const chosen = [opts.all, opts.prefix, opts.tag].filter((x) => x !== undefined && x !== false).length;
  if (chosen !== 1)
    throw new InvalidInputError('choose the fleet with exactly one of --all, --prefix <p> or --tag <t>');
  const prefix = opts.prefix === undefined ? undefined : opts.prefix.replace(/\/?$/, '/');
  return config.secrets.filter(
    (s) =>
      opts.all === true ||
      (prefix !== undefined && s.id.startsWith(prefix)) ||
      (opts.tag !== undefined && (s.tags ?? []).includes(opts.tag)),
  );
}

/**
 * The default number of rotations in flight: the store-write ceiling (fleet-wide when set, else a worker's), each
 * rotation writing a few times in a few seconds, so the ceiling, not the CLI, paces the store.
 */
export function fleetConcurrency(config: RotorConfig, given: string | undefined): number {
  if (given !== undefined) {
    const n = Number(given);
    if (!Number.isInteger(n) || n < 1 || n > MAX_CONCURRENCY)
      throw new InvalidInputError(
        `--concurrency: ${JSON.stringify(given)} is not a whole number from 1 to ${MAX_CONCURRENCY}`,
      );
    return n;
  }
  return Math.min(
    MAX_CONCURRENCY,
    config.throughput.fleetStoreWritesPerSecond ?? config.throughput.storeWritesPerSecond,
  );
}

/**
 * `rotor rotate --all | --prefix <p> | --tag <t> -f rotor.yaml`: rotates a fleet now (an incident: a breach means
 * rotating everything, and the time it takes is what matters). Each secret with its rotor.yaml settings, `--grace`
 * winning; `--no-bake` (or a grace shorter than the bake window) rotates without automatic rollback. At most
 * `--concurrency` rotations run at once, each until its new credential is current (`switched`: in grace, the
 * previous one still working) or it ended, never through its grace. A secret already rotating is skipped, not
 * joined. A progress line on a terminal, then one row per secret; exits 1 when any did not switch. `--dry-run` lists
 * what would rotate.
 */
export async function rotateFleetCommand(opts: FleetOptions): Promise<number> {
  const file = configFile(opts.file);
  const config = await loadConfig(file);
  const fleet = selectFleet(config, opts);
  if (fleet.length === 0)
    throw new InvalidInputError(
      `no secret of ${file} matches ${opts.all ? '--all' : opts.prefix !== undefined ? `--prefix ${opts.prefix}` : `--tag ${opts.tag}`}`,
    );
  const graceOverride = opts.grace === undefined ? undefined : parseDuration(opts.grace, '--grace');
  const concurrency = fleetConcurrency(config, opts.concurrency);
  const inputs = fleet.map((secret): RotationInput => {
    const { bake, ...input } = rotationInputFor(secret, config);
    const graceMs = graceOverride ?? input.graceMs;
    return {
      ...input,
      ...bakeUnlessIncident(bake, graceMs, opts.bake),
      graceMs,
      trigger: { kind: 'cli', by: operator() },
    };
  });

  if (opts.dryRun) {
    if (opts.json)
      outJson(inputs.map((i) => ({ secretId: i.secretId, graceMs: i.graceMs, bake: i.bake !== undefined })));
    else {
      for (const i of inputs)
        out(`would rotate ${i.secretId}  grace ${formatDuration(i.graceMs)}${i.bake ? ', bakes' : ', no bake'}`);
      out(`${inputs.length} secrets would rotate, ${concurrency} at a time`);
    }
    return ExitCode.ok;
  }

  const rotor = await rotationClient();
  const started = Date.now();
  const counts = { completed: 0, failed: 0, skipped: 0, running: 0 };
  const line = statusLine(opts.json === true);
  const show = () =>
    line(
      `${counts.completed + counts.failed + counts.skipped}/${inputs.length} done · ${counts.running} running · ` +
        `${counts.failed} failed · ${counts.skipped} skipped · ${formatDuration(Date.now() - started)}`,
    );
  const rows = await mapLimit(inputs, concurrency, async ({ secretId, ...input }): Promise<FleetRow> => {
    counts.running++;
    show();
    try {
      const run = await rotor.rotate(secretId, input);
      if (!run.started) {
        counts.skipped++;
        return { secretId, outcome: 'skipped', detail: 'already rotating' };
      }
      // Done for the incident once the new credential is current: the grace that follows is the rotation's own.
      const outcome = await rotor.waitForSwitch(secretId);
      if (outcome.outcome === 'switched') {
        counts.completed++;
        const { versions, graceEndsAt } = outcome.status;
        return {
          secretId,
          outcome: 'switched',
          detail: `version ${versions.current ?? outcome.status.token} is AWSCURRENT, in grace until ${graceEndsAt ?? 'retirement'}`,
        };
      }
      if (outcome.outcome === 'completed') {
        counts.completed++;
        return { secretId, outcome: 'completed', detail: `version ${outcome.result.currentVersionId} is AWSCURRENT` };
      }
      counts.failed++;
      return outcome.outcome === 'failed'
        ? { secretId, outcome: 'failed', detail: outcome.message }
        : { secretId, outcome: 'rolled-back', detail: outcome.result.status.rollbackReason ?? 'rolled back' };
    } catch (error) {
      counts.failed++;
      return { secretId, outcome: 'failed', detail: (error as Error).message };
    } finally {
      counts.running--;
      show();
    }
  });
  line(undefined);
  if (opts.json) outJson({ rows, elapsedMs: Date.now() - started });
  else {
    const width = Math.max(...rows.map((r) => r.secretId.length));
    for (const r of rows) out(`${r.secretId.padEnd(width)}  ${r.outcome.padEnd(11)}  ${r.detail}`);
    out(
      `${rows.length} secrets in ${formatDuration(Date.now() - started)}: ${counts.completed} on their new credential, ` +
        `${counts.failed} not, ${counts.skipped} skipped (already rotating)`,
    );
  }
  return counts.failed === 0 ? ExitCode.ok : ExitCode.rotationNotCompleted;
}
