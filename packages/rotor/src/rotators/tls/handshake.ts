import { isIP } from 'node:net';
import { checkServerIdentity, connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { TlsMaterialError, type TlsMaterial } from 'rotor-consumers/credentials';

/**
 * What a client would do with `material`, for real: a TLS server on an ephemeral loopback port serves it, and a
 * client that trusts only `trust` (Node's root certificates without it) completes a handshake for each name, with
 * Node's own chain, validity and hostname checks. Throws TlsMaterialError (`untrusted`) with OpenSSL's reason for the
 * first name that fails. Nothing leaves the host.
 */
export async function probeHandshakes(
  material: TlsMaterial,
  options: { names: readonly string[]; trust?: readonly string[]; timeoutMs?: number; secretId?: string },
): Promise<void> {
  let server: ReturnType<typeof createServer>;
  try {
    server = createServer({ key: material.privateKey, cert: material.certificate }, (socket) => socket.end());
  } catch (error) {
    // OpenSSL's own words may quote what it was given: only its code leaves.
    throw new TlsMaterialError(
      'malformed',
      `Node refused the key or certificate (${(error as NodeJS.ErrnoException).code ?? 'no code'})`,
      options.secretId,
    );
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  try {
    for (const name of options.names) {
      const host = name.startsWith('*.') ? `probe${name.slice(1)}` : name;
      await new Promise<void>((resolve, reject) => {
        const socket: TLSSocket = connect({
          host: '127.0.0.1',
          port,
          ...(isIP(host) ? {} : { servername: host }),
          ...(options.trust ? { ca: [...options.trust] } : {}),
          checkServerIdentity: (_, cert) => checkServerIdentity(host, cert),
          timeout: options.timeoutMs ?? 5000,
        });
        socket.once('secureConnect', () => {
          socket.end();
          resolve();
        });
        socket.once('timeout', () => socket.destroy(new Error('the handshake timed out')));
        socket.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            new TlsMaterialError(
              'untrusted',
              `a client connecting to ${name} refuses the certificate: ${error.code ?? ''} ${error.message}`.trim(),
              options.secretId,
            ),
          ),
        );
      });
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
