import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName, until } from '../helpers/env';
import { mysqlUserWithSecret } from '../helpers/mysql';
import { logsIn, passwordAt, rememberPasswords, roleWithSecret, rotationClient } from '../helpers/stack';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const MiB = 1024 * 1024;

/**
 * Both packages as users install them: `npm pack` of each workspace (which builds it and copies its docs), each
 * tarball installed into a new project, loaded from compiled JS, its types checked by tsc through `exports`.
 * An application installs rotor-consumers (with `pg`); an operator installs rotor (which brings rotor-consumers).
 */
let dir: string;
let tarballs: { consumers: string; rotor: string };
let appDir: string;
let operatorDir: string;
const seen = new Set<string>();

async function install(project: string, specs: string[]): Promise<void> {
  await run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...specs], {
    cwd: project,
    maxBuffer: 64 * MiB,
  });
}

async function newProject(name: string): Promise<string> {
  const project = path.join(dir, name);
  await mkdir(project);
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name, private: true, version: '1.0.0' }));
  return project;
}

async function node(cwd: string, code: string, type: 'commonjs' | 'module' = 'commonjs'): Promise<string> {
  const { stdout } = await run(process.execPath, [`--input-type=${type}`, '-e', code], {
    cwd,
    env: { ...process.env, NODE_PATH: '' },
  });
  return stdout.trim();
}

/** Every file below `root` with its size in bytes (symbolic links not followed). */
async function files(root: string): Promise<{ file: string; bytes: number }[]> {
  const names = await readdir(root, { recursive: true });
  const out: { file: string; bytes: number }[] = [];
  for (const name of names) {
    const s = await stat(path.join(root, name)).catch(() => undefined);
    if (s?.isFile()) out.push({ file: name, bytes: s.size });
  }
  return out;
}

/** The Markdown links of the shipped files that name a file the package does not ship. */
async function brokenLinks(packageDir: string): Promise<string[]> {
  const shipped = new Set((await files(packageDir)).map((f) => f.file));
  const broken: string[] = [];
  for (const file of shipped) {
    if (!file.endsWith('.md')) continue;
    for (const [, href] of (await readFile(path.join(packageDir, file), 'utf8')).matchAll(
      /\]\(([^)\s#]+)(?:#[^)]*)?\)/g,
    )) {
      if (/^[a-z]+:/i.test(href!)) continue;
      const target = path.normalize(path.join(path.dirname(file), href!));
      if (!shipped.has(target)) broken.push(`${file} -> ${href}`);
    }
  }
  return broken;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'rotor-packages-'));
  const { stdout } = await run(
    npm,
    ['pack', '--json', '--pack-destination', dir, '-w', 'rotor-consumers', '-w', 'rotor'],
    { cwd: ROOT, maxBuffer: 64 * MiB },
  );
  const packed = JSON.parse(stdout.slice(stdout.indexOf('['))) as { name: string; filename: string }[];
  const tarball = (name: string) => path.join(dir, packed.find((p) => p.name === name)!.filename);
  tarballs = { consumers: tarball('rotor-consumers'), rotor: tarball('rotor') };
  appDir = await newProject('an-application');
  await install(appDir, [tarballs.consumers, 'pg']);
  operatorDir = await newProject('an-operator');
  // rotor depends on rotor-consumers of its own version, which the registry does not have yet: both tarballs.
  await install(operatorDir, [tarballs.rotor, tarballs.consumers]);
}, 600_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rotor-consumers, installed by an application with pg', () => {
  it('ships compiled JS with types, its README, LICENSE and the docs its README links to, and nothing else', async () => {
    const shipped = (await files(path.join(appDir, 'node_modules/rotor-consumers'))).map((f) => f.file);
    expect(shipped).toEqual(
      expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'README.md', 'LICENSE', 'docs/consumers.md']),
    );
    expect(shipped.filter((f) => !/^(dist\/|docs\/|README\.md$|LICENSE$|package\.json$)/.test(f))).toEqual([]);
    expect(shipped.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(await brokenLinks(path.join(appDir, 'node_modules/rotor-consumers'))).toEqual([]);
  });

  it('installs in at most 40 MB, with no Temporal, no bundler, no native module and no driver it was not given', async () => {
    const installed = await files(path.join(appDir, 'node_modules'));
    const bytes = installed.reduce((sum, f) => sum + f.bytes, 0);
    expect(bytes).toBeLessThanOrEqual(40 * MiB);
    const packages = new Set(
      installed.map((f) =>
        f.file
          .split(path.sep)
          .slice(0, f.file.startsWith('@') ? 2 : 1)
          .join('/'),
      ),
    );
    expect([...packages].filter((p) => /^(@temporalio|webpack|@swc|mysql2|typescript|esbuild)(\/|$)/.test(p))).toEqual(
      [],
    );
    expect(installed.filter((f) => f.file.endsWith('.node'))).toEqual([]);
    expect(packages).toContain('pg');
    console.log(`rotor-consumers + pg: ${(bytes / MiB).toFixed(1)} MiB in ${packages.size} packages`);
  });

  it('loads only itself at import; zod, jose, the AWS SDK and each driver with their first use; a missing driver is named', async () => {
    await copyFile(path.join(ROOT, 'packages/consumers/test/load-build.cjs'), path.join(appDir, 'load-build.cjs'));
    const { stdout } = await run(process.execPath, ['load-build.cjs'], {
      cwd: appDir,
      env: { ...process.env, NODE_PATH: '' },
    });
    expect(stdout).toMatch(/rotor-consumers' build works on Node/);
    expect(stdout).toMatch(/mysql2 is not installed: createRotatingMysqlPool names it/);
    const atImport = JSON.parse(
      await node(
        appDir,
        `const before = new Set(Object.keys(require.cache)); require('rotor-consumers'); console.log(JSON.stringify(Object.keys(require.cache).filter((f) => !before.has(f))))`,
      ),
    ) as string[];
    expect(atImport.length).toBeGreaterThan(0);
    expect(
      atImport.filter(
        (f) => !f.includes(`${path.sep}node_modules${path.sep}rotor-consumers${path.sep}dist${path.sep}`),
      ),
    ).toEqual([]);
    expect(
      await node(appDir, `import { SecretCache } from 'rotor-consumers'; console.log(typeof SecretCache)`, 'module'),
    ).toBe('function');
  });

  it('keeps its internals private: only the exported entry points resolve', async () => {
    await expect(node(appDir, `require('rotor-consumers/dist/lazy.js')`)).rejects.toThrow(
      /ERR_PACKAGE_PATH_NOT_EXPORTED/,
    );
    expect(await node(appDir, `console.log(Object.keys(require('rotor-consumers/core')).includes('ErrorType'))`)).toBe(
      'true',
    );
  });

  it('type-checks an application as the docs show it, with @types/pg', async () => {
    await writeFile(
      path.join(appDir, 'app.ts'),
      [
        "import { AwsSecretsManagerStore, createRotatingPgPool, JwtVerifier, SecretCache, type SecretSnapshot } from 'rotor-consumers';",
        'export const cache = new SecretCache({ store: new AwsSecretsManagerStore(), refreshIntervalMs: 30_000 });',
        "export const pool = createRotatingPgPool({ cache, secretId: 'prod/db/app' });",
        "export const rows = pool.query<{ n: number }>('SELECT 1 AS n').then((r) => r.rows[0]?.n);",
        "export const read: Promise<SecretSnapshot> = cache.get('prod/db/app');",
        "export const verifier = new JwtVerifier({ jwks: { url: 'https://auth.example.com/.well-known/jwks.json' } });",
        '',
      ].join('\n'),
    );
    await install(appDir, ['@types/pg']);
    await tsc(appDir, 'app.ts');
  });
});

describe('an application bundled with esbuild', () => {
  it('finds pg and mysql2 in the bundle and runs against the stack with no node_modules beside it', async () => {
    await install(appDir, ['mysql2']);
    const pg = await roleWithSecret('e2e', 'bundled-pg', seen);
    const mysql = await mysqlUserWithSecret('bundled', seen);
    await writeFile(
      path.join(appDir, 'bundled-app.js'),
      [
        "const { AwsSecretsManagerStore, SecretCache, createRotatingPgPool, createRotatingMysqlPool } = require('rotor-consumers');",
        'async function main() {',
        '  const cache = new SecretCache({ store: new AwsSecretsManagerStore() });',
        '  const pgPool = createRotatingPgPool({ cache, secretId: process.env.PG_SECRET });',
        '  const mysqlPool = createRotatingMysqlPool({ cache, secretId: process.env.MYSQL_SECRET });',
        "  const { rows } = await pgPool.query('SELECT current_user AS who');",
        "  const [mysqlRows] = await mysqlPool.query('SELECT SUBSTRING_INDEX(CURRENT_USER(), \\'@\\', 1) AS who');",
        '  console.log(JSON.stringify({ pg: rows[0].who, mysql: mysqlRows[0].who }));',
        '  await Promise.all([pgPool.end(), mysqlPool.end()]);',
        '}',
        'main().catch((e) => { console.error(e.message); process.exit(1); });',
        '',
      ].join('\n'),
    );
    const out = path.join(dir, 'deployed', 'app.js');
    // pg's optional native binding (pg-native) is not installed: external, as pg's own docs advise for bundlers.
    await build({
      entryPoints: [path.join(appDir, 'bundled-app.js')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: out,
      external: ['pg-native'],
      logLevel: 'error',
    });
    const { stdout } = await run(process.execPath, [out], {
      cwd: path.dirname(out),
      env: { ...process.env, NODE_PATH: '', PG_SECRET: pg.secretId, MYSQL_SECRET: mysql.secretId },
    });
    expect(JSON.parse(stdout.trim())).toEqual({ pg: pg.username, mysql: mysql.username });
  }, 180_000);
});

describe('rotor, installed by an operator', () => {
  it('ships compiled JS with types, the CLI, LICENSE and docs whose links resolve; no sources or tests', async () => {
    const root = path.join(operatorDir, 'node_modules/rotor');
    const shipped = (await files(root)).map((f) => f.file);
    expect(shipped).toEqual(
      expect.arrayContaining([
        'dist/client/index.js',
        'dist/client/index.d.ts',
        'bin/rotor.js',
        'README.md',
        'LICENSE',
        'dist/workflow-bundle.js',
      ]),
    );
    expect(shipped.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(shipped.filter((f) => /^(src|test)\//.test(f))).toEqual([]);
    expect(await brokenLinks(root)).toEqual([]);
  });

  it('carries no path of the machine that packed it, in its workflow bundle and its source map', async () => {
    const bundle = await readFile(path.join(operatorDir, 'node_modules/rotor/dist/workflow-bundle.js'), 'utf8');
    const map = /sourceMappingURL=data:application\/json;charset=utf-8;base64,([A-Za-z0-9+/=]+)/.exec(bundle);
    const decoded = map ? Buffer.from(map[1]!, 'base64').toString('utf8') : '';
    // Booleans, not toContain: a failure must not print a 1 MB bundle.
    expect(bundle.includes(ROOT)).toBe(false);
    expect(decoded.includes(ROOT)).toBe(false);
    const sources = (JSON.parse(decoded) as { sources: string[] }).sources;
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.flatMap((s) => s.split('|')).filter((s) => path.isAbsolute(s))).toEqual([]);
    expect(bundle.length).toBeLessThan(1.2 * MiB);
  });

  it('rotor/client, rotor/rotators and rotor/worker export their API, from require and from import; internals do not resolve', async () => {
    const names = JSON.parse(
      await node(operatorDir, `console.log(JSON.stringify(Object.keys(require('rotor/client')).sort()))`),
    ) as string[];
    expect(names).toEqual(
      expect.arrayContaining(['RotationClient', 'ScheduleManager', 'loadConfig', 'parseDuration', 'ErrorType']),
    );
    expect(
      await node(
        operatorDir,
        `import { RotationClient } from 'rotor/client'; console.log(typeof RotationClient.connect)`,
        'module',
      ),
    ).toBe('function');
    expect(
      await node(
        operatorDir,
        `console.log(require('rotor').RotationClient === require('rotor/client').RotationClient)`,
      ),
    ).toBe('true');
    const kinds = await node(
      operatorDir,
      `console.log(Object.keys(require('rotor/rotators').rotators).sort().join(','))`,
    );
    expect(kinds).toBe(
      'api-key,encryption-keyring,jwt-signing-key,mysql-alternating-users,mysql-single-user,postgres-alternating-users,postgres-single-user,tls-ca,tls-certificate',
    );
    expect(
      await node(
        operatorDir,
        `const w = require('rotor/worker'); console.log(typeof w.createRotorWorker, typeof w.startWorker)`,
      ),
    ).toBe('function function');
    await expect(node(operatorDir, `require('rotor/dist/activities/index.js')`)).rejects.toThrow(
      /ERR_PACKAGE_PATH_NOT_EXPORTED/,
    );
    await expect(node(operatorDir, `require('rotor/consumers')`)).rejects.toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it('type-checks a program that uses rotor/client and rotor/rotators as the README shows', async () => {
    await writeFile(
      path.join(operatorDir, 'use.ts'),
      [
        "import { RotationClient, parseDuration, type RotationStatus } from 'rotor/client';",
        "import type { Rotator } from 'rotor/rotators';",
        'export async function main(): Promise<RotationStatus | undefined> {',
        '  const rotor = await RotationClient.connect();',
        "  await rotor.rotate('prod/db/app', { graceMs: parseDuration('1h'), trigger: { kind: 'api', by: 'deploy-bot' } });",
        "  return rotor.status('prod/db/app');",
        '}',
        'export type Kind = Rotator["kind"];',
        '',
      ].join('\n'),
    );
    await tsc(operatorDir, 'use.ts');
  });

  it('installs the rotor command, which prints its version', async () => {
    const rotor = path.join(operatorDir, 'node_modules/.bin/rotor');
    expect((await run(rotor, ['--help'], { cwd: operatorDir })).stdout).toMatch(/rotate \[options\] \[secretId\]/);
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'packages/rotor/package.json'), 'utf8')) as {
      version: string;
    };
    expect((await run(rotor, ['--version'], { cwd: operatorDir })).stdout.trim()).toBe(version);
  });

  it("runs the README's quick start from the installed package: validate, apply, worker, rotate --wait, status", async () => {
    const taskQueue = uniqueName('e2e-packaged');
    const { secretId, username, password } = await roleWithSecret('e2e', 'packaged', seen);
    await writeFile(
      path.join(operatorDir, 'rotor.yaml'),
      `secrets:\n  - id: ${secretId}\n    schedule: { every: 30d }\n    grace: 0s\n`,
    );
    // As the README runs it: the audit trail in an audit database (the stack's ROTOR_AUDIT_URL, from its env).
    const env = { ...process.env, NODE_PATH: '', ROTOR_TASK_QUEUE: taskQueue, ROTOR_METRICS_PORT: '0' };
    expect(process.env.ROTOR_AUDIT_URL).toBeTruthy();
    const rotorBin = path.join(operatorDir, 'node_modules/.bin/rotor');
    const printed: string[] = [];
    const cli = async (args: string[]) => {
      const result = await run(rotorBin, args, { cwd: operatorDir, env });
      printed.push(result.stdout, result.stderr);
      return result;
    };
    expect((await cli(['validate', '-f', 'rotor.yaml'])).stdout).toMatch(/valid/);
    expect((await cli(['apply', '-f', 'rotor.yaml'])).stdout).toContain(secretId);
    const worker = spawn(rotorBin, ['worker', '-f', 'rotor.yaml'], {
      cwd: operatorDir,
      env: { ...env, ROTOR_LOG_LEVEL: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    worker.stdout.on('data', (c: Buffer) => (output += c.toString()));
    worker.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const rotor = await rotationClient(taskQueue);
    try {
      await until('the packaged worker to start', () => output.includes('rotor worker started') || undefined);
      const rotated = await cli(['rotate', secretId, '--wait']);
      expect(rotated.stdout).toMatch(/completed/);
      expect(await logsIn(username, await passwordAt(secretId, 'AWSCURRENT'))).toBe(true);
      expect(await logsIn(username, password)).toBe(false);
      expect((await cli(['status'])).stdout).toContain(secretId);
      // It loaded the bundle `npm run build` made: webpack never ran in the worker.
      expect(output).not.toMatch(/Workflow bundle created|webpack/i);
      // No password in what the installed worker logged or the CLI printed (a list, so a failure prints none).
      await rememberPasswords(secretId, seen);
      expect(seen.size).toBeGreaterThanOrEqual(2);
      const everything = [output, ...printed].join('\n');
      expect(everything).toContain(secretId);
      expect([...seen].filter((p) => everything.includes(p)).length).toBe(0);
    } finally {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
      await rotor.client.schedule
        .getHandle(`rotor/schedule/${secretId}`)
        .delete()
        .catch(() => undefined);
      await rotor.client.connection.close();
    }
  }, 180_000);
});

/** tsc from this repository, strict, against what `project` installed (its `exports` and shipped `.d.ts`). */
async function tsc(project: string, file: string): Promise<void> {
  await run(
    process.execPath,
    [
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
      file,
    ],
    { cwd: project },
  );
}
