import { loadConfig } from '../../config/rotor-config';
import { InvalidInputError } from 'rotor-consumers/core';
import type { SecretCheckReport } from '../../shared/reports';
import type { RotationOverrides } from '../../shared/rotation';
import { rotationInputFor } from '../../schedules/plan';
import { ExitCode } from '../exit-codes';
import { out, outJson, progress, rotationClient } from '../context';
import { readEnv } from '../../config/env';

/** Secrets checked at once: each check is a short workflow on a worker. */
const CONCURRENCY = 8;

/**
 * `rotor check [secretId...] [-f rotor.yaml]`: for each secret, everything a rotation will need, checked on a worker
 * without changing anything. One line per secret, one more per failed check with what to do. Exits 6 when any
 * check failed.
 */
export async function checkCommand(ids: string[], opts: { file?: string; json?: boolean }): Promise<number> {
  const file = opts.file ?? readEnv().ROTOR_CONFIG;
  const config = file ? await loadConfig(file) : undefined;
  const inputOf = new Map<string, { overrides?: RotationOverrides | undefined; graceMs: number }>(
    (config?.secrets ?? []).map((s) => [s.id, rotationInputFor(s, config!)]),
  );
  const secretIds = ids.length > 0 ? ids : [...inputOf.keys()];
  if (secretIds.length === 0)
    throw new InvalidInputError('nothing to check: name secret ids, or pass -f rotor.yaml (or set ROTOR_CONFIG)');
  const rotor = await rotationClient();
  const reports: SecretCheckReport[] = new Array<SecretCheckReport>(secretIds.length);
  let next = 0;
  let checked = 0;
  const checking = progress('checking', opts.json);
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, secretIds.length) }, async () => {
      while (next < secretIds.length) {
        const index = next++;
        const id = secretIds[index]!;
        reports[index] = await rotor.check(id, inputOf.get(id)?.overrides, inputOf.get(id)?.graceMs);
        checking.tick(++checked, secretIds.length);
      }
    }),
  );
  checking.end();
  if (opts.json) outJson(reports);
  else for (const report of reports) printReport(report);
  const failed = reports.filter((r) => !r.ok).length;
  if (!opts.json)
    out(failed === 0 ? `${reports.length} checked, all passed` : `${reports.length} checked, ${failed} failed`);
  return failed === 0 ? ExitCode.ok : ExitCode.checkFailed;
}

function printReport(report: SecretCheckReport): void {
  out(`${report.ok ? 'ok  ' : 'FAIL'}  ${report.secretId}${report.rotator ? `  (${report.rotator})` : ''}`);
  for (const check of report.checks.filter((c) => !c.ok)) {
    out(`      ${check.name}: ${check.detail}`);
    if (check.hint) out(`        hint: ${check.hint}`);
  }
}
