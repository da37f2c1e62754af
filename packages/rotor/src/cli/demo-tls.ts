import { randomUUID } from 'node:crypto';
import { Agent, createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { CreateSecretCommand, ResourceExistsException, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { NativeConnection } from '@temporalio/worker';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { RotatingTls, SecretCache } from 'rotor-consumers';
import {
  parseTrustBundle,
  TLS_CA_ENGINE,
  TLS_CERTIFICATE_ENGINE,
  TRUST_BUNDLE_ENGINE,
} from 'rotor-consumers/credentials';
import { AwsSecretsManagerStore } from 'rotor-consumers/stores';
import { formatDuration } from 'rotor-consumers/core';
import { RotationClient } from '../client';
import { Stage } from '../shared/constants';
import { createRotorWorker } from '../worker';
import { createLogger, installRuntime } from '../worker/logger';
import { describeLoad } from './demo-apps';
import { ExitCode } from './exit-codes';
import { driveLoad, type Load } from './load';

const RUN = randomUUID().slice(0, 8);
const CA = `rotor-demo/tls/${RUN}/ca`;
const BUNDLE = `rotor-demo/tls/${RUN}/bundle`;
const SERVER = `rotor-demo/tls/${RUN}/server`;
const TASK_QUEUE = 'rotor-demo-tls';
/** The demo certificate's life: short, so that the server that loaded it at start meets its end within the demo. */
const LIFETIME_S = 24;
const RENEWALS = 3;

/**
 * `rotor demo tls`: on the local stack, an internal CA made by its first rotation, a server certificate issued and
 * renewed by rotor while HTTPS clients connect continuously to two servers: one on rotor-consumers' RotatingTls, one
 * that read its certificate at start. Keys are never printed: certificates are named by serial.
 */
export async function runTlsDemo({ write }: { write: (line: string) => void }): Promise<number> {
  const store = new AwsSecretsManagerStore();
  const sm = new SecretsManagerClient({});
  const create = async (name: string, value: object) => {
    try {
      await sm.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify(value) }));
    } catch (error) {
      if (!(error instanceof ResourceExistsException)) throw error;
    }
  };
  write(
    `1. an internal CA ${CA}, its trust bundle ${BUNDLE} and a server certificate ${SERVER} in ${store.description}`,
  );
  await create(BUNDLE, { engine: TRUST_BUNDLE_ENGINE, certificates: [] });
  await create(CA, {
    engine: TLS_CA_ENGINE,
    subject: 'rotor demo CA',
    lifetime: '1d',
    bundle: BUNDLE,
    consumers: { refresh: '1s' },
    maxLeafLifetime: `${LIFETIME_S}s`,
  });
  await create(SERVER, {
    engine: TLS_CERTIFICATE_ENGINE,
    names: ['localhost', '127.0.0.1'],
    lifetime: `${LIFETIME_S}s`,
    issuer: { type: 'internal-ca', ca: CA },
    trust: BUNDLE,
  });

  write(`2. starting a rotor worker on task queue ${TASK_QUEUE}`);
  installRuntime(createLogger('warn'));
  const { connectionOptions, namespace = 'default' } = loadClientConnectConfig();
  const connection = await NativeConnection.connect(connectionOptions);
  const worker = await createRotorWorker({ connection, namespace, taskQueue: TASK_QUEUE, store });
  const running = worker.run();
  const servers: Server[] = [];
  const loads: Load[] = [];
  let tls: RotatingTls | undefined;
  try {
    const rotor = await RotationClient.connect(TASK_QUEUE);
    let last = { workflowId: '', runId: '' };
    const rotate = async (secretId: string, what: string) => {
      const t0 = Date.now();
      last = await rotor.rotate(secretId, { graceMs: 0, trigger: { kind: 'demo' } });
      const outcome = await rotor.wait(secretId);
      if (outcome.outcome !== 'completed')
        throw new Error(`${what}: ${outcome.outcome === 'failed' ? outcome.message : outcome.outcome}`);
      return Date.now() - t0;
    };
    const caMs = await rotate(CA, 'the CA');
    write(
      `3. the CA's first rotation made it and put it in the bundle (${formatDuration(caMs)}, publishing wait included)`,
    );
    const issueMs = await rotate(SERVER, 'the first certificate');
    const currentPem = async () =>
      (JSON.parse((await store.getByStage(SERVER, Stage.current))!.value) as { certificate: string }).certificate;
    const { X509Certificate } = await import('node:crypto');
    const first = new X509Certificate(await currentPem());
    write(
      `   the server certificate: serial ${first.serialNumber}, valid until ${first.validTo} (${formatDuration(issueMs)})`,
    );

    const cache = new SecretCache({ store, refreshIntervalMs: 1000 });
    tls = await RotatingTls.start({ cache, certificate: SERVER, checkIntervalMs: 250 });
    const listen = async (server: Server) => {
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as AddressInfo).port;
    };
    const rotatingPort = await listen(tls.serve(createServer(tls.secureContextOptions(), (_, res) => res.end())));
    const startPem = await currentPem();
    const startKey = (JSON.parse((await store.getByStage(SERVER, Stage.current))!.value) as { privateKey: string })
      .privateKey;
    const naivePort = await listen(createServer({ cert: startPem, key: startKey }, (_, res) => res.end()));
    const trust = parseTrustBundle(BUNDLE, (await store.getByStage(BUNDLE, Stage.current))!.value).pems;
    // Every request a new TLS connection, no session resumption: each one a full handshake and certificate check.
    const agent = new Agent({ ca: trust, maxCachedSessions: 0 });
    const request = (port: number) => () =>
      new Promise<string>((resolve, reject) =>
        get({ host: '127.0.0.1', port, path: '/', agent, servername: 'localhost', timeout: 5000 }, (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
          res.resume();
          res.on('end', () => resolve(`serial ${serial}`));
        }).on('error', reject),
      );
    write(
      '4. HTTPS clients connecting continuously to two servers: one on rotor-consumers, one that read its certificate at start',
    );
    const rotating = driveLoad(request(rotatingPort), 2, 20);
    const naive = driveLoad(request(naivePort), 2, 20);
    loads.push(rotating, naive);

    const started = Date.now();
    for (let i = 1; i <= RENEWALS; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + i * 7000 - Date.now())));
      const ms = await rotate(SERVER, `renewal ${i}`);
      const cert = new X509Certificate(await currentPem());
      write(`5.${i} renewed: serial ${cert.serialNumber}, valid until ${cert.validTo} (${formatDuration(ms)})`);
    }
    // Past the first certificate's end: the server that read it at start now serves an expired certificate.
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(first.validTo) + 3000 - Date.now())));
    await Promise.all(loads.map((l) => l.stop()));
    write('6. checks');
    write(`   server on rotor-consumers (RotatingTls): ${describeLoad(rotating)}`);
    write(`   server that read its certificate at start: ${describeLoad(naive)}`);
    write(`   certificates the RotatingTls server served: ${tls.stats().swaps}, refused: ${tls.stats().refusals}`);
    const ok = rotating.failures.length === 0 && rotating.served.size === RENEWALS + 1 && naive.failures.length > 0;
    write('');
    write(`Temporal UI (the last renewal): ${rotor.uiLink(last.workflowId, last.runId)}`);
    return ok ? ExitCode.ok : ExitCode.rotationNotCompleted;
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
    tls?.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    worker.shutdown();
    await running;
    await connection.close();
  }
}
