import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  ConfigError,
  describeSchedule,
  loadConfig,
  parseConfig,
  type ConfigProblem,
  type RotorConfig,
} from '../../packages/rotor/src/config/rotor-config';
import { InvalidInputError } from 'rotor-consumers/core';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const FULL_EXAMPLE = `
version: 1
defaults:
  grace: 2h
  catchupWindow: 15m
  alerts: [oncall]
  maxStepAttempts: 6
  schedule: { every: 30d }
alerts:
  stuckPhaseBudget: 45m
  webhooks:
    oncall:
      url: https://hooks.slack.com/services/T000/B000/XXX
      header: { name: X-Rotor-Token, valueFromEnv: ROTOR_WEBHOOK_TOKEN }
    pager:
      urlFromEnv: ROTOR_SLACK_WEBHOOK_URL
throughput:
  storeWritesPerSecond: 20
  perTargetConcurrency: 2
metrics:
  port: 9000
  host: 127.0.0.1
secrets:
  - id: prod/db/app
    description: app's login
    strategy: alternating-users
    schedule:
      every: 30d
      offset: 2h
      jitter: 30m
      window:
        start: "02:00"
        end: "05:00"
        timezone: Europe/Berlin
        days: [mon, tue, wed, thu, fri]
    grace: 1h
    catchupWindow: 1h
    passwordPolicy: { length: 40, excludeCharacters: "'\\"\\\\", excludePunctuation: true }
    retirement: { retire: disable-login, maxWait: 10m }
    alerts: [oncall, pager]
    maxStepAttempts: 3
    paused: true
    note: "paused for the migration"
  - id: prod/db/reports
    schedule: { cron: "0 3 * * 1", timezone: Europe/Berlin, window: { start: "22:00", end: "04:00" } }
  - id: prod/db/etl
`;

/** A file with one valid secret, changed by `fields`. */
function withSecret(fields: Record<string, unknown>, rest: Record<string, unknown> = {}): string {
  return stringify({ ...rest, secrets: [{ id: 'prod/db/app', schedule: { every: '30d' }, ...fields }] });
}

function withSchedule(schedule: Record<string, unknown>): string {
  return withSecret({ schedule });
}

/** The problems parseConfig reports for the text; fails the test when it accepts it. */
function problemsOf(text: string): ConfigProblem[] {
  try {
    parseConfig(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected parseConfig to throw a ConfigError');
}

describe('parseConfig accepts valid files', () => {
  it('reads the full example with defaults merged into each secret', () => {
    const config: RotorConfig = parseConfig(FULL_EXAMPLE);
    const [app, reports, etl] = config.secrets;

    expect(app).toEqual({
      id: 'prod/db/app',
      description: "app's login",
      strategy: 'alternating-users',
      schedule: {
        kind: 'every',
        everyMs: 30 * DAY,
        offsetMs: 2 * HOUR,
        jitterMs: 30 * 60_000,
        window: { start: '02:00', end: '05:00', timezone: 'Europe/Berlin', days: ['mon', 'tue', 'wed', 'thu', 'fri'] },
      },
      graceMs: HOUR,
      catchupWindowMs: HOUR,
      passwordPolicy: { length: 40, excludeCharacters: '\'"\\', excludePunctuation: true },
      retirement: { retire: 'disable-login', maxWaitMs: 10 * 60_000 },
      alerts: ['oncall', 'pager'],
      maxStepAttempts: 3,
      paused: true,
      note: 'paused for the migration',
    });
    expect(reports).toEqual({
      id: 'prod/db/reports',
      schedule: {
        kind: 'cron',
        cron: '0 3 * * 1',
        timezone: 'Europe/Berlin',
        window: { start: '22:00', end: '04:00', timezone: 'Europe/Berlin' },
      },
      graceMs: 2 * HOUR,
      catchupWindowMs: 15 * 60_000,
      alerts: ['oncall'],
      maxStepAttempts: 6,
    });
    expect(etl).toEqual({
      id: 'prod/db/etl',
      schedule: { kind: 'every', everyMs: 30 * DAY },
      graceMs: 2 * HOUR,
      catchupWindowMs: 15 * 60_000,
      alerts: ['oncall'],
      maxStepAttempts: 6,
    });
    expect(config.alerts).toEqual({
      stuckPhaseBudgetMs: 45 * 60_000,
      webhooks: {
        oncall: {
          name: 'oncall',
          url: 'https://hooks.slack.com/services/T000/B000/XXX',
          header: { name: 'X-Rotor-Token', valueFromEnv: 'ROTOR_WEBHOOK_TOKEN' },
        },
        pager: { name: 'pager', urlFromEnv: 'ROTOR_SLACK_WEBHOOK_URL' },
      },
    });
    expect(config.throughput).toEqual({ storeWritesPerSecond: 20, perTargetConcurrency: 2 });
    expect(config.metrics).toEqual({ port: 9000, host: '127.0.0.1' });
  });

  it('reads a fleet-wide store-write ceiling; without one there is none', () => {
    const config = parseConfig(
      'throughput: { fleetStoreWritesPerSecond: 30 }\nsecrets:\n  - { id: prod/db/app, schedule: { every: 30d } }\n',
    );
    expect(config.throughput).toEqual({
      storeWritesPerSecond: 40,
      perTargetConcurrency: 4,
      fleetStoreWritesPerSecond: 30,
    });
    expect(parseConfig('secrets:\n  - { id: prod/db/app, schedule: { every: 30d } }\n').throughput).not.toHaveProperty(
      'fleetStoreWritesPerSecond',
    );
  });

  it('reads a minimal file and fills in every default', () => {
    expect(parseConfig('secrets:\n  - { id: prod/db/app, schedule: { every: 30d } }\n')).toEqual({
      secrets: [
        {
          id: 'prod/db/app',
          schedule: { kind: 'every', everyMs: 30 * DAY },
          graceMs: HOUR,
          catchupWindowMs: HOUR,
          alerts: [],
        },
      ],
      alerts: { stuckPhaseBudgetMs: 30 * 60_000, webhooks: {} },
      throughput: { storeWritesPerSecond: 40, perTargetConcurrency: 4 },
      metrics: { port: 9464, host: '0.0.0.0' },
      reports: {
        port: 0,
        host: '127.0.0.1',
        tokens: [],
        trustedProxies: [],
        ipv6InstancePrefix: 64,
        forwardEveryMs: 5000,
      },
      stores: { default: 'aws', openbao: [] },
      hooks: {},
    });
  });

  it('accepts the allowed cron macros and corrects the case of a time zone', () => {
    const [secret] = parseConfig(withSchedule({ cron: '@daily', timezone: 'europe/berlin' })).secrets;
    expect(secret?.schedule).toEqual({ kind: 'cron', cron: '@daily', timezone: 'Europe/Berlin' });
  });

  it('lets a secret turn its alerts off and its pause state be left alone', () => {
    const [secret] = parseConfig(
      withSecret(
        { alerts: [] },
        { defaults: { alerts: ['oncall'] }, alerts: { webhooks: { oncall: { urlFromEnv: 'HOOK' } } } },
      ),
    ).secrets;
    expect(secret?.alerts).toEqual([]);
    expect(secret).not.toHaveProperty('paused');
  });
});

describe('describeSchedule', () => {
  it('says when a secret rotates, for people', () => {
    const [app, reports] = parseConfig(FULL_EXAMPLE).secrets;
    expect(describeSchedule(app!.schedule)).toBe(
      'every 30d (offset 2h, jitter 30m, window 02:00-05:00 Europe/Berlin mon-fri)',
    );
    expect(describeSchedule(reports!.schedule)).toBe('cron 0 3 * * 1 Europe/Berlin (window 22:00-04:00 Europe/Berlin)');
    expect(describeSchedule({ kind: 'cron', cron: '0 3 * * 1', timezone: 'UTC' })).toBe('cron 0 3 * * 1 UTC');
    expect(
      describeSchedule({
        kind: 'every',
        everyMs: DAY,
        window: { start: '01:00', end: '02:00', timezone: 'UTC', days: ['sat', 'mon', 'wed'] },
      }),
    ).toBe('every 1d (window 01:00-02:00 UTC mon,wed,sat)');
  });
});

describe('parseConfig rejects invalid files', () => {
  it('names a bad duration and shows examples', () => {
    expect(problemsOf(withSchedule({ every: '30x' }))).toEqual([
      { path: 'secrets[0].schedule.every', message: '"30x" is not a duration (examples: 90s, 15m, 1h30m, 30d)' },
    ]);
  });

  it('refuses a duration without a unit', () => {
    expect(problemsOf(withSecret({ grace: 3600 }))).toEqual([
      { path: 'secrets[0].grace', message: '3600 has no unit (examples: 90s, 15m, 1h30m, 30d)' },
    ]);
  });

  it('refuses a grace period beyond the maximum', () => {
    expect(problemsOf(withSecret({ grace: '99999999d' }))).toEqual([
      { path: 'secrets[0].grace', message: '"99999999d" is longer than the maximum of 30d' },
    ]);
    expect(parseConfig(withSecret({ grace: '30d' })).secrets[0]?.graceMs).toBe(30 * 86_400_000);
  });

  it('refuses an interval shorter than a minute', () => {
    expect(problemsOf(withSchedule({ every: '30s' }))).toEqual([
      { path: 'secrets[0].schedule.every', message: '"30s" is shorter than the minimum of 1m' },
    ]);
  });

  it('refuses a schedule with both every and cron', () => {
    expect(problemsOf(withSchedule({ every: '30d', cron: '0 3 * * 1' }))).toEqual([
      { path: 'secrets[0].schedule', message: 'needs exactly one of every, cron or renewAt, got every and cron' },
    ]);
  });

  it('refuses a schedule with neither every nor cron', () => {
    expect(problemsOf(withSchedule({ jitter: '1h' }))).toEqual([
      { path: 'secrets[0].schedule', message: 'needs exactly one of every, cron or renewAt' },
    ]);
  });

  it('requires a schedule when defaults has none', () => {
    expect(problemsOf(stringify({ secrets: [{ id: 'prod/db/app' }] }))).toEqual([
      { path: 'secrets[0].schedule', message: 'is required (here or in defaults.schedule)' },
    ]);
  });

  it("refuses a cron expression cron-parser rejects, with cron-parser's reason", () => {
    expect(problemsOf(withSchedule({ cron: '61 * * * *' }))).toEqual([
      {
        path: 'secrets[0].schedule.cron',
        message: '"61 * * * *" is not a 5-field cron expression: Constraint error, got value 61 expected range 0-59',
      },
    ]);
  });

  it('refuses 6-field cron expressions and other macros', () => {
    expect(problemsOf(withSchedule({ cron: '0 0 3 * * 1' }))).toEqual([
      {
        path: 'secrets[0].schedule.cron',
        message:
          '"0 0 3 * * 1" is not a 5-field cron expression: it has 6 fields, not minute hour day-of-month month day-of-week',
      },
    ]);
    expect(problemsOf(withSchedule({ cron: '@yearly' }))[0]?.message).toBe(
      '"@yearly" is not a 5-field cron expression: the only macros allowed are @hourly, @daily, @weekly, @monthly',
    );
  });

  it('refuses a time zone that is not IANA', () => {
    expect(problemsOf(withSchedule({ cron: '0 3 * * 1', timezone: 'Mars/Base' }))).toEqual([
      { path: 'secrets[0].schedule.timezone', message: '"Mars/Base" is not an IANA time zone' },
    ]);
  });

  it('refuses a time zone or offset on the wrong kind of schedule', () => {
    expect(problemsOf(withSchedule({ every: '1d', timezone: 'UTC' }))).toEqual([
      { path: 'secrets[0].schedule.timezone', message: 'only applies to cron schedules' },
    ]);
    expect(problemsOf(withSchedule({ cron: '0 3 * * 1', offset: '1h' }))).toEqual([
      { path: 'secrets[0].schedule.offset', message: 'only applies to every schedules' },
    ]);
  });

  it('refuses a window time that is not HH:MM', () => {
    expect(problemsOf(withSchedule({ every: '1d', window: { start: '25:00', end: '05:00' } }))).toEqual([
      { path: 'secrets[0].schedule.window.start', message: '"25:00" is not a time of day as HH:MM (00:00 to 23:59)' },
    ]);
  });

  it('refuses a window that ends when it starts', () => {
    expect(problemsOf(withSchedule({ every: '1d', window: { start: '02:00', end: '02:00' } }))).toEqual([
      { path: 'secrets[0].schedule.window.end', message: '"02:00" equals start; leave window out to allow any time' },
    ]);
  });

  it('refuses unknown and repeated weekdays', () => {
    expect(
      problemsOf(
        withSchedule({ every: '1d', window: { start: '02:00', end: '03:00', days: ['mon', 'funday', 'mon'] } }),
      ),
    ).toEqual([
      {
        path: 'secrets[0].schedule.window.days[1]',
        message: '"funday" is not one of mon, tue, wed, thu, fri, sat, sun',
      },
      { path: 'secrets[0].schedule.window.days[2]', message: '"mon" is listed twice' },
    ]);
  });

  it('refuses an offset or a jitter as long as the interval', () => {
    expect(problemsOf(withSchedule({ every: '1d', offset: '1d', jitter: '2d' }))).toEqual([
      { path: 'secrets[0].schedule.offset', message: '"1d" must be shorter than every (1d)' },
      { path: 'secrets[0].schedule.jitter', message: '"2d" must be shorter than every (1d)' },
    ]);
  });

  it('refuses a secret id declared twice, naming the first', () => {
    const text = stringify({
      secrets: [
        { id: 'prod/db/app', schedule: { every: '30d' } },
        { id: 'prod/db/other', schedule: { every: '30d' } },
        { id: 'prod/db/app', schedule: { every: 'soon' } },
      ],
    });
    expect(problemsOf(text)).toEqual([
      { path: 'secrets[2].schedule.every', message: '"soon" is not a duration (examples: 90s, 15m, 1h30m, 30d)' },
      { path: 'secrets[2].id', message: '"prod/db/app" is declared twice (first at secrets[0])' },
    ]);
  });

  it('refuses an alert route that alerts.webhooks does not define', () => {
    const webhooks = { alerts: { webhooks: { oncall: { urlFromEnv: 'HOOK' } } } };
    expect(problemsOf(withSecret({ alerts: ['oncall', 'pager'] }, webhooks))).toEqual([
      { path: 'secrets[0].alerts[1]', message: 'route "pager" is not defined in alerts.webhooks' },
    ]);
  });

  it('refuses an unknown key, suggesting a close known one', () => {
    expect(problemsOf(withSecret({ gracee: '1h', colour: 'blue' }))).toEqual([
      { path: 'secrets[0].gracee', message: 'unknown key (did you mean grace?)' },
      { path: 'secrets[0].colour', message: 'unknown key' },
    ]);
    expect(problemsOf(withSecret({}, { metric: { port: 1 } }))).toEqual([
      { path: 'metric', message: 'unknown key (did you mean metrics?)' },
    ]);
  });

  it('refuses a value of the wrong type, quoting it', () => {
    expect(problemsOf(withSecret({ paused: 'yes' }))).toEqual([
      { path: 'secrets[0].paused', message: 'expected true or false, got "yes"' },
    ]);
    expect(problemsOf(withSecret({ schedule: ['30d'] }))).toEqual([
      { path: 'secrets[0].schedule', message: 'expected a mapping, got a list' },
    ]);
  });

  it('reports YAML syntax errors with their line and column', () => {
    expect(problemsOf('secrets:\n  - id: prod/db/app\n    schedule: {every: 30d\n')).toEqual([
      {
        path: 'line 4, column 1',
        message: 'Flow map in block collection must be sufficiently indented and end with a }',
      },
    ]);
  });

  it('reports duplicate YAML keys', () => {
    expect(problemsOf('secrets: []\nsecrets: []\n')).toEqual([
      { path: 'line 2, column 1', message: 'Map keys must be unique' },
    ]);
  });

  it('refuses an empty file and a root that is not a mapping', () => {
    expect(problemsOf('# nothing yet\n')).toEqual([
      { path: '(root)', message: 'the file is empty; it needs at least a secrets list' },
    ]);
    expect(problemsOf('- id: prod/db/app\n')).toEqual([{ path: '(root)', message: 'expected a mapping, got a list' }]);
  });

  it('refuses a file without secrets or with an empty list', () => {
    expect(problemsOf('metrics: { port: 0 }\n')).toEqual([
      { path: 'secrets', message: 'is required (a list of the secrets rotor manages, each with an id and a schedule)' },
    ]);
    expect(problemsOf('secrets: []\n')).toEqual([{ path: 'secrets', message: 'is empty; list at least one secret' }]);
  });

  it('refuses a webhook URL that is not http(s) without echoing it', () => {
    const problems = problemsOf(
      withSecret({}, { alerts: { webhooks: { oncall: { url: 'ftp://token-abc123@hooks.example' } } } }),
    );
    expect(problems).toEqual([{ path: 'alerts.webhooks.oncall.url', message: 'is not an http(s) URL' }]);
    expect(JSON.stringify(problems)).not.toContain('token-abc123');
  });

  it('refuses a route with both url and urlFromEnv, or neither', () => {
    const both = { oncall: { url: 'https://hooks.example/x', urlFromEnv: 'HOOK' } };
    expect(problemsOf(withSecret({}, { alerts: { webhooks: both } }))).toEqual([
      { path: 'alerts.webhooks.oncall', message: 'needs exactly one of url or urlFromEnv, got both' },
    ]);
    const neither = { oncall: { header: { name: 'X-Token', valueFromEnv: 'TOKEN' } } };
    expect(problemsOf(withSecret({}, { alerts: { webhooks: neither } }))).toEqual([
      { path: 'alerts.webhooks.oncall', message: 'needs exactly one of url or urlFromEnv' },
    ]);
  });

  it('refuses bad route names, env var names and header names', () => {
    const webhooks = { 'On Call': { urlFromEnv: '1HOOK', header: { name: 'X Token' } } };
    expect(problemsOf(withSecret({}, { alerts: { webhooks } }))).toEqual([
      {
        path: 'alerts.webhooks["On Call"]',
        message: '"On Call" is not a route name (1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit)',
      },
      {
        path: 'alerts.webhooks["On Call"].urlFromEnv',
        message: '"1HOOK" is not an environment variable name (letters, digits and _, not starting with a digit)',
      },
      { path: 'alerts.webhooks["On Call"].header.name', message: '"X Token" is not an HTTP header name' },
      { path: 'alerts.webhooks["On Call"].header.valueFromEnv', message: 'is required' },
    ]);
  });

  it('refuses throughput and metrics settings out of range', () => {
    expect(
      problemsOf(
        withSecret(
          {},
          {
            throughput: { storeWritesPerSecond: 60, perTargetConcurrency: 0, fleetStoreWritesPerSecond: 2.5 },
            metrics: { port: 70000 },
          },
        ),
      ),
    ).toEqual([
      { path: 'throughput.storeWritesPerSecond', message: 'expected a whole number from 1 to 50, got 60' },
      { path: 'throughput.perTargetConcurrency', message: 'expected a whole number from 1 to 100, got 0' },
      { path: 'throughput.fleetStoreWritesPerSecond', message: 'expected a whole number from 1 to 50, got 2.5' },
      { path: 'metrics.port', message: 'expected a whole number from 0 to 65535, got 70000' },
    ]);
  });

  it('refuses a version other than 1', () => {
    expect(problemsOf(withSecret({}, { version: 2 }))).toEqual([
      { path: 'version', message: '2 is not a supported version (expected 1)' },
    ]);
  });

  it('refuses password policies and retirement settings no rotation could follow', () => {
    const passwordPolicy = {
      length: 4,
      excludeUppercase: true,
      excludeLowercase: true,
      excludeNumbers: true,
      excludePunctuation: true,
    };
    expect(
      problemsOf(withSecret({ passwordPolicy, strategy: 'single-user', retirement: { retire: 'delete' } })),
    ).toEqual([
      { path: 'secrets[0].passwordPolicy.length', message: 'expected a whole number from 8 to 4096, got 4' },
      { path: 'secrets[0].passwordPolicy', message: 'every character is excluded' },
      {
        path: 'secrets[0].retirement.retire',
        message: '"delete" is not one of none, disable-login, scramble-password',
      },
      { path: 'secrets[0].retirement', message: 'only applies to the alternating-users strategy' },
    ]);
  });

  it('refuses a note without paused', () => {
    expect(problemsOf(withSecret({ note: 'why' }))).toEqual([
      { path: 'secrets[0].note', message: 'only applies together with paused' },
    ]);
  });

  it('reports every problem of a file at once, each with its exact path', () => {
    const text = `
version: 1
defaults:
  grace: 1hour
alerts:
  webhooks:
    oncall: { url: "not a url" }
secrets:
  - id: prod/db/app
    schedule: { every: 30d, cron: "0 3 * * 1" }
  - id: prod/db/app
    schedule: { cron: "0 3 * * 1", timezone: Mars/Base }
    alerts: [pager]
    pausd: true
`;
    let error: unknown;
    try {
      parseConfig(text, 'deploy/rotor.yaml');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toBeInstanceOf(InvalidInputError);
    const { problems, message } = error as ConfigError;
    expect(problems.map((p) => p.path)).toEqual([
      'alerts.webhooks.oncall.url',
      'defaults.grace',
      'secrets[0].schedule',
      'secrets[1].pausd',
      'secrets[1].schedule.timezone',
      'secrets[1].alerts[0]',
      'secrets[1].id',
    ]);
    expect(message).toBe(
      [
        'deploy/rotor.yaml: 7 problem(s)',
        '  alerts.webhooks.oncall.url: is not an http(s) URL',
        '  defaults.grace: "1hour" is not a duration (examples: 90s, 15m, 1h30m, 30d)',
        '  secrets[0].schedule: needs exactly one of every, cron or renewAt, got every and cron',
        '  secrets[1].pausd: unknown key (did you mean paused?)',
        '  secrets[1].schedule.timezone: "Mars/Base" is not an IANA time zone',
        '  secrets[1].alerts[0]: route "pager" is not defined in alerts.webhooks',
        '  secrets[1].id: "prod/db/app" is declared twice (first at secrets[0])',
      ].join('\n'),
    );
  });
});

describe('loadConfig', () => {
  it('reads and validates a file, naming it in problems', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rotor-config-'));
    try {
      const good = join(dir, 'rotor.yaml');
      await writeFile(good, withSecret({}));
      expect((await loadConfig(good)).secrets[0]?.id).toBe('prod/db/app');

      const bad = join(dir, 'bad.yaml');
      await writeFile(bad, withSecret({ grace: 'soon' }));
      await expect(loadConfig(bad)).rejects.toThrow(ConfigError);
      await expect(loadConfig(bad)).rejects.toThrow(`${bad}: 1 problem(s)`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the path of a missing file', async () => {
    const missing = join(tmpdir(), 'rotor-config-missing', 'rotor.yaml');
    await expect(loadConfig(missing)).rejects.toThrow(InvalidInputError);
    await expect(loadConfig(missing)).rejects.toThrow(`config file ${missing} not found`);
  });
});

describe('bake and reports', () => {
  const messages = (text: string) => problemsOf(text).map((p) => `${p.path}: ${p.message}`);

  it('reads a bake with its defaults, a default bake a secret turns off, and report tokens by env var name', () => {
    const config = parseConfig(
      stringify({
        defaults: { grace: '1h', bake: { window: '10m' } },
        reports: {
          port: 9466,
          tokens: [
            {
              name: 'payments',
              tokenFromEnv: 'PAYMENTS_REPORT_TOKEN',
              secrets: ['prod/db/payments/*', 'prod/db/ledger'],
              requestsPerSecond: 20,
            },
          ],
          tls: { certFile: '/etc/rotor/reports.pem', keyFile: '/etc/rotor/reports-key.pem' },
          trustedProxies: ['10.0.0.5', '::ffff:10.0.0.6', '2001:DB8:0::5'],
          ipv6InstancePrefix: 56,
          forwardEvery: '2s',
        },
        secrets: [
          {
            id: 'prod/db/payments',
            schedule: { every: '30d' },
            bake: { window: '5m', minEvents: 50, minInstances: 3, maxFailureShare: 0.1, maxAutoRollbacksPerDay: 0 },
          },
          { id: 'prod/db/ledger', schedule: { every: '30d' } },
          { id: 'prod/db/batch', schedule: { every: '30d' }, bake: false },
        ],
      }),
    );
    const [payments, ledger, batch] = config.secrets;
    expect(payments!.bake).toEqual({
      windowMs: 5 * 60_000,
      minEvents: 50,
      minInstances: 3,
      maxFailureShare: 0.1,
      maxWindowMs: 20 * 60_000,
      maxAutoRollbacksPerDay: 0,
    });
    expect(ledger!.bake).toEqual({
      windowMs: 10 * 60_000,
      minEvents: 20,
      minInstances: 2,
      maxFailureShare: 0.2,
      maxWindowMs: 40 * 60_000,
      maxAutoRollbacksPerDay: 2,
    });
    expect(batch!.bake).toBeUndefined();
    expect(config.reports).toEqual({
      port: 9466,
      host: '127.0.0.1',
      tokens: [
        {
          name: 'payments',
          tokenFromEnv: 'PAYMENTS_REPORT_TOKEN',
          secrets: ['prod/db/payments/*', 'prod/db/ledger'],
          requestsPerSecond: 20,
          maxLeases: 100,
        },
      ],
      tls: { certFile: '/etc/rotor/reports.pem', keyFile: '/etc/rotor/reports-key.pem' },
      trustedProxies: ['10.0.0.5', '10.0.0.6', '2001:db8::5'],
      ipv6InstancePrefix: 56,
      forwardEveryMs: 2000,
    });
    expect(parseConfig(withSecret({})).reports).toEqual({
      port: 0,
      host: '127.0.0.1',
      tokens: [],
      trustedProxies: [],
      ipv6InstancePrefix: 64,
      forwardEveryMs: 5000,
    });
  });

  it('refuses a bake that would not fit in grace, bad thresholds, and a window without a unit, naming both numbers', () => {
    expect(messages(withSecret({ grace: '5m', bake: { window: '10m' } }))).toEqual([
      'secrets[0].bake.window: 10m is longer than grace (5m): the bake must fit in grace, while the previous credential still works',
    ]);
    expect(
      messages(
        stringify({
          defaults: { grace: '1h', bake: { window: '10m' } },
          secrets: [{ id: 'a', schedule: { every: '30d' }, grace: '5m' }],
        }),
      ),
    ).toEqual(['secrets[0].grace: 5m is shorter than defaults.bake.window (10m): the bake must fit in grace']);
    expect(
      messages(
        withSecret({
          grace: '1h',
          bake: { window: 600, maxFailureShare: 20, minEvents: 0, maxWindow: '1m', maxAutoRollbacksPerDay: -1 },
        }),
      ),
    ).toEqual([
      'secrets[0].bake.window: 600 has no unit (examples: 90s, 15m, 1h30m, 30d)',
      'secrets[0].bake.maxFailureShare: expected a share from 0 to below 1 (0.2 for 20 %), got 20',
      'secrets[0].bake.minEvents: expected a whole number from 1 to 1000000, got 0',
      'secrets[0].bake.maxAutoRollbacksPerDay: expected a whole number from 0 to 100, got -1',
    ]);
    expect(messages(withSecret({ bake: { minEvents: 5 } }))).toEqual(['secrets[0].bake.window: is required']);
  });

  it('refuses an endpoint without tokens, tokens written inline, scopes with a * inside or after part of a name, and bad proxies and TLS', () => {
    expect(messages(withSecret({}, { reports: { port: 9466 } }))).toEqual([
      'reports.tokens: is required when reports.port is set: the endpoint takes reports only with a token',
    ]);
    expect(
      messages(
        withSecret({}, { reports: { port: 9466, tokens: [{ name: 'app', token: 'abc', secrets: ['prod/*/db'] }] } }),
      ),
    ).toEqual([
      'reports.tokens[0].token: unknown key',
      'reports.tokens[0].secrets[0]: "prod/*/db" is not a secret id, a prefix of whole path segments ending in /* (prod/db/*) or *: a * after part of a name would also cover every id that merely starts with it',
      'reports.tokens[0].tokenFromEnv: is required (the environment variable holding the token: tokens are never written in rotor.yaml)',
      'reports.tokens: is required when reports.port is set: the endpoint takes reports only with a token',
    ]);
    const token = { name: 'app', tokenFromEnv: 'APP_TOKEN' };
    expect(
      messages(
        withSecret(
          {},
          {
            reports: {
              port: 9466,
              tokens: [{ ...token, secrets: ['prod/db/payments*', 'prod/db/*', '*'], requestsPerSecond: 0 }],
              trustedProxies: ['proxy.internal'],
              ipv6InstancePrefix: 16,
              tls: { certFile: '/etc/rotor/reports.pem' },
              forwardEvery: 5,
            },
          },
        ),
      ),
    ).toEqual([
      'reports.forwardEvery: 5 has no unit (examples: 90s, 15m, 1h30m, 30d)',
      'reports.ipv6InstancePrefix: expected a whole number from 32 to 128, got 16',
      'reports.tls.keyFile: is required (a PEM file with its private key)',
      'reports.trustedProxies[0]: "proxy.internal" is not an IP address',
      'reports.tokens[0].secrets[0]: "prod/db/payments*" is not a secret id, a prefix of whole path segments ending in /* (prod/db/*) or *: a * after part of a name would also cover every id that merely starts with it',
      'reports.tokens[0].requestsPerSecond: expected a whole number from 1 to 100000, got 0',
    ]);
  });
});

describe('stores', () => {
  const bao = (fields: Record<string, unknown> = {}) => ({
    name: 'bao',
    address: 'https://bao.internal:8200',
    auth: { method: 'approle', roleId: 'rotor', secretIdFile: '/run/secrets/rotor-secret-id' },
    ...fields,
  });

  it('reads an OpenBao store, routes secret ids that name it, and takes it as the default when told', () => {
    const config = parseConfig(
      withSecret(
        { id: 'bao:secret/prod/db/app' },
        {
          stores: {
            default: 'bao',
            openbao: [
              bao({
                namespace: 'team-a',
                caFile: '/etc/bao-ca.pem',
                mounts: ['secret', 'teams/kv'],
                requestTimeout: '3s',
              }),
            ],
          },
        },
      ),
    );
    expect(config.stores).toEqual({
      default: 'bao',
      openbao: [
        {
          name: 'bao',
          address: 'https://bao.internal:8200',
          mounts: ['secret', 'teams/kv'],
          namespace: 'team-a',
          caFile: '/etc/bao-ca.pem',
          requestTimeoutMs: 3000,
          auth: { method: 'approle', roleId: 'rotor', secretIdFile: '/run/secrets/rotor-secret-id' },
        },
      ],
    });
    expect(config.secrets[0]?.id).toBe('bao:secret/prod/db/app');
  });

  it('names every problem: an undeclared store in an id, a bad name, a token in the file, a method mix-up', () => {
    expect(
      problemsOf(
        withSecret(
          { id: 'vault:secret/prod/db/app' },
          {
            stores: {
              default: 'nowhere',
              openbao: [
                bao({ name: 'arn' }),
                bao({ name: 'b2', address: 'bao.internal', auth: { method: 'token', token: 'hvs.x' } }),
                bao({ name: 'b3', auth: { method: 'approle', roleId: 'r', secretIdFile: '/f', role: 'x' } }),
                bao({ name: 'b4', auth: { method: 'kerberos' } }),
              ],
            },
          },
        ),
      ),
    ).toEqual([
      {
        path: 'stores.openbao[0].name',
        message: '"arn" is not a store name (a-z, 0-9 and -, starting with a letter; not arn)',
      },
      { path: 'stores.openbao[1].address', message: '"bao.internal" is not a server address (http(s)://host:port)' },
      { path: 'stores.openbao[1].auth.token', message: 'unknown key' },
      {
        path: 'stores.openbao[1].auth',
        message: "takes one of tokenFromEnv (a variable holding the token) or tokenFile (an agent's sink)",
      },
      {
        path: 'stores.openbao[2].auth.role',
        message: 'does not apply to the approle method (it takes roleId, secretIdFromEnv, secretIdFile, mount)',
      },
      {
        path: 'stores.openbao[3].auth.method',
        message: '"kerberos" is not a method (token, approle, kubernetes or jwt)',
      },
      { path: 'stores.default', message: '"nowhere" is not a store (aws, b3)' },
      { path: 'secrets[0].id', message: 'names the store "vault", which stores does not declare (aws, b3)' },
    ]);
  });
});

describe('hooks', () => {
  it('reads hooks by name: a program and its arguments, and a timeout (60s by default)', () => {
    const config = parseConfig(
      withSecret(
        {},
        {
          hooks: {
            route53: { command: ['node', 'hooks/route53.mjs', '--zone', 'Z123'], timeout: '2m' },
            webroot: { command: ['/usr/local/bin/webroot-hook'] },
          },
        },
      ),
    );
    expect(config.hooks).toEqual({
      route53: { command: ['node', 'hooks/route53.mjs', '--zone', 'Z123'], timeoutMs: 120_000 },
      webroot: { command: ['/usr/local/bin/webroot-hook'], timeoutMs: 60_000 },
    });
  });

  it('names every problem: a bad name, a command that is not a list of words, a timeout without a unit', () => {
    expect(
      problemsOf(
        withSecret(
          {},
          {
            hooks: {
              'Route 53': { command: ['x'] },
              shell: { command: 'curl https://example.com | sh' },
              empty: { command: ['node', ''] },
              slow: { command: ['x'], timeout: 30 },
              missing: { timeout: '10s' },
            },
          },
        ),
      ),
    ).toEqual([
      { path: 'hooks["Route 53"]', message: '"Route 53" is not a hook name (1 to 63 of a-z, 0-9 and -)' },
      { path: 'hooks.shell.command', message: 'expected a list, got "curl https://example.com | sh"' },
      { path: 'hooks.empty.command[1]', message: 'must not be empty' },
      { path: 'hooks.slow.timeout', message: '30 has no unit (examples: 90s, 15m, 1h30m, 30d)' },
      {
        path: 'hooks.missing.command',
        message: 'is required (the program and its arguments, as a list: [node, hooks/dns.mjs])',
      },
    ]);
  });
});

describe('renewAt schedules (certificates)', () => {
  it('reads the share of the lifetime as a percentage or a fraction, checked hourly unless told', () => {
    expect(parseConfig(withSchedule({ renewAt: '67%', jitter: '1h', alertBefore: '7d' })).secrets[0]!.schedule).toEqual(
      {
        kind: 'lifetime',
        renewAt: 0.67,
        checkEveryMs: 3_600_000,
        jitterMs: 3_600_000,
        alertBeforeMs: 604_800_000,
      },
    );
    const config = parseConfig(withSchedule({ renewAt: '2/3', check: '10m' }));
    expect(config.secrets[0]!.schedule).toEqual({ kind: 'lifetime', renewAt: 2 / 3, checkEveryMs: 600_000 });
    expect(describeSchedule(config.secrets[0]!.schedule)).toBe('renew at 67% of lifetime (checked every 10m)');
  });

  it('names every problem: a share out of range, two kinds at once, keys of other kinds', () => {
    expect(problemsOf(withSchedule({ renewAt: '99%' }))).toEqual([
      {
        path: 'secrets[0].schedule.renewAt',
        message: '"99%" is not a share of the lifetime from 10% to 95% (67% or 2/3)',
      },
    ]);
    expect(problemsOf(withSchedule({ renewAt: '2/3', every: '30d' }))).toEqual([
      { path: 'secrets[0].schedule', message: 'needs exactly one of every, cron or renewAt, got every and renewAt' },
    ]);
    expect(problemsOf(withSchedule({ every: '30d', check: '1h' }))).toEqual([
      { path: 'secrets[0].schedule.check', message: 'only applies to renewAt schedules' },
    ]);
    expect(problemsOf(withSchedule({ renewAt: '2/3', check: '5s' }))).toEqual([
      { path: 'secrets[0].schedule.check', message: expect.stringMatching(/10s/) },
    ]);
  });
});
