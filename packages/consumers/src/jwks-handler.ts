import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { RegistryQuery } from './api-key-verifier';
import { JWKS_SQL } from './credentials/jwt';

export interface JwksHandlerOptions {
  /** The `service` of the signing key secret. */
  service: string;
  /** The registry lookup (read access to `rotor_jwks`). */
  query: RegistryQuery;
  /** The secret's `jwks.maxAge`: served as `Cache-Control: max-age`, lowered by up to `jitter` so caches spread out. */
  maxAgeMs: number;
  /** Share of max-age taken off at random per response (default 0.1); never more than maxAgeMs is served. */
  jitter?: number;
  random?: () => number;
}

/**
 * An http/Express-style handler serving a service's public keys as a JWKS (`application/jwk-set+json`), with
 * `Cache-Control: public, max-age` (jittered down, never up), a strong ETag, and 304 for a matching If-None-Match.
 * Concurrent requests share one registry query; a registry that does not answer gets 503 and `no-store`.
 */
export function jwksHandler(options: JwksHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const random = options.random ?? Math.random;
  const jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5);
  let inFlight: Promise<string> | undefined;
  const body = () =>
    (inFlight ??= options
      .query(JWKS_SQL, [options.service])
      .then(({ rows }) => JSON.stringify({ keys: (rows as { jwk: JWK }[]).map((r) => r.jwk) }))
      .finally(() => (inFlight = undefined)));
  return (req, res) => {
    body().then(
      (text) => {
        const etag = `"${createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`;
        const maxAge = Math.max(0, Math.floor((options.maxAgeMs / 1000) * (1 - jitter * random())));
        const headers = { 'cache-control': `public, max-age=${maxAge}`, etag };
        if (req.headers['if-none-match'] === etag) res.writeHead(304, headers).end();
        else res.writeHead(200, { ...headers, 'content-type': 'application/jwk-set+json' }).end(text);
      },
      () => res.writeHead(503, { 'cache-control': 'no-store', 'retry-after': '1' }).end(),
    );
  };
}
