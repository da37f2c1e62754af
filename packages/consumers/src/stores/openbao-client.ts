import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { InvalidInputError, StoreRejectedError, UnavailableError } from '../errors';

/**
 * How the store logs in to OpenBao or Vault.
 * - `token`: a token given as is, or read from `tokenFile` (a Vault/OpenBao Agent sink: read again when the server
 *   refuses the one in hand). Renewed at two thirds of its TTL when renewable.
 * - `approle`: `roleId` and a `secretId` (or `secretIdFile`), at `auth/<mount>/login` (mount `approle`).
 * - `kubernetes` / `jwt`: a `role` and the JWT in `jwtFile` (the service account token on Kubernetes, read at every
 *   login: the kubelet rotates it), at `auth/<mount>/login` (mount `kubernetes` or `jwt`).
 * Login methods log in again when the token's lease nears its end or the server refuses it.
 */
export type OpenBaoAuth =
  | { method: 'token'; token?: string; tokenFile?: string }
  | { method: 'approle'; roleId: string; secretId?: string; secretIdFile?: string; mount?: string }
  | { method: 'kubernetes' | 'jwt'; role: string; jwtFile?: string; mount?: string };

export interface OpenBaoConnectionOptions {
  /** The server's address, e.g. `https://bao.internal:8200`. */
  address: string;
  auth: OpenBaoAuth;
  /** An OpenBao/Vault namespace, sent as `X-Vault-Namespace` on every request. */
  namespace?: string;
  /** PEM file of the CA that signed the server's certificate (HTTPS), instead of the system's. */
  caFile?: string;
  /** Per-request timeout in milliseconds (default 5000). */
  requestTimeoutMs?: number;
}

export interface BaoResponse {
  status: number;
  /** The parsed JSON body, or undefined when there is none (204). */
  body?: { data?: unknown; errors?: string[]; auth?: BaoAuthBlock; warnings?: string[] };
}

interface BaoAuthBlock {
  client_token: string;
  lease_duration: number;
  renewable: boolean;
}

const KUBERNETES_JWT = '/var/run/secrets/kubernetes.io/serviceaccount/token';
/** Answers bigger than this are refused: a KV secret is small, metadata at most a few kilobytes. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * One connection to an OpenBao or Vault server: requests with the token in hand, which it gets, renews and replaces
 * itself. The token never leaves this object (not in errors, not in logs).
 */
export class OpenBaoClient {
  readonly address: string;
  readonly #options: OpenBaoConnectionOptions;
  readonly #agent: HttpAgent | HttpsAgent;
  readonly #https: boolean;
  #token?: string;
  /** When the token should be renewed or replaced (ms since the epoch); undefined: never (a root token). */
  #refreshAt?: number;
  #renewable = false;
  #pending?: Promise<void>;

  constructor(options: OpenBaoConnectionOptions) {
    const url = parseAddress(options.address);
    checkAuth(options.auth);
    this.#options = options;
    this.address = url.origin;
    this.#https = url.protocol === 'https:';
    const ca = options.caFile ? readFileSync(options.caFile) : undefined;
    this.#agent = this.#https
      ? new HttpsAgent({ keepAlive: true, maxSockets: 16, ...(ca ? { ca } : {}) })
      : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  }

  /** Closes idle connections. */
  close(): void {
    this.#agent.destroy();
  }

  /**
   * Sends one request with the token, logging in first when needed. A refused token (403) is replaced once (a new
   * login, or the token file read again) and the request sent again. `subject` names what the request is about in
   * errors.
   */
  async request(method: string, path: string, subject: string, body?: unknown): Promise<BaoResponse> {
    await this.#ensureToken(subject);
    const first = await this.#send(method, path, subject, body, this.#token);
    if (first.status !== 403 || !isPermissionDenied(first)) return first;
    const before = this.#token;
    await this.#replaceToken(subject, before);
    if (this.#token === before) return first;
    return this.#send(method, path, subject, body, this.#token);
  }

  async #ensureToken(subject: string): Promise<void> {
    if (this.#token && (this.#refreshAt === undefined || Date.now() < this.#refreshAt)) return;
    if (this.#token && this.#renewable) {
      this.#pending ??= this.#renew(subject).finally(() => (this.#pending = undefined));
      return this.#pending;
    }
    return this.#replaceToken(subject, this.#token);
  }

  /** Gets a new token (single-flight), unless another caller already replaced `stale`. */
  async #replaceToken(subject: string, stale: string | undefined): Promise<void> {
    if (this.#token !== stale) return;
    this.#pending ??= this.#login(subject).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  async #renew(subject: string): Promise<void> {
    const answer = await this.#send('POST', 'auth/token/renew-self', subject, {}, this.#token);
    if (answer.status === 200 && answer.body?.auth) return this.#take(answer.body.auth);
    // The server away for a moment: the token in hand is still good; the renewal is tried again in 5 s.
    if (answer.status >= 500 || answer.status === 429 || answer.status === 0) {
      this.#refreshAt = Date.now() + 5000;
      return;
    }
    // Not renewable any more (past its max TTL) or revoked: a login method logs in again; a given token stays
    // until the server refuses it.
    if (this.#options.auth.method === 'token') {
      this.#renewable = false;
      this.#refreshAt = undefined;
      return;
    }
    return this.#login(subject);
  }

  async #login(subject: string): Promise<void> {
    const auth = this.#options.auth;
    if (auth.method === 'token') {
      const token = auth.tokenFile ? (await readSecretFile(auth.tokenFile, 'tokenFile')).trim() : auth.token;
      if (!token) throw new InvalidInputError('OpenBao auth: the token is empty');
      this.#token = token;
      const self = await this.#send('GET', 'auth/token/lookup-self', subject, undefined, token);
      if (self.status >= 500 || self.status === 429) {
        // Look it up again with the next request; until then the token is used as it is.
        this.#refreshAt = Date.now();
        return;
      }
      const data = self.body?.data as { ttl?: number; renewable?: boolean } | undefined;
      if (self.status === 200 && data) {
        this.#renewable = Boolean(data.renewable);
        this.#refreshAt = data.ttl ? Date.now() + (data.ttl * 1000 * 2) / 3 : undefined;
      } else {
        this.#renewable = false;
        this.#refreshAt = undefined;
      }
      return;
    }
    const mount = auth.mount ?? auth.method;
    const body =
      auth.method === 'approle'
        ? {
            role_id: auth.roleId,
            secret_id: auth.secretIdFile
              ? (await readSecretFile(auth.secretIdFile, 'secretIdFile')).trim()
              : auth.secretId,
          }
        : { role: auth.role, jwt: (await readSecretFile(auth.jwtFile ?? KUBERNETES_JWT, 'jwtFile')).trim() };
    const answer = await this.#send('POST', `auth/${mount}/login`, subject, body, undefined);
    if (answer.status === 200 && answer.body?.auth) return this.#take(answer.body.auth);
    if (answer.status >= 500 || answer.status === 429) {
      throw new UnavailableError(subject, `OpenBao at ${this.address} did not log in (HTTP ${answer.status})`);
    }
    throw new StoreRejectedError(
      subject,
      `OpenBao at ${this.address} refused the ${auth.method} login at auth/${mount} (HTTP ${answer.status}${errorsOf(answer)})`,
    );
  }

  #take(auth: BaoAuthBlock): void {
    this.#token = auth.client_token;
    this.#renewable = auth.renewable;
    this.#refreshAt = auth.lease_duration > 0 ? Date.now() + (auth.lease_duration * 1000 * 2) / 3 : undefined;
  }

  #send(method: string, path: string, subject: string, body: unknown, token: string | undefined): Promise<BaoResponse> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (token) headers['x-vault-token'] = token;
    if (this.#options.namespace) headers['x-vault-namespace'] = this.#options.namespace;
    if (payload) {
      headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      headers['content-length'] = payload.length;
    }
    const request = this.#https ? httpsRequest : httpRequest;
    const timeoutMs = this.#options.requestTimeoutMs ?? 5000;
    return new Promise<BaoResponse>((resolve, reject) => {
      const fail = (detail: string, cause?: unknown) =>
        reject(new UnavailableError(subject, `OpenBao at ${this.address} did not answer (${detail})`, { cause }));
      const req = request(
        `${this.address}/v1/${path}`,
        { method, headers, agent: this.#agent, timeout: timeoutMs },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy();
              fail(`an answer over ${MAX_RESPONSE_BYTES} bytes`);
            } else chunks.push(chunk);
          });
          res.on('error', (error) => fail(error.message, error));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: BaoResponse['body'];
            try {
              parsed = text ? (JSON.parse(text) as BaoResponse['body']) : undefined;
            } catch {
              // A proxy's HTML page, say: only the status says anything.
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (error: NodeJS.ErrnoException) => fail(error.code ?? error.message, error));
      req.end(payload);
    });
  }
}

/** The server's error strings, for messages: they name paths and parameters, never values. */
export function errorsOf(response: BaoResponse): string {
  const errors = response.body?.errors?.filter(Boolean) ?? [];
  return errors.length ? `: ${errors.join('; ').slice(0, 300)}` : '';
}

function isPermissionDenied(response: BaoResponse): boolean {
  return (response.body?.errors ?? []).some((e) => /permission denied|invalid token|token.*expired/i.test(e));
}

function parseAddress(address: string): URL {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new InvalidInputError(`OpenBao address ${JSON.stringify(address)} is not a URL (e.g. https://bao:8200)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidInputError(`OpenBao address ${JSON.stringify(address)}: use http:// or https://`);
  return url;
}

function checkAuth(auth: OpenBaoAuth): void {
  switch (auth?.method) {
    case 'token':
      if (!auth.token && !auth.tokenFile) throw new InvalidInputError('OpenBao auth token: give token or tokenFile');
      return;
    case 'approle':
      if (!auth.roleId || (!auth.secretId && !auth.secretIdFile))
        throw new InvalidInputError('OpenBao auth approle: give roleId, and secretId or secretIdFile');
      return;
    case 'kubernetes':
    case 'jwt':
      if (!auth.role) throw new InvalidInputError(`OpenBao auth ${auth.method}: give role (and jwtFile)`);
      return;
    default:
      throw new InvalidInputError('OpenBao auth: method must be token, approle, kubernetes or jwt');
  }
}

async function readSecretFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new InvalidInputError(`OpenBao auth: cannot read ${what} ${file} (${(error as NodeJS.ErrnoException).code})`);
  }
}
