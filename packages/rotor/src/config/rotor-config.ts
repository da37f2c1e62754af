import { DEFAULT_STORES } from './store-readers';
import { readFile } from 'node:fs/promises';
import { InvalidInputError } from 'rotor-consumers/core';
import { Checker, readYaml } from './checker';
import { DEFAULT_REPORTS } from './consumer-readers';
import { DEFAULT_METRICS, DEFAULT_STUCK_PHASE_BUDGET_MS, DEFAULT_THROUGHPUT, readRoot } from './readers';
import { ConfigError, type RotorConfig } from './types';

/*
 * rotor.yaml, the declarative list of managed secrets. `parseConfig` is pure: it walks the parsed YAML once and
 * collects every problem with its path (`secrets[3].schedule.every`) before throwing, so an operator fixes the file
 * in one go (checker.ts: the generic walk; readers.ts and schedule-readers.ts: the sections). `loadConfig` reads
 * the file.
 */

export { describeSchedule } from './schedule-readers';
export * from './types';

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
    throw new InvalidInputError(
      missing ? `config file ${file} not found` : `cannot read config file ${file}: ${(error as Error).message}`,
    );
  }
  return parseConfig(text, file);
}

/** The settings a worker runs with when it is given no rotor.yaml: no managed secrets, no alert routes. */
export function defaultConfig(): RotorConfig {
  return {
    secrets: [],
    alerts: { stuckPhaseBudgetMs: DEFAULT_STUCK_PHASE_BUDGET_MS, webhooks: {} },
    throughput: { ...DEFAULT_THROUGHPUT },
    metrics: { ...DEFAULT_METRICS },
    reports: { ...DEFAULT_REPORTS, tokens: [] },
    stores: { ...DEFAULT_STORES, openbao: [] },
    hooks: {},
  };
}
