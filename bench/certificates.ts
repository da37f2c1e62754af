/**
 * TLS certificates from ACME beside certbot, against the same Pebble (the local stack's), the same names, the same
 * http-01 answers (Pebble's challenge test server, through each one's hook):
 * - renew: the time from asking to a new certificate in place (certbot: `certbot renew --force-renewal`, a process
 *   as its timer runs it; rotor: a rotation through a worker, create to finish);
 * - serving: whether an HTTPS server that was running before the renewal serves the new certificate after it, and
 *   how soon (certbot: a server that read the files at start, as certbot leaves reloads to deploy hooks; rotor: a
 *   server on RotatingTls);
 * - ACME down: a renewal while the directory does not answer: what each says, what it changes, how long it takes.
 * certbot 5.8.0 is installed from PyPI into .rotor-stack/certbot on first use.
 */
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { RotatingTls, SecretCache } from 'rotor-consumers';
import { ACME_ACCOUNT_ENGINE, TRUST_BUNDLE_ENGINE } from 'rotor-consumers/credentials';
import { generateKeyPair } from '../packages/rotor/src/rotators/tls/issue';
import { stackEnv, uniqueName } from '../test/helpers/env';
import { workerWithConfig } from '../test/helpers/ops';
import { createSecret, store } from '../test/helpers/stack';

const ROOT = path.resolve(__dirname, '..');
const CERTBOT_VERSION = '5.8.0';
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function certbotBinary(): string {
  const venv = path.join(ROOT, '.rotor-stack', 'certbot');
  const bin = path.join(venv, 'bin', 'certbot');
  if (!existsSync(bin)) {
    execFileSync('python3', ['-m', 'venv', venv]);
    execFileSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', `certbot==${CERTBOT_VERSION}`]);
  }
  return bin;
}

/** The serial an HTTPS server at `port` serves now (trusting only `ca`). */
function servedSerial(port: number, ca: string[], servername: string): Promise<string> {
  return new Promise((resolve, reject) =>
    get({ host: '127.0.0.1', port, servername, ca, agent: false, path: '/', timeout: 5000 }, (res) => {
      resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.resume();
    }).on('error', reject),
  );
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; code: number; out: string }> {
  const started = performance.now();
  return new Promise((resolve) =>
    execFile(command, args, { env: { ...process.env, ...env }, timeout: 300_000 }, (error, stdout, stderr) =>
      resolve({
        ms: Math.round(performance.now() - started),
        code: error ? Number((error as { code?: number }).code ?? 1) : 0,
        out: `${stdout}${stderr}`,
      }),
    ),
  );
}

export async function benchCertificates(renewals: number) {
  const directory = stackEnv('ROTOR_ACME_DIRECTORY');
  const caFile = stackEnv('ROTOR_ACME_CA_FILE');
  const api = stackEnv('ROTOR_CHALLTESTSRV');
  const pebbleRoot = await new Promise<string>((resolve, reject) =>
    get(new URL('/roots/0', stackEnv('ROTOR_PEBBLE_MANAGEMENT')), { ca: readFileSync(caFile) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject),
  );
  const work = mkdtempSync(path.join(tmpdir(), 'rotor-bench-certs-'));

  // certbot: a manual http-01 hook answering through the challenge test server, as rotor's example hook does.
  const certbot = certbotBinary();
  const hook = (action: 'add-http01' | 'del-http01') => {
    const file = path.join(work, `${action}.sh`);
    const body =
      action === 'add-http01'
        ? `{"token":"'"$CERTBOT_TOKEN"'","content":"'"$CERTBOT_VALIDATION"'"}`
        : `{"token":"'"$CERTBOT_TOKEN"'"}`;
    writeFileSync(file, `#!/bin/sh\ncurl -fsS -X POST -d '${body}' ${api}/${action} >/dev/null\n`, { mode: 0o755 });
    return file;
  };
  const dirs = ['config', 'work', 'logs'].map((d) => path.join(work, 'certbot', d));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const certbotArgs = (server: string) => [
    '--config-dir',
    dirs[0]!,
    '--work-dir',
    dirs[1]!,
    '--logs-dir',
    dirs[2]!,
    '--server',
    server,
    '--non-interactive',
  ];
  const certbotEnv = { REQUESTS_CA_BUNDLE: caFile };
  const name = `certbot-${Date.now().toString(36)}.rotor.test`;
  const issued = await run(
    certbot,
    [
      'certonly',
      ...certbotArgs(directory),
      '--manual',
      '--preferred-challenges',
      'http',
      '--manual-auth-hook',
      hook('add-http01'),
      '--manual-cleanup-hook',
      hook('del-http01'),
      '--agree-tos',
      '--register-unsafely-without-email',
      '--required-profile',
      'default',
      '--cert-name',
      'bench',
      '-d',
      name,
    ],
    certbotEnv,
  );
  if (issued.code !== 0) throw new Error(`certbot certonly failed:\n${issued.out}`);
  const live = path.join(dirs[0]!, 'live', 'bench');
  const certbotServer = createServer(
    { cert: readFileSync(path.join(live, 'fullchain.pem')), key: readFileSync(path.join(live, 'privkey.pem')) },
    (_, res) => res.end(),
  );
  const certbotPort = await listen(certbotServer);
  const certbotBefore = await servedSerial(certbotPort, [pebbleRoot], name);
  const certbotRenewMs: number[] = [];
  for (let i = 0; i < renewals; i++) {
    const renewed = await run(
      certbot,
      ['renew', ...certbotArgs(directory), '--force-renewal', '--no-random-sleep-on-renew', '--cert-name', 'bench'],
      certbotEnv,
    );
    if (renewed.code !== 0) throw new Error(`certbot renew failed:\n${renewed.out}`);
    certbotRenewMs.push(renewed.ms);
  }
  const onDisk = new X509Certificate(readFileSync(path.join(live, 'cert.pem'))).serialNumber;
  await sleep(2000);
  const certbotAfter = await servedSerial(certbotPort, [pebbleRoot], name);
  const certbotDown = await run(
    certbot,
    [
      'renew',
      ...certbotArgs('https://127.0.0.1:1/dir'),
      '--force-renewal',
      '--no-random-sleep-on-renew',
      '--cert-name',
      'bench',
    ],
    certbotEnv,
  );
  const certbotDownSerial = new X509Certificate(readFileSync(path.join(live, 'cert.pem'))).serialNumber;

  // rotor: a worker with the example hook, a certificate secret for the same kind of name.
  const keys = await generateKeyPair('ec-p256');
  const accountId = uniqueName('bench/acme-account');
  await createSecret(accountId, { engine: ACME_ACCOUNT_ENGINE, privateKey: keys.privateKeyPem });
  const bundleId = uniqueName('bench/acme-bundle');
  await createSecret(bundleId, { engine: TRUST_BUNDLE_ENGINE, certificates: [pebbleRoot] });
  const hookScript = path.join(ROOT, 'examples/acme-hooks/challtestsrv.mjs');
  const rig = await workerWithConfig(
    uniqueName('bench-certs'),
    `version: 1\nsecrets:\n  - id: bench/unused\n    schedule: { every: 30d }\nhooks:\n  challtestsrv:\n    command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(hookScript)}]\n`,
    { NODE_EXTRA_CA_CERTS: caFile },
  );
  const rotorName = `rotor-${Date.now().toString(36)}.rotor.test`;
  const secret = (dir: string) => ({
    engine: 'tls-certificate',
    names: [rotorName],
    issuer: { type: 'acme', directory: dir, account: accountId, hook: 'challtestsrv', profile: 'default' },
    trust: bundleId,
  });
  const secretId = uniqueName('bench/acme-cert');
  await createSecret(secretId, secret(directory));
  const rotate = async (id: string) => {
    const started = performance.now();
    await rig.rotor.rotate(id, { graceMs: 0 });
    const outcome = await rig.rotor.wait(id);
    return { ms: Math.round(performance.now() - started), outcome };
  };
  try {
    const first = await rotate(secretId);
    if (first.outcome.outcome !== 'completed')
      throw new Error(`rotor's first issuance: ${JSON.stringify(first.outcome)}`);
    const cache = new SecretCache({ store, refreshIntervalMs: 1000 });
    const tls = await RotatingTls.start({ cache, certificate: secretId, checkIntervalMs: 250 });
    const rotorServer = tls.serve(createServer(tls.secureContextOptions(), (_, res) => res.end()));
    const rotorPort = await listen(rotorServer);
    const rotorRenewMs: number[] = [];
    const swapMs: number[] = [];
    for (let i = 0; i < renewals; i++) {
      const before = await servedSerial(rotorPort, [pebbleRoot], rotorName);
      const renewed = await rotate(secretId);
      if (renewed.outcome.outcome !== 'completed') throw new Error(`rotor renewal: ${JSON.stringify(renewed.outcome)}`);
      rotorRenewMs.push(renewed.ms);
      const finished = performance.now();
      while ((await servedSerial(rotorPort, [pebbleRoot], rotorName)) === before) await sleep(50);
      swapMs.push(Math.round(performance.now() - finished));
    }
    const downId = uniqueName('bench/acme-down');
    await createSecret(downId, { ...secret('https://127.0.0.1:1/dir') });
    const down = await rotate(downId);
    tls.close();
    rotorServer.close();
    certbotServer.close();
    return {
      renewals,
      certbot: {
        renewMs: { median: median(certbotRenewMs), all: certbotRenewMs },
        serving: {
          servesNewAfterRenewal: certbotAfter === onDisk,
          servedBefore: certbotBefore,
          servedAfter: certbotAfter,
          onDisk,
        },
        acmeDown: {
          exitCode: certbotDown.code,
          ms: certbotDown.ms,
          certificateChanged: certbotDownSerial !== onDisk,
          says: certbotDown.out
            .split('\n')
            .filter((l) => /fail|error|could not/i.test(l))
            .slice(0, 2),
        },
      },
      rotor: {
        renewMs: { median: median(rotorRenewMs), all: rotorRenewMs },
        serving: { servesNewAfterRenewal: true, swapMsAfterFinish: { median: median(swapMs), all: swapMs } },
        acmeDown: {
          outcome: down.outcome.outcome,
          ms: down.ms,
          says: down.outcome.outcome === 'failed' ? down.outcome.message : '',
          labels: (await store.describe(downId)).versions.length,
        },
      },
    };
  } finally {
    await rig.stop();
  }
}
