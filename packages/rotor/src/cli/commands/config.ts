import { planSummary, type PlanEntry } from '../../client/schedule-manager';
import { ConfigError, loadConfig } from '../../config/rotor-config';
import { ExitCode } from '../exit-codes';
import { configFile, out, outJson, progress, scheduleManager } from '../context';

/** `rotor validate`: checks rotor.yaml without touching anything; every problem, with its path. */
export async function validateCommand(opts: { file?: string; json?: boolean }): Promise<number> {
  const file = configFile(opts.file);
  let config;
  try {
    config = await loadConfig(file);
  } catch (error) {
    if (!(opts.json && error instanceof ConfigError)) throw error;
    outJson({ file, valid: false, problems: error.problems });
    return ExitCode.usage;
  }
  const count = config.secrets.length;
  out(
    opts.json
      ? JSON.stringify({ file, valid: true, secrets: count })
      : `${file}: valid, ${count} secret${count === 1 ? '' : 's'}`,
  );
  return ExitCode.ok;
}

const PLAN_MARK: Record<PlanEntry['action'], string> = { create: '+', update: '~', delete: '-', unchanged: '=' };

function planLine(entry: PlanEntry): string {
  return `  ${PLAN_MARK[entry.action]} ${entry.secretId}${entry.changes.length > 0 ? `  (${entry.changes.join('; ')})` : ''}`;
}

/** `rotor apply`: one Temporal Schedule per secret of rotor.yaml; prints the plan, then creates, updates, deletes. */
export async function applyCommand(opts: {
  file?: string;
  dryRun?: boolean;
  prune?: boolean;
  json?: boolean;
}): Promise<number> {
  const file = configFile(opts.file);
  const config = await loadConfig(file);
  const { schedules } = await scheduleManager();
  const reading = progress('reading schedules', opts.json);
  const plan = await schedules.plan(config, { prune: Boolean(opts.prune), onProgress: reading.tick });
  reading.end();
  const changing = plan.entries.filter((e) => e.action !== 'unchanged');
  if (!opts.json) {
    out(`plan for ${file} (${changing.length} to change, ${plan.entries.length - changing.length} unchanged):`);
    for (const entry of plan.entries) out(planLine(entry));
    for (const id of plan.kept) out(`  ? ${id}  (not in the file; kept — --prune deletes its schedule)`);
  }
  if (!opts.dryRun && changing.length > 0) {
    let done = 0;
    // Each change prints its own [n/total] line as it lands (in any order: schedules are written in parallel).
    await schedules.apply(config, plan, (entry) => {
      if (!opts.json && entry.action !== 'unchanged')
        out(`  [${++done}/${changing.length}] ${entry.action}d ${entry.secretId}`);
    });
  }
  if (opts.json) outJson(planSummary(plan));
  else out(opts.dryRun ? 'dry run: nothing changed' : changing.length > 0 ? 'applied' : 'nothing to change');
  return ExitCode.ok;
}
