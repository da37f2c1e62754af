import { resolvePasswordPolicy } from '../rotators/password-policy';
import { DEFAULT_GRACE, MAX_GRACE, MAX_GRACE_MS } from '../shared/constants';
import { bakeFitsGrace, type BakePolicy } from '../shared/bake';
import { formatDuration, parseDuration, storeNameOf } from 'rotor-consumers/core';
import { LIVE_SESSION_MODES, RETIRE_MODES, STRATEGIES } from '../shared/vocabulary';
import { type PasswordPolicy, type RetirementPolicy } from '../shared/rotation';
import { compact, describe, isMapping, type Checker, type Node } from './checker';
import { readBake, readReports } from './consumer-readers';
import { readSchedule } from './schedule-readers';
import { AWS_STORE, readStores } from './store-readers';
import { readHooks } from './hook-readers';
import type { ManagedSecret, RotorConfig, ScheduleConfig, StoresConfig, WebhookRouteConfig } from './types';

const MAX_GRACE_LIMIT = { text: MAX_GRACE, ms: MAX_GRACE_MS };

/* rotor.yaml, section by section: each reader takes the checker and a node and returns the typed section. */

export const MINUTE_MS = 60_000;
/** Temporal refuses a schedule catch-up window shorter than 10 seconds. */
const MIN_CATCHUP_WINDOW_MS = 10_000;
const DEFAULT_CATCHUP_WINDOW_MS = 60 * MINUTE_MS;
const MIN_STUCK_PHASE_BUDGET_MS = MINUTE_MS;
export const DEFAULT_STUCK_PHASE_BUDGET_MS = 30 * MINUTE_MS;
export const DEFAULT_THROUGHPUT: RotorConfig['throughput'] = { storeWritesPerSecond: 40, perTargetConcurrency: 4 };
export const DEFAULT_METRICS: RotorConfig['metrics'] = { port: 9464, host: '0.0.0.0' };
const MAX_SECRET_ID_LENGTH = 2048;
/** Secrets Manager's quota per second, shared by PutSecretValue, UpdateSecretVersionStage and UpdateSecret. */
const MAX_STORE_WRITES_PER_SECOND = 50;
const MAX_PER_TARGET_CONCURRENCY = 100;
const MAX_STEP_ATTEMPTS = 100;

const ROOT_KEYS = ['version', 'defaults', 'alerts', 'throughput', 'metrics', 'reports', 'stores', 'hooks', 'secrets'];
const DEFAULTS_KEYS = ['grace', 'catchupWindow', 'alerts', 'maxStepAttempts', 'schedule', 'bake'];
const ALERTS_KEYS = ['stuckPhaseBudget', 'webhooks'];
const ROUTE_KEYS = ['url', 'urlFromEnv', 'header'];
const HEADER_KEYS = ['name', 'valueFromEnv'];
const THROUGHPUT_KEYS = ['storeWritesPerSecond', 'perTargetConcurrency', 'fleetStoreWritesPerSecond'];
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
  'bake',
  'paused',
  'note',
  'tags',
];
const TAG = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const PASSWORD_FLAGS = [
  'excludeUppercase',
  'excludeLowercase',
  'excludeNumbers',
  'excludePunctuation',
  'requireEachIncludedType',
] as const;
const PASSWORD_POLICY_KEYS = ['length', 'excludeCharacters', ...PASSWORD_FLAGS];
const RETIREMENT_KEYS = ['retire', 'liveSessions', 'maxWait'];

const ROUTE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** `fields` without the ones that are undefined (optional settings stay absent, not `undefined`). */
function withDefined<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function readRoot(c: Checker, node: Node): RotorConfig | undefined {
  const root = c.section(node, ROOT_KEYS);
  if (!root) return undefined;
  const version = root.at('version');
  if (version.value !== undefined && version.value !== 1)
    c.add(version.path, `${describe(version.value)} is not a supported version (expected 1)`);
  const alerts = readAlerts(c, root.at('alerts'));
  const defaults = readDefaults(c, root.at('defaults'), alerts.routes);
  const throughput = c.settings(root.at('throughput'), THROUGHPUT_KEYS);
  const metrics = c.settings(root.at('metrics'), METRICS_KEYS);
  const stores = readStores(c, root.at('stores'));
  const secrets = readSecrets(c, root.at('secrets'), defaults, alerts.routes);
  checkStoresNamed(c, root.at('secrets'), secrets, stores);
  return {
    secrets,
    stores,
    alerts: alerts.config,
    throughput: {
      storeWritesPerSecond:
        c.integer(throughput.at('storeWritesPerSecond'), 1, MAX_STORE_WRITES_PER_SECOND) ??
        DEFAULT_THROUGHPUT.storeWritesPerSecond,
      perTargetConcurrency:
        c.integer(throughput.at('perTargetConcurrency'), 1, MAX_PER_TARGET_CONCURRENCY) ??
        DEFAULT_THROUGHPUT.perTargetConcurrency,
      ...withDefined({
        fleetStoreWritesPerSecond: c.integer(
          throughput.at('fleetStoreWritesPerSecond'),
          1,
          MAX_STORE_WRITES_PER_SECOND,
        ),
      }),
    },
    metrics: {
      port: c.integer(metrics.at('port'), 0, 65_535) ?? DEFAULT_METRICS.port,
      host: readNonEmpty(c, metrics.at('host')) ?? DEFAULT_METRICS.host,
    },
    reports: readReports(c, root.at('reports')),
    hooks: readHooks(c, root.at('hooks')),
  };
}

/** Each secret id that names a store (`bao:secret/...`) names one rotor.yaml declares. */
function checkStoresNamed(c: Checker, node: Node, secrets: ManagedSecret[], stores: StoresConfig): void {
  const names = [AWS_STORE, ...stores.openbao.map((s) => s.name)];
  for (const [i, secret] of secrets.entries()) {
    const name = storeNameOf(secret.id);
    if (name === undefined || names.includes(name)) continue;
    c.add(
      [...node.path, i, 'id'],
      `names the store ${JSON.stringify(name)}, which stores does not declare (${names.join(', ')})`,
    );
  }
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
    c.add(
      node.path,
      `${JSON.stringify(name)} is not a route name (1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit)`,
    );
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
  return readPattern(
    c,
    node,
    ENV_NAME,
    'is not an environment variable name (letters, digits and _, not starting with a digit)',
  );
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
  bake?: BakePolicy;
}

function readDefaults(c: Checker, node: Node, routes: ReadonlySet<string>): Defaults {
  const defaults = c.settings(node, DEFAULTS_KEYS);
  return {
    graceMs: c.duration(defaults.at('grace'), 0, MAX_GRACE_LIMIT) ?? parseDuration(DEFAULT_GRACE),
    catchupWindowMs: c.duration(defaults.at('catchupWindow'), MIN_CATCHUP_WINDOW_MS) ?? DEFAULT_CATCHUP_WINDOW_MS,
    alerts: readRouteList(c, defaults.at('alerts'), routes) ?? [],
    maxStepAttempts: c.integer(defaults.at('maxStepAttempts'), 1, MAX_STEP_ATTEMPTS),
    schedule: readSchedule(c, defaults.at('schedule')),
    hasSchedule: defaults.has('schedule'),
    // Checked against each secret's grace below, where both are known.
    bake: readBake(c, defaults.at('bake'), undefined) || undefined,
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
function readSecret(
  c: Checker,
  node: Node,
  defaults: Defaults,
  routes: ReadonlySet<string>,
): ManagedSecret | undefined {
  const secret = c.section(node, SECRET_KEYS);
  if (!secret) return undefined;
  const id = readSecretId(c, secret.at('id'));
  const description = c.string(secret.at('description'));
  const strategy = c.oneOf(secret.at('strategy'), STRATEGIES);
  const schedule = secret.has('schedule') ? readSchedule(c, secret.at('schedule')) : defaults.schedule;
  if (!secret.has('schedule') && !defaults.hasSchedule)
    c.add(secret.at('schedule').path, 'is required (here or in defaults.schedule)');
  const graceMs = c.duration(secret.at('grace'), 0, MAX_GRACE_LIMIT) ?? defaults.graceMs;
  const catchupWindowMs = c.duration(secret.at('catchupWindow'), MIN_CATCHUP_WINDOW_MS) ?? defaults.catchupWindowMs;
  const passwordPolicy = readPasswordPolicy(c, secret.at('passwordPolicy'));
  const retirement = readRetirement(c, secret.at('retirement'));
  if (retirement && strategy === 'single-user')
    c.add(secret.at('retirement').path, 'only applies to the alternating-users strategy');
  const alerts = readRouteList(c, secret.at('alerts'), routes) ?? defaults.alerts;
  const maxStepAttempts = c.integer(secret.at('maxStepAttempts'), 1, MAX_STEP_ATTEMPTS) ?? defaults.maxStepAttempts;
  const ownBake = readBake(c, secret.at('bake'), graceMs);
  const bake = ownBake === false ? undefined : (ownBake ?? defaults.bake);
  if (!secret.has('bake') && bake && !bakeFitsGrace(bake, graceMs)) {
    c.add(
      secret.at('grace').path,
      `${formatDuration(graceMs)} is shorter than defaults.bake.window (${formatDuration(bake.windowMs)}): the bake must fit in grace`,
    );
  }
  const paused = c.boolean(secret.at('paused'));
  const note = c.string(secret.at('note'));
  if (note !== undefined && !secret.has('paused')) c.add(secret.at('note').path, 'only applies together with paused');
  const tags = readTags(c, secret.at('tags'));
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
    bake,
    paused,
    note,
    tags,
  });
}

/** `tags`: names `rotor rotate --tag` selects secrets by (1 to 63 of a-z, 0-9, _, . and -). */
function readTags(c: Checker, node: Node): string[] | undefined {
  const items = c.list(node);
  if (!items) return undefined;
  const tags: string[] = [];
  for (const item of items) {
    const tag = c.string(item);
    if (tag === undefined) continue;
    if (!TAG.test(tag)) c.add(item.path, `${JSON.stringify(tag)} is not a tag (1 to 63 of a-z, 0-9, _, . and -)`);
    else tags.push(tag);
  }
  return tags;
}

function readSecretId(c: Checker, node: Node): string | undefined {
  if (!c.present(node)) return undefined;
  const id = readNonEmpty(c, node);
  if (id === undefined || id.length <= MAX_SECRET_ID_LENGTH) return id;
  return c.add(node.path, `is longer than ${MAX_SECRET_ID_LENGTH} characters`);
}

/** A schedule: exactly one of `every` (with `offset`) or `cron` (with `timezone`); `jitter` and `window` go with both. */

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
