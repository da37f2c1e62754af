import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

// In this repository the packages' names resolve to their sources, as tsconfig's `paths` say for tsc and tsx: a
// test runs the code as it stands, never a stale build. (The workflow bundles webpack makes read the built
// rotor-consumers: scripts/node-deps.sh builds it.)
const { paths } = JSON.parse(readFileSync('tsconfig.json', 'utf8')).compilerOptions as {
  paths: Record<string, [string]>;
};
const alias = Object.entries(paths).map(([name, [file]]) => ({
  find: new RegExp(`^${name}$`),
  replacement: path.resolve(file),
}));

export default defineConfig({
  resolve: { alias },
  test: {
    // The Temporal native bridge crashes under worker threads: forks only.
    pool: 'forks',
    // Integration tests share one stack and the machine has two cores: one file at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    reporters: ['default'],
  },
});
