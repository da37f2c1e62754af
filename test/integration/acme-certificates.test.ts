import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get, globalAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_ACCOUNT_ENGINE, TRUST_BUNDLE_ENGINE } from 'rotor-consumers/credentials';
import { generateKeyPair } from '../../packages/rotor/src/rotators/tls/issue';
import { renewalInfo } from '../../packages/rotor/src/rotators/tls/acme';
import { stackEnv, uniqueName, until } from '../helpers/env';
import { expectNoPasswords } from '../helpers/hygiene';
import { workerWithConfig } from '../helpers/ops';
import { createSecret, labels, store } from '../helpers/stack';
import { materialAt, rememberKeys } from '../helpers/tls';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRotationSteps } from '../../packages/rotor/src/activities/rotation-steps';
import { hookRunner } from '../../packages/rotor/src/activities/hook-runner';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import type { RenewalDecision } from '../../packages/rotor/src/shared/rotation';

/**
 * Certificates from an ACME CA on the real stack: Pebble (the ACME test server) validating http-01 and dns-01
 * challenges that a hook of rotor.yaml answers through Pebble's challenge test server, rotated by a `rotor worker`.
 */
const keys = new Set<string>();
const secrets: string[] = [];
const directory = () => stackEnv('ROTOR_ACME_DIRECTORY');
const work = mkdtempSync(path.join(tmpdir(), 'rotor-acme-'));
const hookLog = path.join(work, 'hook.log');
const holdDir = path.join(work, 'hold');
let rig: Awaited<ReturnType<typeof workerWithConfig>>;
const taskQueue = uniqueName('it-acme');
let accountId = '';
let bundleId = '';

/** What Pebble's management API answers (its own CA signs its TLS: ROTOR_ACME_CA_FILE). */
function management(pathname: string): Promise<string> {
  const url = new URL(pathname, stackEnv('ROTOR_PEBBLE_MANAGEMENT'));
  return new Promise((resolve, reject) =>
    get(url, { ca: readFileSync(stackEnv('ROTOR_ACME_CA_FILE')) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url} answered ${res.statusCode}`)),
      );
    }).on('error', reject),
  );
}

beforeAll(async () => {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(holdDir);
  const account = await generateKeyPair('ec-p256');
  keys.add(account.privateKeyPem);
  accountId = uniqueName('it/acme-account');
  await createSecret(accountId, {
    engine: ACME_ACCOUNT_ENGINE,
    privateKey: account.privateKeyPem,
    email: 'ops@rotor.test',
  });
  // Pebble makes a new root at each start: the bundle is what Pebble has now.
  bundleId = uniqueName('it/acme-bundle');
  await createSecret(bundleId, { engine: TRUST_BUNDLE_ENGINE, certificates: [await management('/roots/0')] });
  const hook = path.resolve(__dirname, '../helpers/acme-hook.mjs');
  rig = await workerWithConfig(
    taskQueue,
    `version: 1\nsecrets:\n  - id: it/acme-scheduled\n    schedule: { every: 30d }\nhooks:\n  challtestsrv:\n    command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(hook)}]\n    timeout: 30s\n`,
    {
      NODE_EXTRA_CA_CERTS: stackEnv('ROTOR_ACME_CA_FILE'),
      ROTOR_TEST_ACME_LOG: hookLog,
      ROTOR_TEST_ACME_HOLD: holdDir,
    },
  );
  // Nothing holds until a test asks.
  writeFileSync(path.join(holdDir, 'release'), '');
});

afterAll(async () => rig?.stop());

async function acmeSecret(marker: string, names: string[], challenge: 'http-01' | 'dns-01' = 'http-01') {
  const secretId = uniqueName(`it/acme-${marker}`);
  await createSecret(secretId, {
    engine: 'tls-certificate',
    names,
    // Pebble picks a random profile for an order that names none: the tests name the 90-day one.
    issuer: {
      type: 'acme',
      directory: directory(),
      account: accountId,
      challenge,
      hook: 'challtestsrv',
      profile: 'default',
    },
    trust: bundleId,
  });
  secrets.push(secretId);
  return secretId;
}

async function rotate(secretId: string): Promise<string> {
  await rig.rotor.rotate(secretId, { graceMs: 0 });
  const outcome = await rig.rotor.wait(secretId);
  return outcome.outcome === 'failed' ? `failed: ${outcome.message}` : outcome.outcome;
}

const hookCalls = () =>
  existsSync(hookLog)
    ? readFileSync(hookLog, 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
    : [];

describe('ACME (Pebble)', () => {
  it('issues over http-01 and renews with a new key; the CA offers a renewal window (ARI) for what it issued', async () => {
    const secretId = await acmeSecret('http', ['orders.rotor.test', 'api.rotor.test']);
    expect(await rotate(secretId)).toBe('completed');
    const first = await materialAt(secretId, 'AWSCURRENT', keys);
    const leaf = new X509Certificate(first.certificate);
    expect(leaf.checkHost('orders.rotor.test')).toBe('orders.rotor.test');
    expect(leaf.checkHost('api.rotor.test')).toBe('api.rotor.test');
    expect(leaf.issuer).toMatch(/Pebble Intermediate CA/);
    const window = await renewalInfo(directory(), first.certificate, {
      ca: readFileSync(stackEnv('ROTOR_ACME_CA_FILE'), 'utf8'),
    });
    expect(window).toBeDefined();
    expect(window!.start.getTime()).toBeGreaterThan(new Date(leaf.validFrom).getTime());
    expect(window!.end.getTime()).toBeLessThan(new Date(leaf.validTo).getTime());
    // A renewAt schedule renews in that window rather than at its own share of the lifetime.
    // This process trusts Pebble's TLS as the worker does with NODE_EXTRA_CA_CERTS (read only at a process's start).
    globalAgent.options.ca = [...rootCertificates, readFileSync(stackEnv('ROTOR_ACME_CA_FILE'), 'utf8')];
    const due: RenewalDecision = await new MockActivityEnvironment().run(
      createRotationSteps({ store, rotators, hooks: hookRunner({}) }).renewalDue,
      { secretId, renewal: { renewAt: 0.5, checkEveryMs: 3_600_000 } },
    );
    expect(due.basis).toBe('ari');
    expect(Date.parse(due.dueAt)).toBeGreaterThanOrEqual(window!.start.getTime());
    expect(Date.parse(due.dueAt)).toBeLessThanOrEqual(window!.end.getTime());

    expect(await rotate(secretId)).toBe('completed');
    const second = await materialAt(secretId, 'AWSCURRENT', keys);
    expect(new X509Certificate(second.certificate).serialNumber).not.toBe(leaf.serialNumber);
    expect(second.privateKey).not.toBe(first.privateKey);
    expect(await labels(secretId)).toMatchObject({ versions: 3 });
  });

  it('issues a wildcard over dns-01, the TXT record set and cleared by the hook', async () => {
    const secretId = await acmeSecret('dns', ['*.wild.rotor.test', 'wild.rotor.test'], 'dns-01');
    expect(await rotate(secretId)).toBe('completed');
    const leaf = new X509Certificate((await materialAt(secretId, 'AWSCURRENT', keys)).certificate);
    expect(leaf.checkHost('anything.wild.rotor.test')).toBe('*.wild.rotor.test');
    const calls = hookCalls().filter(([, order]) => order && order !== 'undefined');
    expect(calls.filter(([action]) => action === 'cleanup').length).toBeGreaterThan(0);
  });

  it('with the worker SIGKILLed during the order, the next worker resumes that order: one order, one certificate', async () => {
    const secretId = await acmeSecret('killed', ['killed.rotor.test']);
    const { rmSync } = await import('node:fs');
    rmSync(path.join(holdDir, 'release'));
    rmSync(path.join(holdDir, 'held'), { force: true });
    await rig.rotor.rotate(secretId, { graceMs: 0 });
    const heldOrder = await until('the hook to hold the challenge', () =>
      existsSync(path.join(holdDir, 'held')) ? readFileSync(path.join(holdDir, 'held'), 'utf8') : undefined,
    );
    await rig.restart();
    writeFileSync(path.join(holdDir, 'release'), '');
    const outcome = await rig.rotor.wait(secretId);
    expect(outcome.outcome === 'failed' ? outcome.message : outcome.outcome).toBe('completed');
    // Every challenge of this secret's rotation was presented for the one order the killed worker placed.
    const presented = hookCalls().filter(([action, order]) => action === 'present' && order === heldOrder);
    expect(presented.length).toBeGreaterThanOrEqual(2);
    const orders = new Set(
      hookCalls()
        .filter(([, , token]) => presented.some(([, , t]) => t === token))
        .map(([, order]) => order),
    );
    expect([...orders]).toEqual([heldOrder]);
    // The certificate made current is that order's.
    const leaf = new X509Certificate((await materialAt(secretId, 'AWSCURRENT', keys)).certificate);
    expect(leaf.checkHost('killed.rotor.test')).toBe('killed.rotor.test');
    expect(await labels(secretId)).toMatchObject({ versions: 2 });
  });

  it('refuses, at prepare, a hook rotor.yaml does not declare, changing nothing', async () => {
    const secretId = uniqueName('it/acme-nohook');
    await createSecret(secretId, {
      engine: 'tls-certificate',
      names: ['nohook.rotor.test'],
      issuer: { type: 'acme', directory: directory(), account: accountId, hook: 'route53' },
      trust: bundleId,
    });
    expect(await rotate(secretId)).toMatch(
      /failed at prepare: .*issuer.hook "route53" is not a hook of this worker's rotor.yaml/,
    );
    expect(await labels(secretId)).toMatchObject({ versions: 1 });
  });

  it('leaves no private key in histories or worker logs', async () => {
    for (const id of secrets) await rememberKeys(id, keys);
    await expectNoPasswords(rig.rotor.client, taskQueue, keys, secrets[0]!);
  });
});
