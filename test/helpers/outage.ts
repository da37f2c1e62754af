import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback in front of a database, which a test can cut (nothing listens: connections are refused,
 * open ones are reset, as in a failover), hang (connections are accepted and never answered, as behind a firewall
 * that drops packets) and restore on the same port. Secrets that name the proxy's port reach the database only while
 * it is up; the database itself stays up for every other test.
 */
export async function tcpProxy(target: { host: string; port: number }): Promise<{
  port: number;
  cut(): Promise<void>;
  hang(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let hanging = false;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        if (hanging) {
          sockets.add(client);
          client.on('close', () => sockets.delete(client));
          client.on('error', () => undefined);
          return; // accepted, never answered
        }
        const upstream = connect(target.port, target.host);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => undefined);
        }
        client.pipe(upstream).pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  const hang = async () => {
    hanging = true;
    for (const socket of sockets) socket.destroy();
    if (!server) await listen();
  };
  await listen();
  // Restoring a proxy that is up changes nothing.
  const restore = async () => {
    hanging = false;
    for (const socket of sockets) socket.destroy(); // the hung ones
    if (!server) await listen();
  };
  return { port, cut, hang, restore, close: cut };
}
