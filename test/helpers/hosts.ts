import { request } from 'node:http';

/**
 * A `fetch` for ConsumerReporter that connects from `localAddress` (127.0.0.x): the report endpoint tells instances
 * apart by the address they report from, so instances in one test process report as distinct hosts would.
 * Plain HTTP only, and only what the reporter uses (method, headers, string body, status).
 */
export function fetchFrom(localAddress: string): typeof fetch {
  return ((input: URL | string, init: RequestInit = {}) =>
    new Promise<Response>((resolve, reject) => {
      const req = request(
        new URL(String(input)),
        { method: init.method ?? 'GET', headers: init.headers as Record<string, string>, localAddress },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode! })));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
      req.end(init.body as string | undefined);
    })) as typeof fetch;
}
