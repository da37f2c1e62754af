import { ExitCode } from '../exit-codes';
import { operator, out, outJson, progress, scheduleManager } from '../context';
import { relativeTime, renderTable } from '../render';

/** `rotor schedules`: every managed secret, its schedule, next run, last result, paused or not. */
export async function schedulesCommand(opts: { json?: boolean }): Promise<number> {
  const { schedules } = await scheduleManager();
  const reading = progress('reading schedules', opts.json);
  const views = await schedules.list({ onProgress: reading.tick });
  reading.end();
  if (opts.json) outJson(views);
  else if (views.length === 0)
    out('no rotor schedules: declare secrets in rotor.yaml and run `rotor apply -f rotor.yaml`');
  else {
    out(
      renderTable(
        ['SECRET', 'SCHEDULE', 'NEXT RUN', 'LAST RESULT', 'PAUSED'],
        views.map((v) => [
          v.secretId,
          v.schedule,
          v.paused ? '-' : relativeTime(v.nextRunAt),
          v.lastRun ? `${v.lastRun.result} (${relativeTime(v.lastRun.at)})` : '-',
          v.paused ? `yes${v.note ? `: ${v.note}` : ''}` : 'no',
        ]),
      ),
    );
  }
  return ExitCode.ok;
}

/** `rotor pause` / `rotor resume`: the secret's schedule, with a note that names who did it. */
export async function pauseCommand(
  secretId: string,
  paused: boolean,
  opts: { note?: string; json?: boolean },
): Promise<number> {
  const { schedules } = await scheduleManager();
  const note = `${paused ? 'paused' : 'resumed'} by ${operator()}${opts.note ? `: ${opts.note}` : ''}`;
  await (paused ? schedules.pause(secretId, note) : schedules.resume(secretId, note));
  out(
    opts.json ? JSON.stringify({ secretId, paused, note }) : `schedule of ${secretId} ${paused ? 'paused' : 'resumed'}`,
  );
  return ExitCode.ok;
}
