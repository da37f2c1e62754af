import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a test application does per request: each returns the version of the credential that served it. */
export interface Backend {
  /** A query on a pooled connection. */
  pooled(): Promise<string>;
  /** A new connection for this request alone, closed after it (a login per request). */
  fresh(): Promise<string>;
  close(): Promise<void>;
}

export interface LoadReport {
  /** Requests served, by credential version. */
  served: Map<string, number>;
  /** Failed requests, by the error the application answered with. */
  failures: string[];
  total(): number;
}

/**
 * A real HTTP application in front of `backend` (routes /pooled and /fresh) and clients calling it continuously
 * until stopped: `concurrency` loops, alternating both routes.
 */
export async function serveUnderLoad(backend: Backend, concurrency = 3): Promise<LoadReport & { stop(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const route = request.url === '/fresh' ? backend.fresh : backend.pooled;
    route.call(backend).then(
      (version) => response.writeHead(200).end(version),
      // MySQL's server error number (mysql2 names some after unrelated errors), else pg's SQLSTATE or Node's code.
      (error: { code?: string; errno?: number; message?: string }) =>
        response.writeHead(503).end(String(typeof error.errno === 'number' && error.errno > 0 ? error.errno : (error.code ?? error.message))),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const served = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    for (let n = i; running; n++) {
      try {
        const response = await fetch(`${url}/${n % 2 === 0 ? 'pooled' : 'fresh'}`);
        const body = await response.text();
        if (response.ok) served.set(body, (served.get(body) ?? 0) + 1);
        else failures.push(body);
      } catch (error) {
        failures.push(`http: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    served,
    failures,
    total: () => [...served.values()].reduce((a, b) => a + b, 0) + failures.length,
    async stop() {
      running = false;
      await Promise.all(loops);
      await new Promise((resolve) => server.close(resolve));
      await backend.close();
    },
  };
}
