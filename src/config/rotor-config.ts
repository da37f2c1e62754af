import { readFile } from 'node:fs/promises';
import { CronExpressionParser } from 'cron-parser';
import { parseDocument } from 'yaml';
import { resolvePasswordPolicy } from '../rotators/password-policy';
import { DEFAULT_GRACE } from '../shared/constants';
import { formatDuration, parseDuration } from '../shared/duration';
import { InvalidInputError } from '../shared/errors';
import type { PasswordPolicy, RetirementPolicy } from '../shared/types';

/*
 * rotor.yaml, the declarative list of managed secrets. `parseConfig` is pure: it walks the parsed YAML once and
 * collects every problem with its path (`secrets[3].schedule.every`) before throwing, so an operator fixes the file
 * in one go. The walk is hand-written rather than a zod schema because zod skips an object's cross-field checks as
 * soon as one of its fields is bad, and each of its issue kinds would need re-wording into rotor's sentences anyway.
 */

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** Rotations only start inside the window; `end` before `start` crosses midnight. Times are "HH:MM". */
export interface WindowConfig {
  start: string;
  end: string;
  timezone: string;
  days?: Weekday[];
}

/** When a secret rotates: a fixed interval (from the Unix epoch, plus `offsetMs`) or a 5-field cron expression. */
export type ScheduleConfig =
  | { kind: 'every'; everyMs: number; offsetMs?: number; jitterMs?: number; window?: WindowConfig }
  | { kind: 'cron'; cron: string; timezone: string; jitterMs?: number; window?: WindowConfig };

/** A webhook alerts go to. The URL (or the header's value) may be a credential: only env var names are kept here. */
export interface WebhookRouteConfig {
  name: string;
  url?: string;
  /** Env var holding the URL; the worker reads it. */
  urlFromEnv?: string;
  header?: { name: string; valueFromEnv: string };
}

/** One secret rotor rotates, with the file's defaults merged in. */
export interface ManagedSecret {
  id: string;
  description?: string;
  /** Absent: detected from the secret. */
  strategy?: 'single-user' | 'alternating-users';
  schedule: ScheduleConfig;
  graceMs: number;
  catchupWindowMs: number;
  passwordPolicy?: Partial<PasswordPolicy>;
  retirement?: Partial<RetirementPolicy>;
  /** Names of routes in `alerts.webhooks`. */
  alerts: string[];
  maxStepAttempts?: number;
  /** Absent: `apply` leaves the schedule's pause state alone. */
  paused?: boolean;
  note?: string;
}

/** rotor.yaml, validated, with defaults filled in. */
export interface RotorConfig {
  secrets: ManagedSecret[];
  alerts: { stuckPhaseBudgetMs: number; webhooks: Record<string, WebhookRouteConfig> };
  throughput: { storeWritesPerSecond: number; perTargetConcurrency: number };
  /** `port` 0 disables the metrics endpoint. */
  metrics: { port: number; host: string };
}

/** One thing wrong with the file: where (`secrets[0].schedule.cron`, or `line 3, column 5`) and what. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** Thrown by parseConfig and loadConfig when the file is not valid; `problems` lists all of them, in one message. */
export class ConfigError extends InvalidInputError {
  constructor(
    source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`${source}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
  }
}

const MINUTE_MS = 60_000;
const MIN_EVERY_MS = MINUTE_MS;
/** Temporal refuses a schedule catch-up window shorter than 10 seconds. */
const MIN_CATCHUP_WINDOW_MS = 10_000;
const DEFAULT_CATCHUP_WINDOW_MS = 60 * MINUTE_MS;
const MIN_STUCK_PHASE_BUDGET_MS = MINUTE_MS;
const DEFAULT_STUCK_PHASE_BUDGET_MS = 30 * MINUTE_MS;
const DEFAULT_THROUGHPUT: RotorConfig['throughput'] = { storeWritesPerSecond: 40, perTargetConcurrency: 4 };
const DEFAULT_METRICS: RotorConfig['metrics'] = { port: 9464, host: '0.0.0.0' };
const MAX_SECRET_ID_LENGTH = 2048;
/** Secrets Manager's quota per second, shared by PutSecretValue, UpdateSecretVersionStage and UpdateSecret. */
const MAX_STORE_WRITES_PER_SECOND = 50;
const MAX_PER_TARGET_CONCURRENCY = 100;
const MAX_STEP_ATTEMPTS = 100;

const ROOT_KEYS = ['version', 'defaults', 'alerts', 'throughput', 'metrics', 'secrets'];
const DEFAULTS_KEYS = ['grace', 'catchupWindow', 'alerts', 'maxStepAttempts', 'schedule'];
const ALERTS_KEYS = ['stuckPhaseBudget', 'webhooks'];
const ROUTE_KEYS = ['url', 'urlFromEnv', 'header'];
const HEADER_KEYS = ['name', 'valueFromEnv'];
const THROUGHPUT_KEYS = ['storeWritesPerSecond', 'perTargetConcurrency'];
const METRICS_KEYS = ['port', 'host'];
const SECRET_KEYS = [
  'id',
  'description',
  'strategy',
  'schedule',
  'grace',
  'catchupWindow',
  'passwordPolicy',
  'retirement',
  'alerts',
  'maxStepAttempts',
  'paused',
  'note',
];
const SCHEDULE_KEYS = ['every', 'offset', 'cron', 'timezone', 'jitter', 'window'];
const WINDOW_KEYS = ['start', 'end', 'timezone', 'days'];
const PASSWORD_FLAGS = [
  'excludeUppercase',
  'excludeLowercase',
  'excludeNumbers',
  'excludePunctuation',
  'requireEachIncludedType',
] as const;
const PASSWORD_POLICY_KEYS = ['length', 'excludeCharacters', ...PASSWORD_FLAGS];
const RETIREMENT_KEYS = ['retire', 'liveSessions', 'maxWait'];

const STRATEGIES = ['single-user', 'alternating-users'] as const;
const RETIRE_MODES = ['none', 'disable-login', 'scramble-password'] as const;
const LIVE_SESSION_MODES = ['wait', 'proceed', 'terminate'] as const;
/** The only macros kept: they are 5-field expressions in disguise, which Temporal reads too. */
const CRON_MACROS = ['@hourly', '@daily', '@weekly', '@monthly'];

const ROUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const CLOCK = /^([01]\d|2[0-3]):[0-5]\d$/;
const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;
const DURATION_EXAMPLES = '(examples: 90s, 15m, 1h30m, 30d)';

/**
 * Validates the text of rotor.yaml and returns it typed, with defaults merged into every secret. Pure: env vars
 * named in the file (`urlFromEnv`, `valueFromEnv`) are not read. Throws ConfigError listing every problem.
 */
export function parseConfig(text: string, source = 'rotor.yaml'): RotorConfig {
  const c = new Checker();
  const root = readYaml(c, text);
  const config = root === undefined ? undefined : readRoot(c, { value: root, path: [] });
  if (config === undefined || c.problems.length > 0) throw new ConfigError(source, c.problems);
  return config;
}

/** Reads and validates a config file; a missing or unreadable file is an InvalidInputError naming the path. */
export async function loadConfig(file: string): Promise<RotorConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new InvalidInputError(missing ? `config file ${file} not found` : `cannot read config file ${file}: ${(error as Error).message}`);
  }
  return parseConfig(text, file);
}

/** A schedule for people: "every 30d (jitter 30m, window 02:00-05:00 Europe/Berlin mon-fri)", "cron 0 3 * * 1 UTC". */
export function describeSchedule(s: ScheduleConfig): string {
  const head = s.kind === 'every' ? `every ${formatDuration(s.everyMs)}` : `cron ${s.cron} ${s.timezone}`;
  const details: string[] = [];
  if (s.kind === 'every' && s.offsetMs !== undefined) details.push(`offset ${formatDuration(s.offsetMs)}`);
  if (s.jitterMs !== undefined) details.push(`jitter ${formatDuration(s.jitterMs)}`);
  if (s.window) {
    const days = s.window.days ? ` ${describeDays(s.window.days)}` : '';
    details.push(`window ${s.window.start}-${s.window.end} ${s.window.timezone}${days}`);
  }
  return details.length > 0 ? `${head} (${details.join(', ')})` : head;
}

/** Days in week order, runs of three or more as ranges: "mon-fri", "mon,wed,sat". */
function describeDays(days: readonly Weekday[]): string {
  const sorted = WEEKDAYS.filter((d) => days.includes(d));
  const runs: Weekday[][] = [];
  for (const day of sorted) {
    const run = runs.at(-1);
    if (run && WEEKDAYS.indexOf(run.at(-1)!) + 1 === WEEKDAYS.indexOf(day)) run.push(day);
    else runs.push([day]);
  }
  return runs.map((run) => (run.length >= 3 ? `${run[0]}-${run.at(-1)}` : run.join(','))).join(',');
}

// ---- The walk -------------------------------------------------------------------------------------------------

type Path = readonly (string | number)[];

/** A value of the parsed YAML and where it is. */
interface Node {
  readonly value: unknown;
  readonly path: Path;
}

/** A mapping whose keys were checked against the known ones. */
class Section {
  constructor(
    private readonly fields: Record<string, unknown>,
    readonly path: Path,
  ) {}

  has(key: string): boolean {
    return Object.hasOwn(this.fields, key);
  }

  at(key: string): Node {
    return { value: this.has(key) ? this.fields[key] : undefined, path: [...this.path, key] };
  }
}

/**
 * Collects problems. Each reader returns undefined when the value is absent (no problem) or bad (problem recorded),
 * so callers fall back to defaults and carry on: the result is only used when no problem was found.
 */
class Checker {
  readonly problems: ConfigProblem[] = [];

  add(path: Path, message: string): undefined {
    this.problems.push({ path: formatPath(path), message });
    return undefined;
  }

  /** Records "is required" when the node is absent. */
  present(node: Node, hint = ''): boolean {
    if (node.value !== undefined) return true;
    this.add(node.path, `is required${hint}`);
    return false;
  }

  /** A mapping of known keys; each unknown key is a problem, with a hint when a known key is close. */
  section(node: Node, known: readonly string[]): Section | undefined {
    const fields = this.mapping(node);
    if (fields === undefined) return undefined;
    for (const key of Object.keys(fields)) {
      if (!known.includes(key)) this.add([...node.path, key], `unknown key${suggest(key, known)}`);
    }
    return new Section(fields, node.path);
  }

  /** A section of settings that all have defaults: an empty one when absent or bad. */
  settings(node: Node, known: readonly string[]): Section {
    return this.section(node, known) ?? new Section({}, node.path);
  }

  /** The entries of a mapping with free-form keys (route names). */
  entries(node: Node): [string, Node][] | undefined {
    const fields = this.mapping(node);
    if (fields === undefined) return undefined;
    return Object.entries(fields).map(([key, value]) => [key, { value, path: [...node.path, key] }]);
  }

  list(node: Node): Node[] | undefined {
    if (node.value === undefined) return undefined;
    if (!Array.isArray(node.value)) return this.add(node.path, `expected a list, got ${describe(node.value)}`);
    return node.value.map((value: unknown, i) => ({ value, path: [...node.path, i] }));
  }

  /** A string; a `sensitive` one (a URL that may embed a token) is never quoted back. */
  string(node: Node, { sensitive = false } = {}): string | undefined {
    if (node.value === undefined || typeof node.value === 'string') return node.value;
    return this.add(node.path, sensitive ? 'expected a string' : `expected a string, got ${describe(node.value)}`);
  }

  boolean(node: Node): boolean | undefined {
    if (node.value === undefined || typeof node.value === 'boolean') return node.value;
    return this.add(node.path, `expected true or false, got ${describe(node.value)}`);
  }

  integer(node: Node, min: number, max: number): number | undefined {
    const { value } = node;
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    return this.add(node.path, `expected a whole number from ${min} to ${max}, got ${describe(value)}`);
  }

  oneOf<T extends string>(node: Node, values: readonly T[]): T | undefined {
    const { value } = node;
    if (value === undefined) return undefined;
    if (values.includes(value as T)) return value as T;
    return this.add(node.path, `${describe(value)} is not one of ${values.join(', ')}`);
  }

  /** A duration with a unit, at least `minMs`. A bare number is refused: `grace: 60` reads as 60 ms otherwise. */
  duration(node: Node, minMs: number): number | undefined {
    const { value } = node;
    if (value === undefined) return undefined;
    if (typeof value === 'number' || (typeof value === 'string' && /^\s*\d+\s*$/.test(value))) {
      return this.add(node.path, `${describe(value)} has no unit ${DURATION_EXAMPLES}`);
    }
    if (typeof value !== 'string') return this.add(node.path, `expected a duration ${DURATION_EXAMPLES}, got ${describe(value)}`);
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      return this.add(node.path, `${describe(value)} is not a duration ${DURATION_EXAMPLES}`);
    }
    if (ms < minMs) return this.add(node.path, `${describe(value)} is shorter than the minimum of ${formatDuration(minMs)}`);
    return ms;
  }

  private mapping(node: Node): Record<string, unknown> | undefined {
    if (node.value === undefined) return undefined;
    if (!isMapping(node.value)) return this.add(node.path, `expected a mapping, got ${describe(node.value)}`);
    return node.value;
  }
}

/** `secrets[3].schedule.every`; keys that are not plain words are quoted: `alerts.webhooks["on call"]`. */
function formatPath(path: Path): string {
  if (path.length === 0) return '(root)';
  return path
    .map((part, i) => {
      if (typeof part === 'number') return `[${part}]`;
      if (!PLAIN_KEY.test(part)) return `[${JSON.stringify(part)}]`;
      return i === 0 ? part : `.${part}`;
    })
    .join('');
}

/** How a bad value is quoted in a problem: JSON for scalars, its kind for the rest. */
function describe(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (isMapping(value)) return 'a mapping';
  if (typeof value === 'object') return 'an unsupported value';
  return JSON.stringify(value);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** " (did you mean grace?)" when a known key is at most two edits away. */
function suggest(key: string, known: readonly string[]): string {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best ? ` (did you mean ${best.key}?)` : '';
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The object without its undefined properties, so results print and compare cleanly. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

// ---- rotor.yaml, section by section ---------------------------------------------------------------------------

/** The parsed YAML; syntax errors (duplicate keys included) become problems at `line L, column C`. */
function readYaml(c: Checker, text: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  for (const error of doc.errors) {
    const at = error.linePos?.[0];
    const message = error.message.split(/ at line \d+, column \d+:|\n/)[0]!;
    c.problems.push({ path: at ? `line ${at.line}, column ${at.col}` : '(root)', message });
  }
  if (doc.errors.length > 0) return undefined;
  let root: unknown;
  try {
    root = doc.toJS();
  } catch (error) {
    return c.add([], (error as Error).message);
  }
  if (root === null || root === undefined) return c.add([], 'the file is empty; it needs at least a secrets list');
  return root;
}

function readRoot(c: Checker, node: Node): RotorConfig | undefined {
  const root = c.section(node, ROOT_KEYS);
  if (!root) return undefined;
  const version = root.at('version');
  if (version.value !== undefined && version.value !== 1) c.add(version.path, `${describe(version.value)} is not a supported version (expected 1)`);
  const alerts = readAlerts(c, root.at('alerts'));
  const defaults = readDefaults(c, root.at('defaults'), alerts.routes);
  const throughput = c.settings(root.at('throughput'), THROUGHPUT_KEYS);
  const metrics = c.settings(root.at('metrics'), METRICS_KEYS);
  return {
    secrets: readSecrets(c, root.at('secrets'), defaults, alerts.routes),
    alerts: alerts.config,
    throughput: {
      storeWritesPerSecond:
        c.integer(throughput.at('storeWritesPerSecond'), 1, MAX_STORE_WRITES_PER_SECOND) ?? DEFAULT_THROUGHPUT.storeWritesPerSecond,
      perTargetConcurrency:
        c.integer(throughput.at('perTargetConcurrency'), 1, MAX_PER_TARGET_CONCURRENCY) ?? DEFAULT_THROUGHPUT.perTargetConcurrency,
    },
    metrics: {
      port: c.integer(metrics.at('port'), 0, 65_535) ?? DEFAULT_METRICS.port,
      host: readNonEmpty(c, metrics.at('host')) ?? DEFAULT_METRICS.host,
    },
  };
}

/** `alerts`, and the names of the routes it declares (valid or not, so bad routes are not reported twice). */
function readAlerts(c: Checker, node: Node): { config: RotorConfig['alerts']; routes: ReadonlySet<string> } {
  const alerts = c.settings(node, ALERTS_KEYS);
  const stuckPhaseBudgetMs = c.duration(alerts.at('stuckPhaseBudget'), MIN_STUCK_PHASE_BUDGET_MS);
  const entries = c.entries(alerts.at('webhooks')) ?? [];
  const webhooks: Record<string, WebhookRouteConfig> = {};
  for (const [name, route] of entries) {
    const config = readRoute(c, name, route);
    if (config) webhooks[name] = config;
  }
  return {
    config: { stuckPhaseBudgetMs: stuckPhaseBudgetMs ?? DEFAULT_STUCK_PHASE_BUDGET_MS, webhooks },
    routes: new Set(entries.map(([name]) => name)),
  };
}

function readRoute(c: Checker, name: string, node: Node): WebhookRouteConfig | undefined {
  if (!ROUTE_NAME.test(name)) {
    c.add(node.path, `${JSON.stringify(name)} is not a route name (1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit)`);
  }
  const route = c.section(node, ROUTE_KEYS);
  if (!route) return undefined;
  if (route.has('url') === route.has('urlFromEnv')) {
    c.add(route.path, `needs exactly one of url or urlFromEnv${route.has('url') ? ', got both' : ''}`);
  }
  const url = readUrl(c, route.at('url'));
  const urlFromEnv = readEnvName(c, route.at('urlFromEnv'));
  const header = c.section(route.at('header'), HEADER_KEYS);
  let headerConfig: WebhookRouteConfig['header'];
  if (header) {
    const headerName = readPattern(c, header.at('name'), HTTP_TOKEN, 'is not an HTTP header name');
    const valueFromEnv = readEnvName(c, header.at('valueFromEnv'));
    c.present(header.at('name'));
    c.present(header.at('valueFromEnv'));
    if (headerName !== undefined && valueFromEnv !== undefined) headerConfig = { name: headerName, valueFromEnv };
  }
  return compact({ name, url, urlFromEnv, header: headerConfig });
}

/** An http(s) URL. It may carry a token, so it is never quoted in a problem. */
function readUrl(c: Checker, node: Node): string | undefined {
  const text = c.string(node, { sensitive: true });
  if (text === undefined) return undefined;
  let protocol: string | undefined;
  try {
    protocol = new URL(text).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === 'http:' || protocol === 'https:') return text;
  return c.add(node.path, 'is not an http(s) URL');
}

function readEnvName(c: Checker, node: Node): string | undefined {
  return readPattern(c, node, ENV_NAME, 'is not an environment variable name (letters, digits and _, not starting with a digit)');
}

function readPattern(c: Checker, node: Node, pattern: RegExp, complaint: string): string | undefined {
  const text = c.string(node);
  if (text === undefined || pattern.test(text)) return text;
  return c.add(node.path, `${JSON.stringify(text)} ${complaint}`);
}

function readNonEmpty(c: Checker, node: Node): string | undefined {
  const text = c.string(node);
  if (text === undefined || text.trim() !== '') return text;
  return c.add(node.path, 'is empty');
}

/** What `defaults` gives every secret; `hasSchedule` is true even when the default schedule is bad. */
interface Defaults {
  graceMs: number;
  catchupWindowMs: number;
  alerts: string[];
  maxStepAttempts?: number;
  schedule?: ScheduleConfig;
  hasSchedule: boolean;
}

function readDefaults(c: Checker, node: Node, routes: ReadonlySet<string>): Defaults {
  const defaults = c.settings(node, DEFAULTS_KEYS);
  return {
    graceMs: c.duration(defaults.at('grace'), 0) ?? parseDuration(DEFAULT_GRACE),
    catchupWindowMs: c.duration(defaults.at('catchupWindow'), MIN_CATCHUP_WINDOW_MS) ?? DEFAULT_CATCHUP_WINDOW_MS,
    alerts: readRouteList(c, defaults.at('alerts'), routes) ?? [],
    maxStepAttempts: c.integer(defaults.at('maxStepAttempts'), 1, MAX_STEP_ATTEMPTS),
    schedule: readSchedule(c, defaults.at('schedule')),
    hasSchedule: defaults.has('schedule'),
  };
}

/** Route names, each declared in alerts.webhooks and listed once. */
function readRouteList(c: Checker, node: Node, routes: ReadonlySet<string>): string[] | undefined {
  const items = c.list(node);
  if (!items) return undefined;
  const names: string[] = [];
  for (const item of items) {
    const name = c.string(item);
    if (name === undefined) continue;
    if (!routes.has(name)) c.add(item.path, `route ${JSON.stringify(name)} is not defined in alerts.webhooks`);
    else if (names.includes(name)) c.add(item.path, `route ${JSON.stringify(name)} is listed twice`);
    names.push(name);
  }
  return names;
}

function readSecrets(c: Checker, node: Node, defaults: Defaults, routes: ReadonlySet<string>): ManagedSecret[] {
  if (!c.present(node, ' (a list of the secrets rotor manages, each with an id and a schedule)')) return [];
  const items = c.list(node);
  if (!items) return [];
  if (items.length === 0) c.add(node.path, 'is empty; list at least one secret');
  const firstAt = new Map<string, number>();
  const secrets: ManagedSecret[] = [];
  for (const [i, item] of items.entries()) {
    const secret = readSecret(c, item, defaults, routes);
    if (secret) secrets.push(secret);
    // Taken from the raw item so a duplicate is reported even when the secret has other problems.
    const id = isMapping(item.value) ? item.value.id : undefined;
    if (typeof id !== 'string') continue;
    const first = firstAt.get(id);
    if (first === undefined) firstAt.set(id, i);
    else c.add([...item.path, 'id'], `${JSON.stringify(id)} is declared twice (first at secrets[${first}])`);
  }
  return secrets;
}

/** One secret, with the defaults filled in for what it does not say. */
function readSecret(c: Checker, node: Node, defaults: Defaults, routes: ReadonlySet<string>): ManagedSecret | undefined {
  const secret = c.section(node, SECRET_KEYS);
  if (!secret) return undefined;
  const id = readSecretId(c, secret.at('id'));
  const description = c.string(secret.at('description'));
  const strategy = c.oneOf(secret.at('strategy'), STRATEGIES);
  const schedule = secret.has('schedule') ? readSchedule(c, secret.at('schedule')) : defaults.schedule;
  if (!secret.has('schedule') && !defaults.hasSchedule) c.add(secret.at('schedule').path, 'is required (here or in defaults.schedule)');
  const graceMs = c.duration(secret.at('grace'), 0) ?? defaults.graceMs;
  const catchupWindowMs = c.duration(secret.at('catchupWindow'), MIN_CATCHUP_WINDOW_MS) ?? defaults.catchupWindowMs;
  const passwordPolicy = readPasswordPolicy(c, secret.at('passwordPolicy'));
  const retirement = readRetirement(c, secret.at('retirement'));
  if (retirement && strategy === 'single-user') c.add(secret.at('retirement').path, 'only applies to the alternating-users strategy');
  const alerts = readRouteList(c, secret.at('alerts'), routes) ?? defaults.alerts;
  const maxStepAttempts = c.integer(secret.at('maxStepAttempts'), 1, MAX_STEP_ATTEMPTS) ?? defaults.maxStepAttempts;
  const paused = c.boolean(secret.at('paused'));
  const note = c.string(secret.at('note'));
  if (note !== undefined && !secret.has('paused')) c.add(secret.at('note').path, 'only applies together with paused');
  if (id === undefined || schedule === undefined) return undefined;
  return compact({
    id,
    description,
    strategy,
    schedule,
    graceMs,
    catchupWindowMs,
    passwordPolicy,
    retirement,
    alerts,
    maxStepAttempts,
    paused,
    note,
  });
}

function readSecretId(c: Checker, node: Node): string | undefined {
  if (!c.present(node)) return undefined;
  const id = readNonEmpty(c, node);
  if (id === undefined || id.length <= MAX_SECRET_ID_LENGTH) return id;
  return c.add(node.path, `is longer than ${MAX_SECRET_ID_LENGTH} characters`);
}

/** A schedule: exactly one of `every` (with `offset`) or `cron` (with `timezone`); `jitter` and `window` go with both. */
function readSchedule(c: Checker, node: Node): ScheduleConfig | undefined {
  const schedule = c.section(node, SCHEDULE_KEYS);
  if (!schedule) return undefined;
  const everyMs = c.duration(schedule.at('every'), MIN_EVERY_MS);
  const offsetMs = c.duration(schedule.at('offset'), 0);
  const cron = readCron(c, schedule.at('cron'));
  const timezone = readTimeZone(c, schedule.at('timezone'));
  const jitterMs = c.duration(schedule.at('jitter'), 0);
  // A window's hours are read in the cron's time zone unless it names its own.
  const window = readWindow(c, schedule.at('window'), schedule.has('cron') ? timezone : undefined);
  const isEvery = schedule.has('every');
  if (isEvery === schedule.has('cron')) {
    return c.add(schedule.path, `needs exactly one of every or cron${isEvery ? ', got both' : ''}`);
  }
  if (!isEvery) {
    if (schedule.has('offset')) c.add(schedule.at('offset').path, 'only applies to every schedules');
    return cron === undefined ? undefined : compact<ScheduleConfig>({ kind: 'cron', cron, timezone: timezone ?? 'UTC', jitterMs, window });
  }
  if (schedule.has('timezone')) c.add(schedule.at('timezone').path, 'only applies to cron schedules');
  if (everyMs === undefined) return undefined;
  for (const [key, ms] of [['offset', offsetMs], ['jitter', jitterMs]] as const) {
    const at = schedule.at(key);
    if (ms !== undefined && ms >= everyMs) c.add(at.path, `${describe(at.value)} must be shorter than every (${formatDuration(everyMs)})`);
  }
  return compact<ScheduleConfig>({ kind: 'every', everyMs, offsetMs, jitterMs, window });
}

/** A 5-field cron expression (or @hourly, @daily, @weekly, @monthly) that cron-parser accepts. */
function readCron(c: Checker, node: Node): string | undefined {
  const text = c.string(node);
  if (text === undefined) return undefined;
  const expression = text.trim();
  const reason = cronProblem(expression);
  if (reason === undefined) return expression;
  return c.add(node.path, `${JSON.stringify(text)} is not a 5-field cron expression: ${reason}`);
}

function cronProblem(expression: string): string | undefined {
  if (expression.startsWith('@')) {
    return CRON_MACROS.includes(expression) ? undefined : `the only macros allowed are ${CRON_MACROS.join(', ')}`;
  }
  const fields = expression.split(/\s+/).filter((f) => f !== '').length;
  if (fields !== 5) return `it has ${fields} field${fields === 1 ? '' : 's'}, not minute hour day-of-month month day-of-week`;
  try {
    CronExpressionParser.parse(expression);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** An IANA zone; its case is corrected ("europe/berlin" -> "Europe/Berlin") because Temporal's lookup is exact. */
function readTimeZone(c: Checker, node: Node): string | undefined {
  const text = c.string(node);
  if (text === undefined) return undefined;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en-US', { timeZone: text }).resolvedOptions().timeZone;
  } catch {
    return c.add(node.path, `${JSON.stringify(text)} is not an IANA time zone`);
  }
  return resolved.toLowerCase() === text.toLowerCase() ? resolved : text;
}

function readWindow(c: Checker, node: Node, defaultTimeZone = 'UTC'): WindowConfig | undefined {
  const window = c.section(node, WINDOW_KEYS);
  if (!window) return undefined;
  const start = readClock(c, window.at('start'));
  const end = readClock(c, window.at('end'));
  if (start !== undefined && start === end) {
    c.add(window.at('end').path, `${JSON.stringify(end)} equals start; leave window out to allow any time`);
  }
  const timezone = readTimeZone(c, window.at('timezone')) ?? defaultTimeZone;
  const days = readDays(c, window.at('days'));
  if (start === undefined || end === undefined) return undefined;
  return compact({ start, end, timezone, days });
}

function readClock(c: Checker, node: Node): string | undefined {
  if (!c.present(node, ' (HH:MM)')) return undefined;
  const text = c.string(node);
  if (text === undefined || CLOCK.test(text)) return text;
  return c.add(node.path, `${JSON.stringify(text)} is not a time of day as HH:MM (00:00 to 23:59)`);
}

function readDays(c: Checker, node: Node): Weekday[] | undefined {
  const items = c.list(node);
  if (!items) return undefined;
  if (items.length === 0) return c.add(node.path, 'is empty; list at least one day or leave days out');
  const days: Weekday[] = [];
  for (const item of items) {
    const day = c.oneOf(item, WEEKDAYS);
    if (day === undefined) continue;
    if (days.includes(day)) c.add(item.path, `${JSON.stringify(day)} is listed twice`);
    else days.push(day);
  }
  return days;
}

/** The keys given; the policy is also checked as a whole (a password must be possible). */
function readPasswordPolicy(c: Checker, node: Node): Partial<PasswordPolicy> | undefined {
  const section = c.section(node, PASSWORD_POLICY_KEYS);
  if (!section) return undefined;
  const policy: Partial<PasswordPolicy> = compact({
    length: c.integer(section.at('length'), 8, 4096),
    excludeCharacters: c.string(section.at('excludeCharacters')),
  });
  for (const flag of PASSWORD_FLAGS) {
    const value = c.boolean(section.at(flag));
    if (value !== undefined) policy[flag] = value;
  }
  try {
    resolvePasswordPolicy(policy);
  } catch (error) {
    c.add(section.path, (error as Error).message.replace(/^password policy: /, ''));
  }
  return policy;
}

/** The keys given; at rotation they override the secret's `rotor:` tags, key by key. */
function readRetirement(c: Checker, node: Node): Partial<RetirementPolicy> | undefined {
  const section = c.section(node, RETIREMENT_KEYS);
  if (!section) return undefined;
  return compact({
    retire: c.oneOf(section.at('retire'), RETIRE_MODES),
    liveSessions: c.oneOf(section.at('liveSessions'), LIVE_SESSION_MODES),
    maxWaitMs: c.duration(section.at('maxWait'), 0),
  });
}

/** The settings a worker runs with when it is given no rotor.yaml: no managed secrets, no alert routes. */
export function defaultConfig(): RotorConfig {
  return {
    secrets: [],
    alerts: { stuckPhaseBudgetMs: DEFAULT_STUCK_PHASE_BUDGET_MS, webhooks: {} },
    throughput: { ...DEFAULT_THROUGHPUT },
    metrics: { ...DEFAULT_METRICS },
  };
}
