import { userInfo } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { RotationClient, type RotationOutcome } from '../client';
import { readEnv } from '../config/env';
import { parseDuration } from '../shared/duration';
import { NotRotatingError } from '../shared/errors';
import { describeError, ExitCode, exitCodeForFailure } from './exit-codes';
import { createTimelinePrinter, renderStatus } from './render';

const out = (line: string) => process.stdout.write(`${line}\n`);

function operator(): string {
  try {
    return process.env.ROTOR_OPERATOR ?? userInfo().username;
  } catch {
    return 'unknown';
  }
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
    .option('--grace <duration>', 'how long the previous credential stays valid (default ROTOR_DEFAULT_GRACE or 1h)')
    .option('--wait', 'follow the steps as they happen; exit 0 only when the rotation completes')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { grace?: string; wait?: boolean; json?: boolean }) => {
      const env = readEnv();
      const graceMs = opts.grace === undefined ? env.ROTOR_DEFAULT_GRACE : parseDuration(opts.grace, '--grace');
      const rotor = await RotationClient.connect(env.ROTOR_TASK_QUEUE);
      const started = await rotor.rotate(secretId, { graceMs, trigger: { kind: 'cli', by: operator() } });
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
    .description("show the latest rotation of a secret: phase, versions, each step's timing")
    .argument('<secretId>')
    .option('--json', 'print JSON for machines')
    .action(async (secretId: string, opts: { json?: boolean }) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      const status = await rotor.status(secretId);
      if (!status) throw new NotRotatingError(secretId, 'has never been rotated by rotor');
      out(opts.json ? JSON.stringify(status, null, 2) : renderStatus(status));
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
    .action(async (secretId: string, duration: string) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      await rotor.extendGrace(secretId, parseDuration(duration, 'duration'));
      out(`grace period of ${secretId} extended by ${duration}`);
    });

  program
    .command('end-grace')
    .description('end the grace period now and retire the previous credential')
    .argument('<secretId>')
    .action(async (secretId: string) => {
      const rotor = await RotationClient.connect(readEnv().ROTOR_TASK_QUEUE);
      await rotor.endGrace(secretId);
      out(`grace period of ${secretId} ended`);
    });

  program
    .command('worker')
    .description('run a rotor worker (Temporal settings from TEMPORAL_* and profiles, task queue ROTOR_TASK_QUEUE)')
    .action(async () => {
      const { runWorker } = await import('../worker');
      await runWorker();
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
