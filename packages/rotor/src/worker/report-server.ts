import { InvalidInputError, LOGIN_OUTCOMES, RotorError, type LoginOutcome } from 'rotor-consumers/core';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type pino from 'pino';
import { z } from 'zod';
import type { ReportTokenConfig } from '../config/types';
import { instanceAddress, normalizeAddress } from '../shared/addresses';
import type { ConsumerReportLine } from '../shared/bake';
import { QueryName, rotationWorkflowId, SignalName } from '../shared/constants';
import type { RotationStatus } from '../shared/status';
import type { LeaseService } from './lease-service';

/*
 * The endpoint consumers report their logins to: applications hold no Temporal credentials, only a token scoped to
 * the secrets they may report on. What one token's holder can and cannot do is docs/consumers.md's threat model:
 *
 * - An instance is who the worker sees, never who the body claims: the token's name and the peer's address (or, from
 *   a trusted proxy, the address it forwarded). Made-up instance ids add no vote; one host is one vote, however many
 *   logins it claims (the bake counts instances, not logins).
 * - Bounded by construction: bodies (256 KiB), lines (1,000) and secrets (100) per request, requests per token (429),
 *   secrets and instances held between forwards. Counts are summed per instance, version and outcome (error classes
 *   and unknown versions never reach a rotation), and a secret's counts go to its rotation at most once per
 *   `forwardEvery`, only while its bake window is open: a rotation with no window open gets no signal at all.
 */

const MAX_BODY_BYTES = 256 * 1024;
const MAX_SECRETS_PER_REQUEST = 100;
/**
 * Secrets with counts waiting for the next forward, in all, per token and per instance (token and host): one host
 * cannot fill its token's share for the token's other hosts, nor one token the whole for the others. Secrets whose
 * bake window was open at the last forward take no share: made-up ids never push out a rotation's reports.
 */
const MAX_PENDING_SECRETS = 1000;
const MAX_PENDING_SECRETS_PER_TOKEN = 200;
const MAX_PENDING_SECRETS_PER_INSTANCE = 100;
/** Per-host request buckets kept (idle ones go first past it). */
const MAX_HOST_BUCKETS = 10_000;
/** Instances per secret between forwards, and versions per instance. */
const MAX_INSTANCES = 1000;
const MAX_VERSIONS_PER_INSTANCE = 4;
/** The most lines one forward carries (the workflow keeps as many). */
const MAX_LINES = 1000;

const text = (max: number) => z.string().min(1).max(max);
const BatchSchema = z.strictObject({
  /** The instance's own name for itself: logged, never counted (the worker derives who reports). */
  instanceId: text(200).optional(),
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

const LeaseRequestSchema = z.strictObject({ secretId: text(2048) });

/** A configured token, ready to compare: its digest, never its text. */
export interface Token {
  name: string;
  digest: Buffer;
  secrets: string[];
  requestsPerSecond: number;
  /** Live leases its holders may hold through this endpoint: a restart loop cannot pile up logins. */
  maxLeases: number;
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
    return {
      name: config.name,
      digest: digest(value),
      secrets: config.secrets,
      requestsPerSecond: config.requestsPerSecond,
      maxLeases: config.maxLeases,
    };
  });
}

/**
 * Whether `secretId` is one of `scopes`: an exact id, a prefix of whole path segments (`prod/db/*` covers
 * `prod/db/orders`, never `prod/dbx`), or `*` (every secret).
 */
export function inScope(secretId: string, scopes: readonly string[]): boolean {
  return scopes.some((scope) =>
    scope === '*' ? true : scope.endsWith('/*') ? secretId.startsWith(scope.slice(0, -1)) : secretId === scope,
  );
}

/** The versions a secret's open bake window watches, or undefined when none is open. */
export type BakeWindowLookup = (secretId: string) => Promise<{ next: string; previous: string } | undefined>;
export type Forward = (secretId: string, lines: ConsumerReportLine[]) => Promise<void>;

/**
 * Asks the secret's rotation whether a bake window is open: `describe` first (answered by the server; a closed run
 * is never queried, which would make a worker replay its history), then the `status` query of a running one, in
 * phase grace by its memo. None running is none open.
 */
export function openBakeWindow(client: Client): BakeWindowLookup {
  return async (secretId) => {
    try {
      const handle = client.workflow.getHandle(rotationWorkflowId(secretId));
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING' || description.memo?.phase !== 'grace') return undefined;
      const status = await handle.query<RotationStatus>(QueryName.status);
      const { current, previous } = status.versions;
      const open = status.phase === 'grace' && status.bake !== undefined && status.bake.verdict === undefined;
      return open && current && previous ? { next: current, previous } : undefined;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  };
}

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

/** Requests a second over a burst of twice as many; `take` says whether one more may come now. */
class TokenBucket {
  #level: number;
  #at = performance.now();
  constructor(private readonly perSecond: number) {
    this.#level = 2 * perSecond;
  }
  take(): boolean {
    const now = performance.now();
    this.#level = Math.min(2 * this.perSecond, this.#level + ((now - this.#at) / 1000) * this.perSecond);
    this.#at = now;
    if (this.#level < 1) return false;
    this.#level -= 1;
    return true;
  }
}

/** The address an instance reports from: the peer, or the last address a trusted proxy forwarded. */
export function reportingAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedProxies: readonly string[],
): string {
  let address = normalizeAddress(peer ?? 'unknown');
  if (!trustedProxies.includes(address) || forwardedFor === undefined) return address;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((h) => h.trim());
  // From the right: each trusted proxy names the hop before it; the first address no trusted proxy holds is the client.
  for (let i = hops.length - 1; i >= 0 && trustedProxies.includes(address); i--) {
    if (isIP(hops[i]!) === 0) break;
    address = normalizeAddress(hops[i]!);
  }
  return address;
}

export interface ReportServer {
  url: string;
  /** Sends what is counted now (tests; the server forwards on its own every `forwardEveryMs`). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

type Counts = Map<string, Map<string, Map<LoginOutcome, number>>>; // instance → version → outcome → count

export async function serveReports(options: {
  port: number;
  host: string;
  tokens: Token[];
  lookup: BakeWindowLookup;
  forward: Forward;
  logger: pino.Logger;
  forwardEveryMs?: number;
  trustedProxies?: readonly string[];
  /** IPv6 reporters count as one instance per network of this many bits (default 64). */
  ipv6InstancePrefix?: number;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Short-lived credentials: `/v1/leases` routes, for the secrets each token's scopes cover. */
  leases?: LeaseService;
}): Promise<ReportServer> {
  const { tokens, lookup, forward, logger } = options;
  const trustedProxies = options.trustedProxies ?? [];
  const buckets = new Map(tokens.map((t) => [t.name, new TokenBucket(t.requestsPerSecond)]));
  /**
   * Each host's own bucket within its token's: a host may use a quarter of the token's rate (at least 5 requests a
   * second, an instance's reports and lease renewals), so one host cannot starve the token's other hosts.
   */
  const hostBuckets = new Map<string, TokenBucket>();
  const hostTake = (token: Token, instance: string): boolean => {
    let bucket = hostBuckets.get(instance);
    if (bucket)
      hostBuckets.delete(instance); // re-inserted below: the map's order is least recently used first
    else {
      if (hostBuckets.size >= MAX_HOST_BUCKETS) hostBuckets.delete(hostBuckets.keys().next().value!);
      bucket = new TokenBucket(Math.min(token.requestsPerSecond, Math.max(5, Math.ceil(token.requestsPerSecond / 4))));
    }
    hostBuckets.set(instance, bucket);
    return bucket.take();
  };
  let pending = new Map<string, Counts>();
  /** The secrets each token and each instance added to `pending` since the last forward (see the bounds above). */
  let pendingByToken = new Map<string, Set<string>>();
  let pendingByInstance = new Map<string, Set<string>>();
  /** Secrets whose bake window was open at the last forward: their lines take no share of the bounds. */
  let baking = new Set<string>();
  let dropped = 0;

  const authorize = (req: IncomingMessage): Token | undefined => {
    const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!match) return undefined;
    const presented = digest(match[1]!);
    return tokens.find((t) => timingSafeEqual(t.digest, presented));
  };

  const answer = (res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };

  /** Adds one line to what waits for the next forward; false when a bound dropped it. */
  const count = (
    token: string,
    secretId: string,
    instance: string,
    versionId: string,
    outcome: LoginOutcome,
    n: number,
  ) => {
    if (!baking.has(secretId)) {
      let ofToken = pendingByToken.get(token);
      if (!ofToken) pendingByToken.set(token, (ofToken = new Set()));
      let ofInstance = pendingByInstance.get(instance);
      if (!ofInstance) pendingByInstance.set(instance, (ofInstance = new Set()));
      if (!ofInstance.has(secretId)) {
        if (ofInstance.size >= MAX_PENDING_SECRETS_PER_INSTANCE) return false;
        if (!ofToken.has(secretId) && ofToken.size >= MAX_PENDING_SECRETS_PER_TOKEN) return false;
        ofInstance.add(secretId);
        ofToken.add(secretId);
      }
    }
    let counts = pending.get(secretId);
    if (!counts) {
      if (pending.size >= MAX_PENDING_SECRETS && !baking.has(secretId)) return false;
      pending.set(secretId, (counts = new Map()));
    }
    let versions = counts.get(instance);
    if (!versions) {
      if (counts.size >= MAX_INSTANCES) return false;
      counts.set(instance, (versions = new Map()));
    }
    let outcomes = versions.get(versionId);
    if (!outcomes) {
      if (versions.size >= MAX_VERSIONS_PER_INSTANCE) return false;
      versions.set(versionId, (outcomes = new Map()));
    }
    outcomes.set(outcome, Math.min(1e9, (outcomes.get(outcome) ?? 0) + n));
    return true;
  };

  /** The body as JSON, or undefined once an error answer went out. */
  async function readJson(req: IncomingMessage, res: ServerResponse): Promise<{ body: unknown } | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        answer(res, 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` });
        return undefined;
      }
      chunks.push(chunk);
    }
    try {
      return { body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') };
    } catch {
      answer(res, 400, { error: 'the body is not JSON' });
      return undefined;
    }
  }

  /** Each token's live leases through this endpoint, with when its holder was last heard of. */
  const leasesOf = new Map<string, Map<string, { seenAt: number; renewEveryMs: number }>>();
  /**
   * Forgets leases whose holder has not renewed for four renewal periods and a second: the lease ended by then (its
   * holder taken for gone), so an application that restarts without releasing does not use up its token's leases.
   */
  const forgetSilent = (mine: Map<string, { seenAt: number; renewEveryMs: number }>) => {
    const now = Date.now();
    for (const [leaseId, { seenAt, renewEveryMs }] of mine)
      if (now - seenAt > renewEveryMs * 4 + 1000) mine.delete(leaseId);
  };

  /** `/v1/leases` (POST: open), `/v1/leases/<id>/renew` (POST), `/v1/leases/<id>` (DELETE: release). */
  async function handleLease(req: IncomingMessage, res: ServerResponse, token: Token, path: string): Promise<void> {
    const leases = options.leases;
    if (!leases) return answer(res, 404, { error: 'this endpoint serves no leases' });
    const mine = leasesOf.get(token.name) ?? new Map<string, { seenAt: number; renewEveryMs: number }>();
    leasesOf.set(token.name, mine);
    forgetSilent(mine);
    const match = /^\/v1\/leases(?:\/([0-9a-f-]{36})(\/renew)?)?$/.exec(path);
    if (!match) return answer(res, 404, { error: 'not found: /v1/leases, /v1/leases/<id>/renew' });
    const [, leaseId, renew] = match;
    if (!leaseId) {
      if (req.method !== 'POST') return answer(res, 405, { error: 'use POST' });
      const read = await readJson(req, res);
      if (!read) return;
      const request = LeaseRequestSchema.safeParse(read.body);
      if (!request.success) return answer(res, 400, { error: 'body: expected {"secretId": "<id>"}' });
      const { secretId } = request.data;
      if (!inScope(secretId, token.secrets))
        return answer(res, 403, { error: `token ${token.name} may not lease ${secretId}` });
      if (mine.size >= token.maxLeases)
        return answer(res, 429, { error: `token ${token.name} holds ${mine.size} live leases, the most it may` });
      // The place is held while the lease opens: requests at once cannot pass the limit together.
      const placeholder = `opening:${randomUUID()}`;
      mine.set(placeholder, { seenAt: Date.now(), renewEveryMs: 60_000 });
      try {
        const credential = await leases.open(secretId, token.name);
        mine.set(credential.leaseId, { seenAt: Date.now(), renewEveryMs: credential.renewEveryMs });
        logger.info({ secretId, leaseId: credential.leaseId, token: token.name }, 'lease opened');
        return answer(res, 201, credential);
      } catch (error) {
        if (error instanceof RotorError && error.nonRetryable)
          return answer(res, 400, { error: error.message, type: error.type });
        throw error;
      } finally {
        mine.delete(placeholder);
      }
    }
    if (renew && req.method === 'POST') {
      const credential = await leases.renew(leaseId, token.name);
      if (!credential) {
        mine.delete(leaseId);
        return answer(res, 410, { error: `lease ${leaseId} has ended: open a new one` });
      }
      mine.set(leaseId, { seenAt: Date.now(), renewEveryMs: credential.renewEveryMs });
      return answer(res, 200, credential);
    }
    if (!renew && req.method === 'DELETE') {
      await leases.release(leaseId, token.name);
      mine.delete(leaseId);
      return answer(res, 204, {});
    }
    return answer(res, 405, { error: 'POST /v1/leases/<id>/renew or DELETE /v1/leases/<id>' });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz' && req.method === 'GET') return answer(res, 200, { ok: true });
    const isLease = path === '/v1/leases' || path.startsWith('/v1/leases/');
    if (path !== '/v1/reports' && !isLease)
      return answer(res, 404, { error: 'not found: POST /v1/reports, /v1/leases' });
    if (!isLease && req.method !== 'POST') return answer(res, 405, { error: 'use POST' });
    const token = authorize(req);
    if (!token) return answer(res, 401, { error: 'missing or unknown token (Authorization: Bearer <token>)' });
    // One vote per token and host: the address the worker sees (or a trusted proxy forwarded), IPv6 by its network.
    const address = reportingAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxies);
    const instance = `${token.name}@${instanceAddress(address, options.ipv6InstancePrefix)}`;
    if (!hostTake(token, instance))
      return answer(
        res,
        429,
        {
          error: `this host sends more than its share of token ${token.name}'s ${token.requestsPerSecond} requests a second`,
        },
        { 'retry-after': '1' },
      );
    if (!buckets.get(token.name)!.take())
      return answer(
        res,
        429,
        { error: `token ${token.name} sends more than ${token.requestsPerSecond} requests a second` },
        { 'retry-after': '1' },
      );
    if (isLease) return handleLease(req, res, token, path);
    const read = await readJson(req, res);
    if (!read) return;
    const parsed = read.body;
    const batch = BatchSchema.safeParse(parsed);
    if (!batch.success) {
      const issue = batch.error.issues[0]!;
      return answer(res, 400, { error: `${issue.path.join('.') || 'body'}: ${issue.message}` });
    }
    const secrets = new Set(batch.data.reports.map((r) => r.secretId));
    if (secrets.size > MAX_SECRETS_PER_REQUEST)
      return answer(res, 400, {
        error: `reports: ${secrets.size} secrets in one request; at most ${MAX_SECRETS_PER_REQUEST}`,
      });
    const outside = [...secrets].filter((id) => !inScope(id, token.secrets));
    if (outside.length > 0)
      return answer(res, 403, { error: `token ${token.name} may not report on ${outside.slice(0, 5).join(', ')}` });
    let kept = 0;
    for (const r of batch.data.reports)
      if (count(token.name, r.secretId, instance, r.versionId, r.outcome, r.count)) kept++;
    dropped += batch.data.reports.length - kept;
    answer(res, 202, {
      accepted: kept,
      ...(kept < batch.data.reports.length ? { dropped: batch.data.reports.length - kept } : {}),
    });
  }

  /** One secret's counts, as lines for its open window's two versions; nothing when no window is open. */
  const forwardOne = async (secretId: string, counts: Counts, open: Set<string>): Promise<void> => {
    const window = await lookup(secretId);
    if (!window) return;
    open.add(secretId);
    const lines: ConsumerReportLine[] = [];
    for (const [instanceId, versions] of counts) {
      // All of an instance's lines or none: half of them would misstate its latest report.
      const own: ConsumerReportLine[] = [];
      for (const versionId of [window.next, window.previous])
        for (const [outcome, n] of versions.get(versionId) ?? [])
          own.push({ instanceId, versionId, outcome, count: n });
      if (lines.length + own.length <= MAX_LINES) lines.push(...own);
      else dropped += own.length;
    }
    if (lines.length > 0) await forward(secretId, lines);
  };

  // Forwards run one after the other (each waits for the one before): a rotation gets its reports in order.
  let forwarding: Promise<void> = Promise.resolve();
  const forwardAll = async (): Promise<void> => {
    const batches = [...pending.entries()];
    pending = new Map();
    pendingByToken = new Map();
    pendingByInstance = new Map();
    const open = new Set<string>();
    await Promise.all(
      batches.map(([secretId, counts]) =>
        forwardOne(secretId, counts, open).catch((error: Error) =>
          logger.warn({ secretId, error: error.message }, 'consumer reports not forwarded'),
        ),
      ),
    );
    baking = open;
    if (dropped > 0) logger.warn({ dropped }, 'consumer report lines dropped: past the bounds between forwards');
    dropped = 0;
  };
  const flush = (): Promise<void> => (forwarding = forwarding.then(forwardAll));
  const timer = setInterval(() => void flush(), options.forwardEveryMs ?? 5000);
  timer.unref();

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((error: Error) => {
      logger.warn({ error: error.message }, 'report request failed');
      if (!res.headersSent) answer(res, 500, { error: 'internal error' });
    });
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, listener)
    : createHttpServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://${options.host.includes(':') ? `[${options.host}]` : options.host}:${bound}`,
    flush,
    async close() {
      clearInterval(timer);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await flush();
      await options.leases?.close();
    },
  };
}
