import { parseDocument } from 'yaml';
import { DURATION_EXAMPLES, formatDuration, parseDuration } from 'rotor-consumers/core';
import type { ConfigProblem } from './types';

export { compact } from '../shared/compact';

/*
 * A generic checker for parsed YAML: every reader records a problem with its path (`secrets[3].schedule.every`) and
 * carries on, so one pass reports everything wrong with a file. Hand-written rather than a zod schema because zod
 * skips an object's cross-field checks as soon as one of its fields is bad, and each of its issue kinds would need
 * re-wording into rotor's sentences anyway. Nothing here knows rotor.yaml's sections: see readers.ts.
 */

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

export type Path = readonly (string | number)[];

/** A value of the parsed YAML and where it is. */
export interface Node {
  readonly value: unknown;
  readonly path: Path;
}

/** A mapping whose keys were checked against the known ones. */
export class Section {
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
export class Checker {
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

  /**
   * A duration with a unit, at least `minMs` and at most `max` (its text and milliseconds). A bare number is
   * refused: `grace: 60` reads as 60 ms otherwise.
   */
  duration(node: Node, minMs: number, max?: { text: string; ms: number }): number | undefined {
    const { value } = node;
    if (value === undefined) return undefined;
    if (typeof value === 'number' || (typeof value === 'string' && /^\s*\d+\s*$/.test(value))) {
      return this.add(node.path, `${describe(value)} has no unit ${DURATION_EXAMPLES}`);
    }
    if (typeof value !== 'string')
      return this.add(node.path, `expected a duration ${DURATION_EXAMPLES}, got ${describe(value)}`);
    let ms: number;
    try {
      ms = parseDuration(value);
    } catch {
      return this.add(node.path, `${describe(value)} is not a duration ${DURATION_EXAMPLES}`);
    }
    if (ms < minMs)
      return this.add(node.path, `${describe(value)} is shorter than the minimum of ${formatDuration(minMs)}`);
    if (max && ms > max.ms) return this.add(node.path, `${describe(value)} is longer than the maximum of ${max.text}`);
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
export function describe(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (isMapping(value)) return 'a mapping';
  if (typeof value === 'object') return 'an unsupported value';
  return JSON.stringify(value);
}

export function isMapping(value: unknown): value is Record<string, unknown> {
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

/** The parsed YAML; syntax errors (duplicate keys included) become problems at `line L, column C`. */
export function readYaml(c: Checker, text: string): unknown {
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
