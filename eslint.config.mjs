import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  {
    ignores: ['**/node_modules/', '**/dist/', '.rotor-stack/', 'coverage/', 'packages/rotor/bin/', 'packages/*/docs/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // Type-aware: a promise nobody awaits is a step that may never happen, or an error nobody sees.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      'no-shadow': 'off',
      '@typescript-eslint/no-shadow': [
        'error',
        { ignoreTypeValueShadow: true, ignoreFunctionTypeParameterNameValueShadow: true },
      ],
    },
  },
  {
    // Workflow code must stay deterministic: no I/O modules, no Node built-ins, only type imports of activities.
    files: ['packages/rotor/src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...nodeBuiltins,
            'pg',
            'mysql2',
            'mysql2/promise',
            'pino',
            'prom-client',
            'yaml',
            'cron-parser',
            '@temporalio/worker',
            '@temporalio/client',
            '@temporalio/activity',
          ].map((name) => ({
            name,
            message: 'workflow code is deterministic: do I/O in an activity',
          })),
          patterns: [
            { group: ['@aws-sdk/*', '@smithy/*'], message: 'workflow code is deterministic: do I/O in an activity' },
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'import only the types of activities',
            },
            { group: ['**/config/*'], allowTypeImports: true, message: 'import only the types of the config' },
            {
              group: [
                '**/stores/*',
                '**/rotators/*',
                '**/credentials/*',
                '**/worker/*',
                '**/client/*',
                '**/cli/*',
                '**/audit/*',
                '**/alerts/*',
                '**/schedules/*',
              ],
              message: 'workflow code must not import I/O layers',
            },
          ],
        },
      ],
    },
  },
  {
    // Plain JavaScript run by Node as it is: the project's scripts, and the build check run on the oldest Node.
    files: ['**/*.cjs', '**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', require: 'readonly', Buffer: 'readonly', console: 'readonly', fetch: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'packages/*/test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
