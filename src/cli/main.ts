import { userInfo } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { AuditStore } from '../audit/audit-store';
import { RotationClient, type RotationOutcome } from '../client';
import { secretsOverview } from '../client/overview';
import { planSummary, ScheduleManager, type PlanEntry } from '../client/schedule-manager';
import { readEnv } from '../config/env';
import { ConfigError, loadConfig } from '../config/rotor-config';
import { formatDuration, parseDuration } from '../shared/duration';
import { InvalidInputError, NotRotatingError } from '../shared/errors';
import { describeError, ExitCode, exitCodeForFailure } from './exit-codes';
import { createTimelinePrinter, relativeTime, renderStatus, renderTable } from './render';

const out = (line: string): void => void process.stdout.write(`${line}\n`);

function operator(): string {
  try {
    return process.env.ROTOR_OPERATOR ?? userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** The schedules of the Temporal namespace the environment names. */
async function scheduleManager(): Promise<{ rotor: RotationClient; schedules: ScheduleManager }> {
  const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
  return { rotor, schedules: new ScheduleManager(rotor.client, rotor.taskQueue) };
}

/** The rotor.yaml to read: `-f`, else ROTOR_CONFIG. */
function configFile(given: string | undefined): string {
  const file = given ?? readEnv().ROTOR_CONFIG;
  if (!file) throw new InvalidInputError('no rotor.yaml given: pass -f <path> or set ROTOR_CONFIG');
  return file;
}

/** `--anchor <seq>:<hash>`, as `rotor audit verify` prints the head. */
function parseAnchor(text: string): { seq: number; hash: string } {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (!match) throw new InvalidInputError(`--anchor: ${JSON.stringify(text)} is not <seq>:<sha-256 hex>, as \`rotor audit verify\` prints the head`);
  return { seq: Number(match[1]), hash: match[2]! };
}

/** The audit store of ROTOR_AUDIT_URL, for reading; a clear error when it is not set. */
async function auditStore() {
  const url = readEnv().ROTOR_AUDIT_URL;
  if (!url) throw new InvalidInputError('ROTOR_AUDIT_URL is not set — point it at the audit trail database');
  return AuditStore.connect(url, { readOnly: true });
}

const PLAN_MARK: Record<PlanEntry['action'], string> = { create: '+', update: '~', delete: '-', unchanged: '=' };

function planLine(entry: PlanEntry): string {
  return `  ${PLAN_MARK[entry.action]} ${entry.secretId}${entry.changes.length > 0 ? `  (${entry.changes.join('; ')})` : ''}`;
}

/** Prints a rotation's end and returns the exit code it means. */
function reportOutcome(secretId: string, outcome: RotationOutcome, json: boolean): number {
  if (json) {
    out(JSON.stringify(outcome.outcome === 'failed' ? outcome : { ...outcome.result, outcome: outcome.outcome }, null, 2));
  } else if (outcome.outcome === 'completed') {
    out(`rotation of ${secretId} completed: version ${outcome.result.currentVersionId} is AWSCURRENT`);
    if (outcome.result.retirement) out(`  previous login: ${outcome.result.retirement}`);
  } else if (outcome.outcome === 'rolled-back') {
    out(`rotation of ${secretId} rolled back: version ${outcome.result.currentVersionId} is AWSCURRENT again`);
  } else if (outcome.outcome === 'failed') {
    out(`rotation of ${secretId} did not complete: ${outcome.message}`);
  }
  if (outcome.outcome === 'completed') return ExitCode.ok;
  return outcome.outcome === 'failed' ? exitCodeForFailure(outcome.details?.errorType) : ExitCode.rotationNotCompleted;
}

export function buildProgram(): Command {
  const program = new Command('rotor')
    .description('Durable, zero-downtime secrets rotation on Temporal')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('rotate')
    .description('rotate a secret now (joins the rotation already running for it, if any)')
    .argument('<secretId>', 'the secret id or ARN in the store')
    .option('--grace <duration>', "how long the previous credential stays valid (default: the secret's rotor.yaml grace, else ROTOR_DEFAULT_GRACE or 1h)")
    .option('--wait', 'follow the steps as they happen; exit 0 only when the rotation completes')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { grace?: string; wait?: boolean; json?: boolean }) => {
      const env = readEnv();
      const { rotor, schedules } = await scheduleManager();
      // A managed secret rotates with the settings of its schedule (rotor.yaml); --grace still wins.
      const settings = await schedules.rotationSettings(secretId);
      const graceMs = opts.grace !== undefined ? parseDuration(opts.grace, '--grace') : (settings?.graceMs ?? env.ROTOR_DEFAULT_GRACE);
      const started = await rotor.rotate(secretId, {
        graceMs,
        trigger: { kind: 'cli', by: operator() },
        ...(settings?.passwordPolicy ? { passwordPolicy: settings.passwordPolicy } : {}),
        ...(settings?.maxStepAttempts ? { maxStepAttempts: settings.maxStepAttempts } : {}),
        ...(settings?.overrides ? { overrides: settings.overrides } : {}),
        ...(settings?.reporting ? { reporting: settings.reporting } : {}),
      });
      if (!opts.wait) {
        if (opts.json) out(JSON.stringify({ ...started, ui: rotor.uiLink(started.workflowId, started.runId) }, null, 2));
        else {
          out(`${started.started ? 'started' : 'already running:'} rotation of ${secretId} (run ${started.runId})`);
          out(`  follow: rotor status ${secretId}   ui: ${rotor.uiLink(started.workflowId, started.runId)}`);
        }
        return;
      }
      if (!opts.json) {
        out(`${started.started ? 'rotating' : 'joined the running rotation of'} ${secretId} (run ${started.runId})`);
        out(`  ui: ${rotor.uiLink(started.workflowId, started.runId)}`);
      }
      const outcome = await rotor.wait(secretId, opts.json ? undefined : createTimelinePrinter(out));
      process.exitCode = reportOutcome(secretId, outcome, Boolean(opts.json));
    });

  program
    .command('status')
    .description("without an id: every managed secret at a glance; with one: its latest rotation, step by step")
    .argument('[secretId]')
    .option('--all', 'also secrets rotated by hand that have no schedule')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string | undefined, opts: { json?: boolean; all?: boolean }) => {
      if (secretId === undefined) {
        const { rotor, schedules } = await scheduleManager();
        const rows = await secretsOverview(rotor.client, schedules, { all: Boolean(opts.all) });
        if (opts.json) return out(JSON.stringify(rows, null, 2));
        if (rows.length === 0) return out('no managed secrets yet: declare them in rotor.yaml and run `rotor apply -f rotor.yaml`');
        out(
          renderTable(
            ['SECRET', 'STATE', 'LAST ROTATED', 'NEXT DUE', 'LAST FAILURE'],
            rows.map((r) => [
              r.secretId,
              `${r.state}${(r.state === 'rotating' || r.phase === 'rolled-back') && r.phase ? ` (${r.phase})` : ''}${r.paused ? ', paused' : ''}`,
              relativeTime(r.lastRotatedAt),
              r.paused ? 'paused' : relativeTime(r.nextDueAt),
              r.lastFailure ? `${relativeTime(r.lastFailure.at)}: ${r.lastFailure.message}` : '-',
            ]),
          ),
        );
        return;
      }
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      const status = await rotor.status(secretId);
      if (!status) throw new NotRotatingError(secretId, 'has never been rotated by rotor');
      out(opts.json ? JSON.stringify(status, null, 2) : renderStatus(status));
    });

  program
    .command('validate')
    .description('check rotor.yaml without touching anything: every problem, with its path')
    .option('-f, --file <path>', 'the rotor.yaml to check (default ROTOR_CONFIG)')
    .option('--json', 'print { valid, secrets } or { valid: false, problems: [{ path, message }] }')
    .action(async (opts: { file?: string; json?: boolean }) => {
      const file = configFile(opts.file);
      let config;
      try {
        config = await loadConfig(file);
      } catch (error) {
        if (!(opts.json && error instanceof ConfigError)) throw error;
        out(JSON.stringify({ file, valid: false, problems: error.problems }, null, 2));
        process.exitCode = ExitCode.usage;
        return;
      }
      const count = config.secrets.length;
      out(opts.json ? JSON.stringify({ file, valid: true, secrets: count }) : `${file}: valid, ${count} secret${count === 1 ? '' : 's'}`);
    });

  program
    .command('apply')
    .description('reconcile one Temporal Schedule per secret of rotor.yaml: print the plan, then create, update, pause, delete')
    .option('-f, --file <path>', 'the rotor.yaml to apply (default ROTOR_CONFIG)')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--prune', "delete rotor's schedules (on this task queue) of secrets no longer in the file")
    .option('--json', 'print { created, updated, deleted, unchanged } for machines')
    .action(async (opts: { file?: string; dryRun?: boolean; prune?: boolean; json?: boolean }) => {
      const file = configFile(opts.file);
      const config = await loadConfig(file);
      const { schedules } = await scheduleManager();
      const plan = await schedules.plan(config, { prune: Boolean(opts.prune) });
      const changing = plan.entries.filter((e) => e.action !== 'unchanged');
      if (!opts.json) {
        out(`plan for ${file} (${changing.length} to change, ${plan.entries.length - changing.length} unchanged):`);
        for (const entry of plan.entries) out(planLine(entry));
        for (const id of plan.kept) out(`  ? ${id}  (not in the file; kept — --prune deletes its schedule)`);
      }
      if (!opts.dryRun && changing.length > 0) {
        let done = 0;
        await schedules.apply(config, plan, (entry) => {
          if (!opts.json && entry.action !== 'unchanged') out(`  [${++done}/${changing.length}] ${entry.action}d ${entry.secretId}`);
        });
      }
      if (opts.json) out(JSON.stringify(planSummary(plan), null, 2));
      else out(opts.dryRun ? 'dry run: nothing changed' : changing.length > 0 ? 'applied' : 'nothing to change');
    });

  program
    .command('schedules')
    .description('every managed secret: its schedule, next run, last result, paused or not')
    .option('--json', 'print JSON for machines')
    .action(async (opts: { json?: boolean }) => {
      const { schedules } = await scheduleManager();
      const views = await schedules.list();
      if (opts.json) return out(JSON.stringify(views, null, 2));
      if (views.length === 0) return out('no rotor schedules: declare secrets in rotor.yaml and run `rotor apply -f rotor.yaml`');
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
    });

  for (const [name, paused, description] of [
    ['pause', true, "pause a secret's schedule: no scheduled rotation starts until `rotor resume`"],
    ['resume', false, "resume a paused secret's schedule"],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<secretId>')
      .option('--note <text>', 'why, shown by `rotor schedules` with who did it')
      .option('--json', 'print JSON for machines')
      .action(async (secretId: string, opts: { note?: string; json?: boolean }) => {
        const { schedules } = await scheduleManager();
        const note = `${paused ? 'paused' : 'resumed'} by ${operator()}${opts.note ? `: ${opts.note}` : ''}`;
        await (paused ? schedules.pause(secretId, note) : schedules.resume(secretId, note));
        out(opts.json ? JSON.stringify({ secretId, paused, note }) : `schedule of ${secretId} ${paused ? 'paused' : 'resumed'}`);
      });
  }

  program
    .command('history')
    .description("a secret's audit trail: every trigger, step, outcome and alert, oldest first")
    .argument('<secretId>')
    .option('--limit <n>', 'the latest n events', '200')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new InvalidInputError(`--limit: ${JSON.stringify(opts.limit)} is not a positive whole number`);
      const audit = await auditStore();
      try {
        const events = await audit.history(secretId, { limit });
        if (opts.json) {
          out(JSON.stringify(events, null, 2));
          if (events.length === 0) process.exitCode = ExitCode.notFound;
          return;
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
      } finally {
        await audit.close();
      }
    });

  const auditCommand = program.command('audit').description('the audit trail (ROTOR_AUDIT_URL)');
  auditCommand
    .command('verify')
    .description('check the hash chain: any edited or deleted event is reported; prints the head hash to anchor elsewhere')
    .option('--anchor <seq:hash>', 'a head printed by an earlier verify: also check that row is still there, unchanged')
    .option('--json', 'print JSON for machines')
    .action(async (opts: { anchor?: string; json?: boolean }) => {
      const anchor = opts.anchor === undefined ? undefined : parseAnchor(opts.anchor);
      const audit = await auditStore();
      try {
        const result = await audit.verify(anchor);
        if (opts.json) out(JSON.stringify(result, null, 2));
        else if (result.ok) {
          out(`audit trail intact: ${result.rows} events, head ${result.headSeq ?? 0}:${result.headHash ?? '-'}`);
          if (anchor) out(`  anchor ${anchor.seq}: still there, unchanged`);
        }
        else {
          out(`audit trail BROKEN: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} in ${result.rows} events`);
          for (const p of result.problems) out(`  seq ${p.seq}: ${p.problem}`);
        }
        process.exitCode = result.ok ? ExitCode.ok : ExitCode.auditBroken;
      } finally {
        await audit.close();
      }
    });

  program
    .command('rollback')
    .description('roll back the running rotation: reinstate the previous credential in the target and the store')
    .argument('<secretId>')
    .option('--reason <text>', 'why, recorded in the rotation status')
    .option('--wait', 'wait until the rollback has ended')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { reason?: string; wait?: boolean; json?: boolean }) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      const run = await rotor.rollback(secretId, opts.reason, operator());
      if (!opts.wait) {
        out(opts.json ? JSON.stringify({ ...run, requested: 'rollback' }) : `rollback of ${secretId} requested (run ${run.runId})`);
        return;
      }
      const outcome = await rotor.wait(secretId, opts.json ? undefined : createTimelinePrinter(out));
      const code = reportOutcome(secretId, outcome, Boolean(opts.json));
      process.exitCode = outcome.outcome === 'rolled-back' ? ExitCode.ok : code;
    });

  program
    .command('extend-grace')
    .description('keep the previous credential valid longer')
    .argument('<secretId>')
    .argument('<duration>', 'added to the grace period, e.g. 2h')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, duration: string, opts: { json?: boolean }) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      const byMs = parseDuration(duration, 'duration');
      await rotor.extendGrace(secretId, byMs, operator());
      out(opts.json ? JSON.stringify({ secretId, extendedByMs: byMs }) : `grace period of ${secretId} extended by ${duration}`);
    });

  program
    .command('end-grace')
    .description('end the grace period now and retire the previous credential')
    .argument('<secretId>')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { json?: boolean }) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      await rotor.endGrace(secretId, operator());
      out(opts.json ? JSON.stringify({ secretId, graceEnded: true }) : `grace period of ${secretId} ended`);
    });

  program
    .command('worker')
    .description('run a rotor worker (Temporal settings from TEMPORAL_* and profiles, task queue ROTOR_TASK_QUEUE)')
    .option('-f, --config <path>', 'rotor.yaml: alert routes, throughput guards, metrics (default ROTOR_CONFIG)')
    .action(async (opts: { config?: string }) => {
      const { runWorker } = await import('../worker');
      await runWorker(opts.config ? { configFile: opts.config } : {});
    });

  program
    .command('demo')
    .description('rotate a demo PostgreSQL password end to end on the local stack (npm run demo)')
    .addOption(new Option('--grace <duration>', 'grace period of the demo rotation').default('10s'))
    .action(async (opts: { grace: string }) => {
      const { runDemo } = await import('./demo');
      process.exitCode = await runDemo({ graceMs: parseDuration(opts.grace, '--grace'), write: out });
    });

  return program;
}

// The AWS SDK warns on every start under Node 20 about its future support; rotor's README says which Node to run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Runs the CLI; every error becomes one line on stderr and an exit code, here and nowhere else. */
export async function main(argv: string[] = process.argv): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    const { code, message } = describeError(error);
    process.stderr.write(`rotor: ${message}\n`);
    return code;
  }
}

if (require.main === module) {
  void main().then((code) => process.exit(code));
}
