import { createServer, request, type IncomingMessage, type Server } from 'node:http';

/**
 * An HTTP proxy on loopback in front of a store's API (OpenBao, moto) that can lose the answer of a write: the
 * request reaches the store and is carried out, then the client's connection is dropped before the answer, as when a
 * worker dies or the network fails between a write and its answer. Reads (GET, and AWS's Get/Describe/List calls)
 * are never lost.
 */
export async function lossyProxy(target: string): Promise<{
  url: string;
  /** Loses the answer of the `n`th write from now (1: the next one). */
  loseAnswerOfWrite(n: number): void;
  /** Writes whose answer was lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}> {
  const upstream = new URL(target);
  let countdown = 0;
  let lost = 0;
  const isWrite = (req: IncomingMessage) =>
    req.method !== 'GET' &&
    req.method !== 'LIST' &&
    !/\.(Get|Describe|List)/.test(String(req.headers['x-amz-target'] ?? ''));
  const server: Server = createServer((req, res) => {
    const lose = isWrite(req) && countdown > 0 && --countdown === 0;
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (lose) {
          lost++;
          answer.resume();
          answer.on('end', () => req.socket.destroy()); // carried out; its answer never arrives
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => req.socket.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    loseAnswerOfWrite(n) {
      countdown = n;
    },
    get lost() {
      return lost;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
