import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { escapeIdentifier } from 'pg';
import { AuditStore, type AuditRecord } from '../../packages/rotor/src/audit/audit-store';
import type { RotationClient } from '../../packages/rotor/src/client';
import type { AlertKind } from '../../packages/rotor/src/shared/reporting';
import { stackEnv, uniqueName, until } from './env';
import { rotationClient, withAdmin } from './stack';
import { WorkerProcess } from './worker-process';

/** A port free now on loopback, for a worker endpoint a test talks to. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An audit database of the test file's own, and the store reading it. */
/** Reads a secret's audit trail once `settled` (by default: its outcome is written). */
export type AuditTrail = (secretId: string, settled?: (events: AuditRecord[]) => boolean) => Promise<AuditRecord[]>;

export async function auditDatabase(
  prefix: string,
): Promise<{ url: string; audit: AuditStore; trail: AuditTrail; drop(): Promise<void> }> {
  const name = uniqueName(prefix).replace(/-/g, '_');
  await withAdmin((admin) => admin.query(`CREATE DATABASE ${escapeIdentifier(name)}`));
  const url = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  url.pathname = `/${name}`;
  const audit = await AuditStore.connect(url.toString());
  async function trail(
    secretId: string,
    settled: (events: AuditRecord[]) => boolean = (e) => e.some((x) => x.kind === 'outcome'),
  ): Promise<AuditRecord[]> {
    return until(`the audit trail of ${secretId}`, async () => {
      const events = await audit.history(secretId);
      return settled(events) ? events : undefined;
    });
  }
  return {
    url: url.toString(),
    audit,
    trail,
    async drop() {
      await audit.close();
      await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}

export interface ReceivedAlert {
  path: string;
  headers: IncomingHttpHeaders;
  body: {
    text: string;
    rotor: { kind: AlertKind; secretId: string; phase?: string; step?: string; message: string; uiUrl?: string };
  };
  raw: string;
}

/** A local webhook receiver keeping every alert; `/broken` answers 500. */
export async function alertReceiver(): Promise<{
  url: string;
  received: ReceivedAlert[];
  alertFor(secretId: string, kind: AlertKind): Promise<ReceivedAlert>;
  close(): Promise<void>;
}> {
  const received: ReceivedAlert[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(raw), raw });
      res.writeHead(req.url === '/broken' ? 500 : 200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    alertFor: (secretId, kind) =>
      until(`a ${kind} alert for ${secretId}`, () =>
        received.find((r) => r.body.rotor.secretId === secretId && r.body.rotor.kind === kind),
      ),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * A `rotor worker` process reading `yaml` as its rotor.yaml (`ROTOR_CONFIG`, with `env` beside it) on `taskQueue`,
 * and a client on that queue; `stop` ends both.
 */
export async function workerWithConfig(
  taskQueue: string,
  yaml: string,
  env: Record<string, string>,
  holdDir?: string,
): Promise<{
  worker: WorkerProcess;
  rotor: RotationClient;
  stop(): Promise<void>;
  /** SIGKILLs the worker and starts another with the same configuration. */
  restart(): Promise<void>;
}> {
  const configFile = path.join(mkdtempSync(path.join(tmpdir(), 'rotor-it-')), 'rotor.yaml');
  writeFileSync(configFile, yaml);
  let worker = await WorkerProcess.start(taskQueue, holdDir, { ROTOR_CONFIG: configFile, ...env });
  const rotor = await rotationClient(taskQueue);
  return {
    get worker() {
      return worker;
    },
    rotor,
    async stop() {
      await worker.stop();
      await rotor.client.connection.close();
    },
    async restart() {
      await worker.kill();
      worker = await WorkerProcess.start(taskQueue, holdDir, { ROTOR_CONFIG: configFile, ...env });
    },
  };
}
