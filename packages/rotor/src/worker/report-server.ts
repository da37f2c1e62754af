import { LOGIN_OUTCOMES } from 'rotor-consumers/core';
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type pino from 'pino';
import { z } from 'zod';
import type { ReportTokenConfig } from '../config/types';
import type { ConsumerReportLine } from '../shared/bake';
import { rotationWorkflowId, SignalName } from '../shared/constants';
import { InvalidInputError } from 'rotor-consumers/core';

/*
 * The endpoint consumers report their logins to: applications hold no Temporal credentials, only a token scoped to
 * the secrets they may report on. Reports are counted per secret and forwarded to the secret's running rotation as
 * one `consumerReport` signal per flush; a secret with no rotation running drops them.
 */

const MAX_BODY_BYTES = 256 * 1024;
const text = (max: number) => z.string().min(1).max(max);
const BatchSchema = z.strictObject({
  instanceId: text(200),
  reports: z
    .array(
      z.strictObject({
        secretId: text(2048),
        versionId: text(64),
        outcome: z.enum(LOGIN_OUTCOMES),
        errorClass: text(64).optional(),
        count: z.number().int().min(1).max(1_000_000),
      }),
    )
    .min(1)
    .max(1000),
});

/** A configured token, ready to compare: its digest, never its text. */
interface Token {
  name: string;
  digest: Buffer;
  secrets: string[];
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Reads each token's value from the environment; a token that is not set stops the worker, naming the variable. */
export function reportTokens(configs: ReportTokenConfig[], env: NodeJS.ProcessEnv = process.env): Token[] {
  return configs.map((config) => {
    const value = env[config.tokenFromEnv];
    if (!value || value.length < 16) {
      throw new InvalidInputError(
        `reports.tokens ${config.name}: ${config.tokenFromEnv} is ${value ? 'shorter than 16 characters' : 'not set'}`,
      );
    }
    return { name: config.name, digest: digest(value), secrets: config.secrets };
  });
}

/** Whether `secretId` is one of `scopes`: an exact id, or a prefix ending in `*`. */
export function inScope(secretId: string, scopes: readonly string[]): boolean {
  return scopes.some((scope) => (scope.endsWith('*') ? secretId.startsWith(scope.slice(0, -1)) : secretId === scope));
}

export type Forward = (secretId: string, lines: ConsumerReportLine[]) => Promise<void>;

/** Forwards to the running rotation of the secret, as a signal; none running is not an error. */
export function signalRotation(client: Client): Forward {
  return async (secretId, lines) => {
    try {
      await client.workflow
        .getHandle(rotationWorkflowId(secretId))
        .signal(SignalName.consumerReport, { reports: lines });
    } catch (error) {
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    }
  };
}

export interface ReportServer {
  url: string;
  /** Sends what is counted now (tests; the server flushes on its own every `flushMs`). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function serveReports(options: {
  port: number;
  host: string;
  tokens: Token[];
  forward: Forward;
  logger: pino.Logger;
  flushMs?: number;
}): Promise<ReportServer> {
  const { tokens, forward, logger } = options;
  const pending = new Map<string, Map<string, ConsumerReportLine>>();

  const authorize = (req: IncomingMessage): Token | undefined => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!match) return undefined;
    const presented = digest(match[1]!);
    return tokens.find((t) => timingSafeEqual(t.digest, presented));
  };

  const answer = (res: ServerResponse, status: number, body: object): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && req.method === 'GET') return answer(res, 200, { ok: true });
    if (path !== '/v1/reports') return answer(res, 404, { error: 'not found: POST /v1/reports' });
    if (req.method !== 'POST') return answer(res, 405, { error: 'use POST' });
    const token = authorize(req);
    if (!token) return answer(res, 401, { error: 'missing or unknown token (Authorization: Bearer <token>)' });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return answer(res, 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` });
      chunks.push(chunk);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return answer(res, 400, { error: 'the body is not JSON' });
    }
    const batch = BatchSchema.safeParse(parsed);
    if (!batch.success) {
      const issue = batch.error.issues[0]!;
      return answer(res, 400, { error: `${issue.path.join('.') || 'body'}: ${issue.message}` });
    }
    const outside = [...new Set(batch.data.reports.map((r) => r.secretId).filter((id) => !inScope(id, token.secrets)))];
    if (outside.length > 0)
      return answer(res, 403, { error: `token ${token.name} may not report on ${outside.slice(0, 5).join(', ')}` });
    for (const { secretId, ...line } of batch.data.reports) {
      let lines = pending.get(secretId);
      if (!lines) pending.set(secretId, (lines = new Map()));
      const key = [batch.data.instanceId, line.versionId, line.outcome, line.errorClass ?? ''].join('\0');
      const known = lines.get(key);
      if (known) known.count += line.count;
      else lines.set(key, { instanceId: batch.data.instanceId, ...line });
    }
    answer(res, 202, { accepted: batch.data.reports.length });
  }

  let flushing: Promise<void> | undefined;
  const flush = async (): Promise<void> => {
    await flushing;
    const batches = [...pending.entries()];
    pending.clear();
    flushing = Promise.all(
      batches.map(([secretId, lines]) =>
        forward(secretId, [...lines.values()]).catch((error: Error) =>
          logger.warn({ secretId, error: error.message }, 'consumer reports not forwarded'),
        ),
      ),
    ).then(() => undefined);
    await flushing;
  };
  const timer = setInterval(() => void flush(), options.flushMs ?? 500);
  timer.unref();

  const server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      logger.warn({ error: error.message }, 'report request failed');
      if (!res.headersSent) answer(res, 500, { error: 'internal error' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${bound}`,
    flush,
    async close() {
      clearInterval(timer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await flush();
    },
  };
}
