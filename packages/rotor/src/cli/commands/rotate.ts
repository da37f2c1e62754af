import { bakeFitsGrace, type BakePolicy } from '../../shared/bake';
import { readEnv } from '../../config/env';
import { parseDuration } from 'rotor-consumers/core';
import type { RotationInput } from '../../shared/rotation';
import { ExitCode } from '../exit-codes';
import { operator, out, outJson, reportOutcome, scheduleManager } from '../context';
import { createTimelinePrinter } from '../render';

export interface RotateCommandOptions {
  grace?: string;
  /** false with --no-bake: no bake window, so no automatic rollback (incident mode). */
  bake?: boolean;
  wait?: boolean;
  json?: boolean;
}

/**
 * `rotor rotate <secretId>`: starts a rotation (or joins the running one). A managed secret rotates with the settings
 * of its schedule (rotor.yaml); `--grace` still wins. With `--wait`, follows the steps and exits 0 only on completion.
 *
 * Incident mode: `--no-bake`, or a grace shorter than the bake window (`--grace 0s`), rotates without a bake window, so
 * nothing consumers report can undo the rotation (a compromised application must not veto the rotation meant to lock
 * it out); operators still can.
 */
export async function rotateCommand(secretId: string, opts: RotateCommandOptions): Promise<number> {
  const env = readEnv();
  const graceOverride = opts.grace === undefined ? undefined : parseDuration(opts.grace, '--grace');
  const { rotor, schedules } = await scheduleManager();
  const { bake, ...settings }: Partial<RotationInput> = (await schedules.rotationSettings(secretId)) ?? {};
  const graceMs = graceOverride ?? settings.graceMs ?? env.ROTOR_DEFAULT_GRACE;
  const baked = bakeUnlessIncident(bake, graceMs, opts.bake);
  if (bake && !baked.bake && !opts.json)
    out(
      `note: ${opts.bake === false ? '--no-bake' : `--grace ${opts.grace} is shorter than the bake window`}: ` +
        'this rotation does not bake, and nothing consumers report rolls it back',
    );
  const started = await rotor.rotate(secretId, {
    ...settings,
    ...baked,
    graceMs,
    trigger: { kind: 'cli', by: operator() },
  });
  const ui = rotor.uiLink(started.workflowId, started.runId);
  if (!opts.wait) {
    if (opts.json) outJson({ ...started, ui });
    else {
      out(`${started.started ? 'started' : 'already running:'} rotation of ${secretId} (run ${started.runId})`);
      out(`  follow: rotor status ${secretId}   ui: ${ui}`);
    }
    return ExitCode.ok;
  }
  if (!opts.json) {
    out(`${started.started ? 'rotating' : 'joined the running rotation of'} ${secretId} (run ${started.runId})`);
    out(`  ui: ${ui}`);
  }
  const outcome = await rotor.wait(secretId, opts.json ? undefined : createTimelinePrinter(out));
  return reportOutcome(secretId, outcome, Boolean(opts.json));
}

/**
 * The bake a rotation runs: the secret's, unless this is an incident rotation: `--no-bake`, or a grace shorter than
 * the bake window (an operator's call for speed, a leaked credential). Those run no window, so no automatic rollback.
 */
export function bakeUnlessIncident(
  bake: BakePolicy | undefined,
  graceMs: number,
  bakeFlag: boolean | undefined,
): { bake?: BakePolicy } {
  return bake && bakeFlag !== false && bakeFitsGrace(bake, graceMs) ? { bake } : {};
}
