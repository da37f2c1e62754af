import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName, until } from '../helpers/env';
import { logsIn, passwordAt, roleWithSecret, rotationClient } from '../helpers/stack';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * rotor as a user installs it: `npm pack` (which builds dist/), the tarball installed into a new project, each
 * entry point loaded from compiled JS, its types checked by tsc through the package's `exports`.
 */
let app: string;

async function node(code: string, type: 'commonjs' | 'module' = 'commonjs'): Promise<string> {
  const { stdout } = await run(process.execPath, [`--input-type=${type}`, '-e', code], { cwd: app, env: { ...process.env, NODE_PATH: '' } });
  return stdout.trim();
}

beforeAll(async () => {
  app = await mkdtemp(path.join(tmpdir(), 'rotor-app-'));
  const { stdout } = await run(npm, ['pack', '--json', '--pack-destination', app], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string }[];
  const filename = packed!.filename;
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'rotor-user-app', private: true, version: '1.0.0' }));
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(app, filename)], {
    cwd: app,
    maxBuffer: 64 * 1024 * 1024,
  });
}, 300_000);

afterAll(async () => {
  if (app) await rm(app, { recursive: true, force: true });
});

describe('the packed rotor package, installed into a clean project', () => {
  it('ships compiled JS with types, and no TypeScript sources or tests', async () => {
    const files = await readdir(path.join(app, 'node_modules/rotor'), { recursive: true });
    expect(files).toContain(path.join('dist', 'client', 'index.js'));
    expect(files).toContain(path.join('dist', 'client', 'index.d.ts'));
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.some((f) => f.startsWith('test') || f.startsWith('src'))).toBe(false);
  });

  it('rotor/client exports the RotationClient and its helpers, from require and from import', async () => {
    const names = JSON.parse(await node(`console.log(JSON.stringify(Object.keys(require('rotor/client')).sort()))`)) as string[];
    expect(names).toEqual(expect.arrayContaining(['RotationClient', 'ScheduleManager', 'loadConfig', 'parseDuration', 'ErrorType']));
    expect(await node(`import { RotationClient } from 'rotor/client'; console.log(typeof RotationClient.connect)`, 'module')).toBe('function');
    expect(await node(`console.log(require('rotor').RotationClient === require('rotor/client').RotationClient)`)).toBe('true');
  });

  it('rotor/rotators exports the contract\'s helpers and the built-in strategies', async () => {
    const kinds = await node(`console.log(Object.keys(require('rotor/rotators').rotators).sort().join(','))`);
    expect(kinds).toBe('api-key,jwt-signing-key,mysql-alternating-users,mysql-single-user,postgres-alternating-users,postgres-single-user');
  });

  it('rotor/worker exports createRotorWorker and startWorker', async () => {
    expect(await node(`const w = require('rotor/worker'); console.log(typeof w.createRotorWorker, typeof w.startWorker)`)).toBe('function function');
  });

  it('`rotor worker` from the package loads its prebuilt workflow bundle and rotates a secret', async () => {
    const files = await readdir(path.join(app, 'node_modules/rotor/dist'));
    expect(files).toContain('workflow-bundle.js');
    const taskQueue = uniqueName('e2e-packaged');
    const seen = new Set<string>();
    const { secretId, username, password } = await roleWithSecret('e2e', 'packaged', seen);
    const worker = spawn(path.join(app, 'node_modules/.bin/rotor'), ['worker'], {
      cwd: app,
      env: { ...process.env, NODE_PATH: '', ROTOR_TASK_QUEUE: taskQueue, ROTOR_AUDIT_DISABLED: 'true', ROTOR_METRICS_PORT: '0', ROTOR_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    worker.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const rotor = await rotationClient(taskQueue);
    try {
      await until('the packaged worker to start', () => output.includes('rotor worker started') || undefined);
      await rotor.rotate(secretId, { graceMs: 0 });
      expect((await rotor.wait(secretId)).outcome).toBe('completed');
      expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
      expect(await logsIn(username, password)).toBe(false);
      // It loaded the bundle `npm run build` made: webpack never ran in the worker.
      expect(output).not.toMatch(/Workflow bundle created|webpack/i);
    } finally {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
      await rotor.client.connection.close();
    }
  }, 120_000);

  it('rotor/consumers loads the AWS SDK and nothing of Temporal, and no native module; each driver with its first pool', async () => {
    const loaded = JSON.parse(
      await node(
        `const c = require('rotor/consumers'); const files = () => Object.keys(require.cache);` +
          `const at = (name) => files().some((f) => f.includes('/node_modules/' + name + '/'));` +
          `const before = { pg: at('pg'), mysql2: at('mysql2') };` +
          `const cache = new c.SecretCache({ store: new c.InMemorySecretStore() });` +
          `c.createRotatingPgPool({ cache, secretId: 'x' }); const afterPg = { pg: at('pg'), mysql2: at('mysql2') };` +
          `c.createRotatingMysqlPool({ cache, secretId: 'x' });` +
          `console.log(JSON.stringify({ names: Object.keys(c).sort(), before, afterPg, mysql2: at('mysql2'), temporal: files().filter((f) => f.includes('@temporalio')), native: files().filter((f) => f.endsWith('.node')), aws: at('@aws-sdk/client-secrets-manager') }))`,
      ),
    ) as { names: string[]; before: object; afterPg: object; mysql2: boolean; temporal: string[]; native: string[]; aws: boolean };
    expect(loaded.names).toEqual(
      expect.arrayContaining(['SecretCache', 'SecretCacheStaleError', 'createRotatingPgPool', 'createRotatingMysqlPool', 'ConsumerReporter', 'AwsSecretsManagerStore', 'InMemorySecretStore', 'Stage', 'ApiKeyVerifier', 'apiKeyMiddleware', 'JwtSigner', 'JwtVerifier', 'jwksHandler']),
    );
    expect(loaded.before).toEqual({ pg: false, mysql2: false });
    expect(loaded.afterPg).toEqual({ pg: true, mysql2: false });
    expect(loaded.mysql2).toBe(true);
    expect(loaded.temporal).toEqual([]);
    expect(loaded.native).toEqual([]);
    expect(loaded.aws).toBe(true);
    expect(await node(`import { SecretCache } from 'rotor/consumers'; console.log(typeof SecretCache)`, 'module')).toBe('function');
  });

  it('keeps its internals private: only the exported entry points resolve', async () => {
    await expect(node(`require('rotor/dist/activities/index.js')`)).rejects.toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it('type-checks a program that uses rotor/client as its README shows', async () => {
    await writeFile(
      path.join(app, 'use.ts'),
      [
        "import { RotationClient, parseDuration, type RotationStatus } from 'rotor/client';",
        "import type { Rotator } from 'rotor/rotators';",
        "import { SecretCache, InMemorySecretStore, type SecretSnapshot } from 'rotor/consumers';",
        'export async function main(): Promise<RotationStatus | undefined> {',
        '  const rotor = await RotationClient.connect();',
        "  await rotor.rotate('prod/db/app', { graceMs: parseDuration('1h'), trigger: { kind: 'api', by: 'deploy-bot' } });",
        "  return rotor.status('prod/db/app');",
        '}',
        'export type Kind = Rotator["kind"];',
        'export const cache = new SecretCache({ store: new InMemorySecretStore(), refreshIntervalMs: 30_000 });',
        "export const read: Promise<SecretSnapshot> = cache.get('prod/db/app');",
        '',
      ].join('\n'),
    );
    await run(process.execPath, [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--skipLibCheck',
      '--types',
      'node',
      '--typeRoots',
      path.join(ROOT, 'node_modules/@types'),
      'use.ts',
    ], { cwd: app });
  });

  it('installs the rotor command', async () => {
    const { stdout } = await run(path.join(app, 'node_modules/.bin/rotor'), ['--help'], { cwd: app });
    expect(stdout).toMatch(/Usage: rotor/);
    expect(stdout).toMatch(/rotate \[options\] <secretId>/);
  });
});
