import { secretsOverview } from '../../client/overview';
import { NotRotatingError } from 'rotor-consumers/core';
import { ExitCode } from '../exit-codes';
import { out, outJson, progress, rotationClient, scheduleManager } from '../context';
import { relativeTime, renderStatus, renderTable } from '../render';

/** `rotor status [secretId]`: without an id, every managed secret at a glance; with one, its latest rotation. */
export async function statusCommand(
  secretId: string | undefined,
  opts: { json?: boolean; all?: boolean },
): Promise<number> {
  if (secretId === undefined) return overview(opts);
  const rotor = await rotationClient();
  const status = await rotor.status(secretId);
  if (!status) throw new NotRotatingError(secretId, 'has never been rotated by rotor');
  if (opts.json) outJson(status);
  else out(renderStatus(status));
  return ExitCode.ok;
}

async function overview(opts: { json?: boolean; all?: boolean }): Promise<number> {
  const { rotor, schedules } = await scheduleManager();
  const reading = progress('reading rotations', opts.json);
  const rows = await secretsOverview(rotor.client, schedules, { all: Boolean(opts.all), onProgress: reading.tick });
  reading.end();
  if (opts.json) outJson(rows);
  else if (rows.length === 0)
    out('no managed secrets yet: declare them in rotor.yaml and run `rotor apply -f rotor.yaml`');
  else {
    const leased = rows.some((r) => r.leases);
    const expiring = rows.some((r) => r.credential);
    out(
      renderTable(
        [
          'SECRET',
          'STATE',
          'LAST ROTATED',
          'NEXT DUE',
          ...(expiring ? ['NOT AFTER'] : []),
          'LAST FAILURE',
          ...(leased ? ['LEASES'] : []),
        ],
        rows.map((r) => [
          r.secretId,
          `${r.state}${(r.state === 'rotating' || r.phase === 'rolled-back') && r.phase ? ` (${r.phase})` : ''}${r.paused ? ', paused' : ''}`,
          relativeTime(r.lastRotatedAt),
          // A certificate renews when its lifetime says: that, not the schedule's next check.
          r.paused ? 'paused' : relativeTime(r.credential?.renewsAt ?? r.nextDueAt),
          ...(expiring
            ? [r.credential ? `${r.credential.notAfter} (${relativeTime(r.credential.notAfter)})` : '-']
            : []),
          r.lastFailure ? `${relativeTime(r.lastFailure.at)}: ${r.lastFailure.message}` : '-',
          ...(leased ? [r.leases ? `${r.leases.live} live, ${r.leases.logins} logins` : '-'] : []),
        ]),
      ),
    );
  }
  return ExitCode.ok;
}
