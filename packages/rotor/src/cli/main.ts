import { Argument, Command, Option } from 'commander';
import { InvalidInputError, parseDuration } from 'rotor-consumers/core';
import { auditVerifyCommand, historyCommand } from './commands/audit';
import { applyCommand, validateCommand } from './commands/config';
import { checkCommand } from './commands/check';
import { setupCommand } from './commands/setup';
import { endGraceCommand, extendGraceCommand, rollbackCommand } from './commands/operate';
import { rotateCommand, type RotateCommandOptions } from './commands/rotate';
import { rotateFleetCommand, type FleetOptions } from './commands/rotate-fleet';
import { pauseCommand, schedulesCommand } from './commands/schedules';
import { statusCommand } from './commands/status';
import { keyringKeysCommand, rewrapControlCommand, rewrapStartCommand } from './commands/rewrap';
import { out } from './context';
import { describeError, ExitCode } from './exit-codes';

/** "Examples:" and one command a line, after a command's help. */
function examples(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((line) => `  $ ${line}`).join('\n')}`;
}

/** The version of the rotor package this CLI belongs to (its package.json, beside src/ and dist/ alike). */
function version(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}

/**
 * The `rotor` command. Each command is a module of `./commands` that returns its exit code; this file only wires
 * them to commander, and `main` turns every error into one line on stderr and an exit code (see exit-codes.ts).
 */
export function buildProgram(): { program: Command; exitCode: () => number } {
  let code: number = ExitCode.ok;
  /** Wraps a command so that its exit code becomes the process's. */
  const action =
    <A extends unknown[]>(command: (...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      code = await command(...args);
    };

  const program = new Command('rotor')
    .description('Durable, zero-downtime secrets rotation on Temporal')
    .version(version(), '-V, --version', 'print the version of rotor')
    .addHelpText('after', examples('rotor apply -f rotor.yaml', 'rotor rotate prod/db/orders --wait', 'rotor status'))
    .showHelpAfterError()
    .exitOverride();

  program
    .command('rotate')
    .description(
      'rotate a secret now (joins the rotation already running for it, if any), or a fleet of rotor.yaml at once (incident mode)',
    )
    .addHelpText(
      'after',
      examples(
        'rotor rotate prod/db/orders --grace 2h --wait',
        'rotor rotate prod/db/orders --grace 0s --no-bake --wait',
        'rotor rotate --all -f rotor.yaml --grace 0s --no-bake --dry-run',
        'rotor rotate --prefix prod/db -f rotor.yaml --grace 15m --concurrency 20',
      ),
    )
    .argument('[secretId]', 'the secret id or ARN in the store (or choose a fleet with --all, --prefix or --tag)')
    .option(
      '--grace <duration>',
      "how long the previous credential stays valid (default: the secret's rotor.yaml grace, else ROTOR_DEFAULT_GRACE or 1h)",
    )
    .option('--no-bake', "no bake window, so no automatic rollback on consumers' reports (incident mode)")
    .option('--wait', 'follow the steps as they happen; exit 0 only when the rotation completes')
    .option('--all', 'every secret of rotor.yaml (a fleet: rotations run at once, each waited for)')
    .option('--prefix <prefix>', 'the secrets of rotor.yaml under this prefix of whole path segments')
    .option('--tag <tag>', 'the secrets of rotor.yaml with this tag')
    .option('-f, --file <path>', 'the rotor.yaml the fleet comes from (default ROTOR_CONFIG)')
    .option('--concurrency <n>', "a fleet's rotations in flight (default: the store-write ceiling of rotor.yaml)")
    .option('--dry-run', 'a fleet: list what would rotate, rotate nothing')
    .option('--json', 'print JSON for machines')
    .action(
      action((secretId: string | undefined, opts: RotateCommandOptions & FleetOptions) => {
        const fleet = opts.all === true || opts.prefix !== undefined || opts.tag !== undefined;
        if (fleet && secretId !== undefined)
          throw new InvalidInputError('name one secret, or choose a fleet with --all, --prefix or --tag, not both');
        if (!fleet && secretId === undefined)
          throw new InvalidInputError('name a secret, or choose a fleet with --all, --prefix or --tag');
        return fleet ? rotateFleetCommand(opts) : rotateCommand(secretId!, opts);
      }),
    );

  program
    .command('status')
    .description('without an id: every managed secret at a glance; with one: its latest rotation, step by step')
    .addHelpText(
      'after',
      examples('rotor status', 'rotor status prod/db/orders --json', 'rotor status prod/keys/fields --keys'),
    )
    .argument('[secretId]')
    .option('--all', 'also secrets rotated by hand that have no schedule')
    .option('--keys', "an encryption keyring's keys and the rows each still protects, counted now")
    .option('--json', 'print JSON for machines')
    .action(
      action((secretId: string | undefined, opts: { all?: boolean; keys?: boolean; json?: boolean }) =>
        opts.keys && secretId !== undefined ? keyringKeysCommand(secretId, opts) : statusCommand(secretId, opts),
      ),
    );

  const rewrap = program
    .command('rewrap')
    .description("re-encrypt every row of an encryption keyring's data tables under its primary key, resumably")
    .addHelpText(
      'after',
      examples('rotor rewrap start prod/keys/fields --wait', 'rotor rewrap status prod/keys/fields'),
    );
  rewrap
    .command('start')
    .description('start the re-wrap (or join the one running): paged, compare-and-swap, rate-limited')
    .addHelpText('after', examples('rotor rewrap start prod/keys/fields --rate 2000 --wait'))
    .argument('<secretId>')
    .option('--batch <rows>', 'rows per page (default 500)')
    .option('--rate <rows>', 'rows per second at most (default 2000)')
    .option('--passes <n>', 'passes over the tables at most (default 3)')
    .option('--wait', 'follow it to its end; exit 1 unless it completed')
    .option('--json', 'print JSON for machines')
    .action(action(rewrapStartCommand));
  for (const [name, description] of [
    ['status', 'its progress: phase, pass, rows re-wrapped, changed meanwhile, refused'],
    ['pause', 'pause it after the batch in flight'],
    ['resume', 'resume a paused re-wrap'],
    ['cancel', 'stop it after the batch in flight; retires no key'],
  ] as const) {
    rewrap
      .command(name)
      .description(description)
      .addHelpText('after', examples(`rotor rewrap ${name} prod/keys/fields`))
      .argument('<secretId>')
      .option('--json', 'print JSON for machines')
      .action(action((secretId: string, opts: { json?: boolean }) => rewrapControlCommand(name, secretId, opts)));
  }

  program
    .command('validate')
    .description('check rotor.yaml without touching anything: every problem, with its path')
    .addHelpText('after', examples('rotor validate -f rotor.yaml'))
    .option('-f, --file <path>', 'the rotor.yaml to check (default ROTOR_CONFIG)')
    .option('--json', 'print { valid, secrets } or { valid: false, problems: [{ path, message }] }')
    .action(action(validateCommand));

  program
    .command('check')
    .description(
      'check, changing nothing, everything a rotation will need: store, shape, policies, logins, stray AWSPENDING',
    )
    .addHelpText('after', examples('rotor check -f rotor.yaml', 'rotor check prod/db/orders'))
    .argument('[secretId...]', 'secrets to check (default: every secret of rotor.yaml)')
    .option(
      '-f, --file <path>',
      "rotor.yaml: its secrets, and each one's strategy and retirement (default ROTOR_CONFIG)",
    )
    .option('--json', 'print one report per secret for machines')
    .action(action(checkCommand));

  program
    .command('setup')
    .description(
      'PostgreSQL pairs: a NOLOGIN owner role both logins act as, applied through the admin secret (optional: pairs work without it)',
    )
    .addHelpText('after', examples('rotor setup prod/db/orders --dry-run'))
    .argument('<secretId>')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--json', 'print { owner, statements: [{ sql, done }], applied } for machines')
    .action(action(setupCommand));

  program
    .command('apply')
    .description(
      'reconcile one Temporal Schedule per secret of rotor.yaml: print the plan, then create, update, pause, delete',
    )
    .addHelpText('after', examples('rotor apply -f rotor.yaml --dry-run', 'rotor apply -f rotor.yaml --prune'))
    .option('-f, --file <path>', 'the rotor.yaml to apply (default ROTOR_CONFIG)')
    .option('--dry-run', 'print the plan and change nothing')
    .option('--prune', "delete rotor's schedules (on this task queue) of secrets no longer in the file")
    .option('--json', 'print { created, updated, deleted, unchanged } for machines')
    .action(action(applyCommand));

  program
    .command('schedules')
    .description('every managed secret: its schedule, next run, last result, paused or not')
    .addHelpText('after', examples('rotor schedules --json'))
    .option('--json', 'print JSON for machines')
    .action(action(schedulesCommand));

  for (const [name, paused, description] of [
    ['pause', true, "pause a secret's schedule: no scheduled rotation starts until `rotor resume`"],
    ['resume', false, "resume a paused secret's schedule"],
  ] as const) {
    program
      .command(name)
      .description(description)
      .addHelpText('after', examples(`rotor ${name} prod/db/orders --note 'change freeze'`))
      .argument('<secretId>')
      .option('--note <text>', 'why, shown by `rotor schedules` with who did it')
      .option('--json', 'print JSON for machines')
      .action(
        action((secretId: string, opts: { note?: string; json?: boolean }) => pauseCommand(secretId, paused, opts)),
      );
  }

  program
    .command('history')
    .description("a secret's audit trail: every trigger, step, outcome and alert, oldest first")
    .addHelpText('after', examples('rotor history prod/db/orders --limit 20'))
    .argument('<secretId>')
    .option('--limit <n>', 'the latest n events', '200')
    .option('--json', 'print JSON for machines')
    .action(action(historyCommand));

  program
    .command('audit')
    .description('the audit trail (ROTOR_AUDIT_URL)')
    .command('verify')
    .description(
      'check the hash chain: any edited or deleted event is reported; prints the head hash to anchor elsewhere',
    )
    .addHelpText('after', examples('rotor audit verify --anchor 1042:9f2c…'))
    .option('--anchor <seq:hash>', 'a head printed by an earlier verify: also check that row is still there, unchanged')
    .option('--json', 'print JSON for machines')
    .action(action(auditVerifyCommand));

  program
    .command('rollback')
    .description(
      'roll back: the running rotation unwinds, or with none running AWSPREVIOUS is reinstated in the target and the store',
    )
    .addHelpText('after', examples("rotor rollback prod/db/orders --reason 'errors after the switch' --wait"))
    .argument('<secretId>')
    .option('--reason <text>', 'why, recorded in the rotation status')
    .option('--wait', 'wait until the rollback has ended')
    .option('--json', 'print JSON for machines')
    .action(action(rollbackCommand));

  program
    .command('extend-grace')
    .description('keep the previous credential valid longer')
    .addHelpText('after', examples('rotor extend-grace prod/db/orders 2h'))
    .argument('<secretId>')
    .argument('<duration>', 'added to the grace period, e.g. 2h')
    .option('--json', 'print JSON for machines')
    .action(action(extendGraceCommand));

  program
    .command('end-grace')
    .description('end the grace period now and retire the previous credential')
    .addHelpText('after', examples('rotor end-grace prod/db/orders'))
    .argument('<secretId>')
    .option('--json', 'print JSON for machines')
    .action(action(endGraceCommand));

  program
    .command('worker')
    .description('run a rotor worker (Temporal settings from TEMPORAL_* and profiles, task queue ROTOR_TASK_QUEUE)')
    .addHelpText('after', examples('ROTOR_AUDIT_URL=postgres://rotor@audit-db/rotor_audit rotor worker -f rotor.yaml'))
    .option('-f, --file <path>', 'rotor.yaml: alert routes, throughput guards, metrics, reports (default ROTOR_CONFIG)')
    .action(
      action(async (opts: { file?: string }) => {
        // Loaded here, not at the top: only `rotor worker` needs Temporal's native worker.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { runWorker } = require('../worker/start') as typeof import('../worker/start');
        await runWorker(opts.file ? { configFile: opts.file } : {});
        return ExitCode.ok;
      }),
    );

  program
    .command('demo')
    .description(
      'on the local stack: rotate a demo PostgreSQL password end to end (npm run demo), or, with tls, renew a server certificate under HTTPS load (npm run demo -- tls)',
    )
    .addHelpText('after', examples('npm run demo', 'npm run demo -- tls'))
    .addArgument(new Argument('[scenario]', 'what to show').choices(['postgres', 'tls']).default('postgres'))
    .addOption(new Option('--grace <duration>', 'grace period of the demo rotation').default('10s'))
    .action(
      action(async (scenario: 'postgres' | 'tls', opts: { grace: string }) => {
        const graceMs = parseDuration(opts.grace, '--grace');
        if (scenario === 'tls') {
          // eslint-disable-next-line @typescript-eslint/no-require-imports
          const { runTlsDemo } = require('./demo-tls') as typeof import('./demo-tls');
          return runTlsDemo({ write: out });
        }
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { runDemo } = require('./demo') as typeof import('./demo');
        return runDemo({ graceMs, write: out });
      }),
    );

  return { program, exitCode: () => code };
}

// The AWS SDK warns on every start under Node 20 about its future support; rotor's README says which Node to run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** Runs the CLI; every error becomes one line on stderr and an exit code, here and nowhere else. */
export async function main(argv: string[] = process.argv): Promise<number> {
  const { program, exitCode } = buildProgram();
  try {
    await program.parseAsync(argv);
    return exitCode();
  } catch (error) {
    const { code, message } = describeError(error);
    if (message) process.stderr.write(`rotor: ${message}\n`);
    return code;
  }
}

if (require.main === module) {
  void main().then((code) => process.exit(code));
}
