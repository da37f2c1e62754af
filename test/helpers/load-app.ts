import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { driveLoad, errorCode, type Load } from '../../packages/rotor/src/cli/load';

/** What a test application does per request: each returns the version of the credential that served it. */
export interface Backend {
  /** A query on a pooled connection. */
  pooled(): Promise<string>;
  /** A new connection for this request alone, closed after it (a login per request). */
  fresh(): Promise<string>;
  close(): Promise<void>;
}

/**
 * A real HTTP application in front of `backend` (routes /pooled and /fresh) and clients calling it continuously
 * until stopped: `concurrency` loops, alternating both routes. A failed request answers 503 with the error's code.
 */
export async function serveUnderLoad(backend: Backend, concurrency = 3): Promise<Load> {
  const server: Server = createServer((request, response) => {
    const route = request.url === '/fresh' ? backend.fresh : backend.pooled;
    route.call(backend).then(
      (version) => response.writeHead(200).end(version),
      (error: unknown) => response.writeHead(503).end(errorCode(error)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const load = driveLoad(async (n) => {
    const response = await fetch(`${url}/${n % 2 === 0 ? 'pooled' : 'fresh'}`).catch((error: Error) => {
      throw new Error(`http: ${error.message}`);
    });
    const body = await response.text();
    if (!response.ok) throw Object.assign(new Error(body), { code: body });
    return body;
  }, concurrency);
  return {
    ...load,
    async stop() {
      await load.stop();
      await new Promise((resolve) => server.close(resolve));
      await backend.close();
    },
  };
}
