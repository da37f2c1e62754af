import { formatDuration } from 'rotor-consumers/core';
import { InvalidInputError, NotRotatingError } from 'rotor-consumers/core';
import { ExitCode } from '../exit-codes';
import { out, outJson, withAuditStore } from '../context';
import { renderTable } from '../render';

/** `rotor history <secretId>`: the secret's audit trail, oldest first. */
export async function historyCommand(secretId: string, opts: { limit: string; json?: boolean }): Promise<number> {
  const limit = Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new InvalidInputError(`--limit: ${JSON.stringify(opts.limit)} is not a positive whole number`);
  return withAuditStore(async (audit) => {
    const events = await audit.history(secretId, { limit });
    if (opts.json) {
      outJson(events);
      return events.length === 0 ? ExitCode.notFound : ExitCode.ok;
    }
    if (events.length === 0) throw new NotRotatingError(secretId, `has no audit events in the ${audit.description}`);
    out(
      renderTable(
        ['AT', 'EVENT', 'STEP', 'OUTCOME', 'TOOK', 'VERSION', 'BY'],
        events.map((e) => [
          e.at,
          e.kind,
          e.step ?? '-',
          e.outcome ?? '-',
          e.durationMs === undefined ? '-' : formatDuration(e.durationMs),
          e.versionId ?? '-',
          e.actor ?? '-',
        ]),
      ),
    );
    return ExitCode.ok;
  });
}

/** `--anchor <seq>:<hash>`, as `rotor audit verify` prints the head. */
function parseAnchor(text: string): { seq: number; hash: string } {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (!match)
    throw new InvalidInputError(
      `--anchor: ${JSON.stringify(text)} is not <seq>:<sha-256 hex>, as \`rotor audit verify\` prints the head`,
    );
  return { seq: Number(match[1]), hash: match[2]! };
}

/** `rotor audit verify`: checks the hash chain (and an anchor kept elsewhere); exit 5 when it is broken. */
export async function auditVerifyCommand(opts: { anchor?: string; json?: boolean }): Promise<number> {
  const anchor = opts.anchor === undefined ? undefined : parseAnchor(opts.anchor);
  return withAuditStore(async (audit) => {
    const result = await audit.verify(anchor);
    if (opts.json) outJson(result);
    else if (result.ok) {
      out(`audit trail intact: ${result.rows} events, head ${result.headSeq ?? 0}:${result.headHash ?? '-'}`);
      if (anchor) out(`  anchor ${anchor.seq}: still there, unchanged`);
    } else {
      out(
        `audit trail BROKEN: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} in ${result.rows} events`,
      );
      for (const p of result.problems) out(`  seq ${p.seq}: ${p.problem}`);
    }
    return result.ok ? ExitCode.ok : ExitCode.auditBroken;
  });
}
