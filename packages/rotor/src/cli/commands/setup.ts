import { ExitCode } from '../exit-codes';
import { out, outJson, rotationClient } from '../context';

/**
 * `rotor setup <secretId> [--dry-run]`: the owner-role model for a PostgreSQL pair, as a plan (one line per
 * statement, `+` to run, `=` in place) applied on a worker through the admin secret, all or nothing.
 */
export async function setupCommand(secretId: string, opts: { dryRun?: boolean; json?: boolean }): Promise<number> {
  const rotor = await rotationClient();
  const plan = await rotor.setup(secretId, { dryRun: Boolean(opts.dryRun) });
  if (opts.json) {
    outJson({ secretId, ...plan, dryRun: Boolean(opts.dryRun) });
    return ExitCode.ok;
  }
  const todo = plan.statements.filter((s) => !s.done).length;
  out(`setup of ${secretId}: owner role ${plan.owner} (${todo} to run, ${plan.statements.length - todo} in place):`);
  for (const s of plan.statements) out(`  ${s.done ? '=' : '+'} ${s.sql}`);
  out(
    opts.dryRun
      ? 'dry run: nothing changed'
      : todo === 0
        ? 'nothing to change'
        : `applied ${plan.applied} statements in one transaction`,
  );
  return ExitCode.ok;
}
