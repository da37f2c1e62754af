import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The examples import rotor as a user does; in this repository that is the source (tsx reads tsconfig's paths).
  resolve: { alias: { 'rotor/rotators': path.resolve('src/rotators/index.ts'), 'rotor/worker': path.resolve('src/worker/index.ts') } },
  test: {
    // The Temporal native bridge crashes under worker threads: forks only.
    pool: 'forks',
    // Integration tests share one stack and the machine has two cores: one file at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
    reporters: ['default'],
  },
});
