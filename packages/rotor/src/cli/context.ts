import { userInfo } from 'node:os';
import { AuditStore } from '../audit/audit-store';
import { RotationClient, type RotationOutcome } from '../client/rotation-client';
import { ScheduleManager } from '../client/schedule-manager';
import { readEnv } from '../config/env';
import { InvalidInputError } from 'rotor-consumers/core';
import { ExitCode, exitCodeForFailure } from './exit-codes';

/* What every CLI command shares: where it writes, who runs it, and how it reaches Temporal and the audit trail. */

/** Writes one line to stdout: the only place commands print results. */
export const out = (line: string): void => void process.stdout.write(`${line}\n`);

/**
 * A progress line for commands that take more than a moment over a fleet (`label: done/total`, or `label: done` while
 * the total is unknown), on stderr and only
 * when stderr is a terminal and the output is not `--json`: pipes, files and machines never see it. `end()` clears it.
 */
export function progress(
  label: string,
  json = false,
): { tick: (done: number, total: number) => void; end: () => void } {
  const line = statusLine(json);
  return {
    // A total of 0 is not known yet (a listing still paging): the count alone.
    tick(done, total) {
      line(`${label}: ${total > 0 ? `${done}/${total}` : done}`, total > 0 && done >= total);
    },
    end: () => line(undefined),
  };
}

/**
 * One line on stderr, rewritten in place at most every 100 ms (`now` forces it), only on a terminal and never with
 * `--json`; undefined clears it.
 */
export function statusLine(json = false): (text: string | undefined, now?: boolean) => void {
  if (json || !process.stderr.isTTY) return () => undefined;
  let shownAt = 0;
  let shown = false;
  return (text, now = false) => {
    if (text === undefined) {
      if (shown) process.stderr.write('\r\x1b[K');
      return;
    }
    if (!now && Date.now() - shownAt < 100) return;
    shownAt = Date.now();
    shown = true;
    process.stderr.write(`\r\x1b[K${text}`);
  };
}

/** JSON for machines, as every `--json` prints it. */
export const outJson = (value: unknown): void => out(JSON.stringify(value, null, 2));

/** Who runs the command, recorded with rotations, rollbacks, grace changes and pauses. */
export function operator(): string {
  try {
    return process.env.ROTOR_OPERATOR || userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** A RotationClient on the Temporal namespace and task queue the environment names. */
export function rotationClient(): Promise<RotationClient> {
  return RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
}

/** The schedules of the Temporal namespace the environment names, and the client they share. */
export async function scheduleManager(): Promise<{ rotor: RotationClient; schedules: ScheduleManager }> {
  const rotor = await rotationClient();
  return { rotor, schedules: new ScheduleManager(rotor.client, rotor.taskQueue) };
}

/** The rotor.yaml to read: `-f`, else ROTOR_CONFIG. */
export function configFile(given: string | undefined): string {
  const file = given ?? readEnv().ROTOR_CONFIG;
  if (!file) throw new InvalidInputError('no rotor.yaml given: pass -f <path> or set ROTOR_CONFIG');
  return file;
}

/** The audit store of ROTOR_AUDIT_URL, for reading, closed after `work`; a clear error when it is not set. */
export async function withAuditStore<T>(work: (audit: AuditStore) => Promise<T>): Promise<T> {
  const url = readEnv().ROTOR_AUDIT_URL;
  if (!url) throw new InvalidInputError('ROTOR_AUDIT_URL is not set — point it at the audit trail database');
  const audit = await AuditStore.connect(url, { readOnly: true });
  try {
    return await work(audit);
  } finally {
    await audit.close();
  }
}

/** Prints a rotation's end and returns the exit code it means. */
export function reportOutcome(secretId: string, outcome: RotationOutcome, json: boolean): number {
  if (json) {
    outJson(outcome.outcome === 'failed' ? outcome : { ...outcome.result, outcome: outcome.outcome });
  } else if (outcome.outcome === 'completed') {
    out(`rotation of ${secretId} completed: version ${outcome.result.currentVersionId} is AWSCURRENT`);
    if (outcome.result.retirement) out(`  previous login: ${outcome.result.retirement}`);
  } else if (outcome.outcome === 'rolled-back') {
    const what = outcome.result.status.operation === 'rollback' ? `${secretId}` : `rotation of ${secretId}`;
    out(`${what} rolled back: version ${outcome.result.currentVersionId} is AWSCURRENT again`);
  } else if (outcome.outcome === 'failed') {
    out(`rotation of ${secretId} did not complete: ${outcome.message}`);
  }
  if (outcome.outcome === 'completed') return ExitCode.ok;
  return outcome.outcome === 'failed' ? exitCodeForFailure(outcome.details?.errorType) : ExitCode.rotationNotCompleted;
}
