import { parseDuration } from 'rotor-consumers/core';
import { ExitCode } from '../exit-codes';
import { operator, out, reportOutcome, rotationClient, scheduleManager } from '../context';
import { createTimelinePrinter } from '../render';

/**
 * `rotor rollback <secretId>`: the running rotation reinstates the previous credential; with none running, a rollback
 * of its own reinstates AWSPREVIOUS (with the secret's alert routes from rotor.yaml). `--wait` follows it.
 */
export async function rollbackCommand(
  secretId: string,
  opts: { reason?: string; wait?: boolean; json?: boolean },
): Promise<number> {
  const { rotor, schedules } = await scheduleManager();
  const settings = await schedules.rotationSettings(secretId);
  const run = await rotor.rollback(secretId, opts.reason, operator(), {
    trigger: { kind: 'cli', by: operator() },
    ...(settings?.reporting ? { reporting: settings.reporting } : {}),
    ...(settings?.maxStepAttempts ? { maxStepAttempts: settings.maxStepAttempts } : {}),
  });
  if (!opts.wait) {
    const what = run.started
      ? `rollback of ${secretId} started: AWSPREVIOUS is being reinstated`
      : `rollback of ${secretId} requested`;
    out(opts.json ? JSON.stringify({ ...run, requested: 'rollback' }) : `${what} (run ${run.runId})`);
    return ExitCode.ok;
  }
  const outcome = await rotor.wait(secretId, opts.json ? undefined : createTimelinePrinter(out));
  const code = reportOutcome(secretId, outcome, Boolean(opts.json));
  return outcome.outcome === 'rolled-back' ? ExitCode.ok : code;
}

/** `rotor extend-grace <secretId> <duration>`: keeps the previous credential valid longer. */
export async function extendGraceCommand(
  secretId: string,
  duration: string,
  opts: { json?: boolean },
): Promise<number> {
  const byMs = parseDuration(duration, 'duration');
  const rotor = await rotationClient();
  const answer = await rotor.extendGrace(secretId, byMs, operator());
  out(
    opts.json
      ? JSON.stringify({ secretId, extendedByMs: byMs, graceEndsAt: answer.graceEndsAt })
      : `grace period of ${secretId} extended by ${duration}: it ends at ${answer.graceEndsAt}`,
  );
  return ExitCode.ok;
}

/** `rotor end-grace <secretId>`: ends the grace period now; the rotation goes on to retire. */
export async function endGraceCommand(secretId: string, opts: { json?: boolean }): Promise<number> {
  const rotor = await rotationClient();
  await rotor.endGrace(secretId, operator());
  out(opts.json ? JSON.stringify({ secretId, graceEnded: true }) : `grace period of ${secretId} ended`);
  return ExitCode.ok;
}
