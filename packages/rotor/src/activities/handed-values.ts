import { AsyncLocalStorage } from 'node:async_hooks';
import type { SecretStore } from 'rotor-consumers/stores';

/*
 * The values a step was handed (every version it read from the store, every value it wrote, the admin secrets its
 * rotator read), so that no error leaves the step quoting one: a target may echo what it was sent (Redis quotes an
 * ACL rule it cannot parse; MySQL 5.6-era servers quote IDENTIFIED BY '<password>' in syntax errors), and a team's
 * rotator may put a value in a message by mistake.
 */

/** Each value handed to the step, and whether its parts are looked for too (not for a whole JSON text: its names). */
const handed = new AsyncLocalStorage<Map<string, boolean>>();
/** Values shorter than this are not looked for (a port, a flag): they could not be told from ordinary text. */
const MIN_LENGTH = 4;
const REDACTED = '[redacted]';

/** Runs a step, noting the values it is handed. */
export function withHandedValues<T>(work: () => Promise<T>): Promise<T> {
  return handed.run(new Map(), work);
}

/**
 * Fields of a secret's JSON that name things rather than hold secrets (AWS's documented database fields, rotor's own):
 * messages must go on naming them. Every other string in a secret (the password, a key, a field a team's rotator
 * added) is a value.
 */
const DESCRIPTIVE_FIELDS = new Set([
  'engine',
  'host',
  'port',
  'username',
  'dbname',
  'masterarn',
  'ssl',
  'testQuery',
  'dbClusterIdentifier',
  'dbInstanceIdentifier',
  'proxyname',
  'service',
  'prefix',
  'kid',
  'alg',
  'kty',
  'crv',
  'use',
]);

/**
 * The fields of rotor's TLS secrets (`engine` one of TLS_ENGINES) that name things or hold public material: only in
 * those secrets, where rotor knows what they hold (in a team's own secret, `refresh` may be a refresh token).
 */
const TLS_ENGINES = new Set(['tls-certificate', 'tls-ca', 'tls-trust-bundle', 'acme-account']);
const TLS_DESCRIPTIVE_FIELDS = new Set([
  'names',
  'keyType',
  'lifetime',
  'type',
  'ca',
  'directory',
  'account',
  'challenge',
  'hook',
  'profile',
  'trust',
  'subject',
  'bundle',
  'certificate',
  'certificates',
  'leaves',
  'maxLeafLifetime',
  'prePublication',
  'refresh',
]);

/** The fields of an encryption keyring that name things: its keys' ids and states, its data tables (never `material`). */
const KEYRING_DESCRIPTIVE_FIELDS = new Set([
  'id',
  'algorithm',
  'state',
  'createdAt',
  'disabledAt',
  'refresh',
  'database',
  'table',
  'primaryKey',
  'column',
  'associatedData',
  'removeAfter',
]);

/** The descriptive fields of rotor's own kinds, by engine, besides DESCRIPTIVE_FIELDS. */
const descriptiveFor = (engine: unknown): Set<string> | undefined =>
  typeof engine !== 'string'
    ? undefined
    : TLS_ENGINES.has(engine)
      ? TLS_DESCRIPTIVE_FIELDS
      : engine === 'encryption-keyring'
        ? KEYRING_DESCRIPTIVE_FIELDS
        : undefined;

/** A descriptive field's value: a scalar, or a list of scalars (a certificate's names). */
const isDescriptive = (key: string, v: unknown, own: Set<string> | undefined) =>
  (DESCRIPTIVE_FIELDS.has(key) || own?.has(key) === true) &&
  (typeof v !== 'object' || (Array.isArray(v) && v.every((x) => typeof x !== 'object')));

/** Notes a secret's value handed to the current step: the whole text and, for JSON, every string it holds. */
export function noteHanded(value: string): void {
  const values = handed.getStore();
  if (!values) return;
  const add = (v: string, parts: boolean) => {
    if (v.length >= MIN_LENGTH) values.set(v, parts || values.get(v) === true);
  };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    add(value, true);
    return;
  }
  // The whole JSON text as it is (a target may echo it), not its parts: those include the names messages keep.
  add(value, typeof json !== 'object' || json === null);
  const own = descriptiveFor((json as { engine?: unknown } | null)?.engine);
  const walk = (v: unknown, depth: number): void => {
    if (typeof v === 'string') add(v, true);
    else if (Array.isArray(v) && depth < 4) for (const x of v) walk(x, depth + 1);
    else if (v && typeof v === 'object' && depth < 4)
      for (const [key, x] of Object.entries(v)) if (!isDescriptive(key, x, own)) walk(x, depth + 1);
  };
  walk(json, 0);
}

/**
 * `text` with every value handed to the current step replaced by [redacted]: the whole value in the forms a target
 * may echo it (as is, JSON-escaped, SQL-quoted with doubled or backslashed quotes), and any part of one of at least
 * PIECE characters (a server that cuts its echo short, as MySQL's `near '...'` does at 80 characters).
 */
export function redactHanded(text: string): string {
  const values = handed.getStore();
  if (!values || values.size === 0) return text;
  const covered: Array<[number, number]> = [];
  const cover = (form: string) => {
    for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + 1)) covered.push([at, at + form.length]);
  };
  for (const [v, parts] of values)
    for (const form of formsOf(v)) {
      cover(form);
      if (parts && form.length >= PIECE) for (let i = 0; i + PIECE <= form.length; i++) cover(form.slice(i, i + PIECE));
    }
  if (covered.length === 0) return text;
  covered.sort((a, b) => a[0] - b[0]);
  // Overlapping and touching ranges become one: one [redacted] per stretch of the text that held a value.
  const merged: Array<[number, number]> = [];
  for (const [start, end] of covered) {
    const last = merged.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  let out = '';
  let from = 0;
  for (const [start, end] of merged) {
    out += text.slice(from, start) + REDACTED;
    from = end;
  }
  return out + text.slice(from);
}

/** The shortest part of a value looked for on its own (shorter parts could not be told from ordinary text). */
const PIECE = 8;

/** The spellings of a value a target may echo: as is, JSON-escaped, and quoted for SQL either way. */
function formsOf(v: string): Set<string> {
  return new Set([
    v,
    JSON.stringify(v).slice(1, -1),
    v.replace(/'/g, "''"),
    v.replace(/\\/g, '\\\\').replace(/'/g, "\\'"),
  ]);
}

/** A store whose reads and writes note the values they carry for the current step. */
export function notingStore(store: SecretStore): SecretStore {
  return new Proxy(store, {
    get(target, name, receiver) {
      const member = Reflect.get(target, name, receiver) as unknown;
      if (typeof member !== 'function') return member;
      return async (...args: unknown[]) => {
        // putPending(secretId, token, value): the value written is handed too.
        if (name === 'putPending' && typeof args[2] === 'string') noteHanded(args[2]);
        const result = (await (member as (...a: unknown[]) => Promise<unknown>).apply(target, args)) as unknown;
        const value = (result as { value?: unknown } | undefined)?.value;
        if (typeof value === 'string') noteHanded(value);
        return result;
      };
    },
  });
}
