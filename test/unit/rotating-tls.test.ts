import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { InMemorySecretStore, RotatingTls, SecretCache, Stage, type TlsRefusalEvent } from 'rotor-consumers';
import type { TlsMaterial } from 'rotor-consumers/credentials';
import { issueCaCertificate, issueLeafCertificate } from '../../packages/rotor/src/rotators/tls/issue';

/**
 * RotatingTls's decisions, on rotor's real certificates in the in-memory store: what it refuses, what it keeps
 * serving, and what it tries again. (The load test on the stack proves the handshakes.)
 */
let ca: TlsMaterial;
let stranger: TlsMaterial;
const leaf = (issuer: TlsMaterial, options: { names?: string[]; now?: Date } = {}) =>
  issueLeafCertificate({
    names: options.names ?? ['localhost'],
    keyType: 'ec-p256',
    lifetimeMs: 3_600_000,
    ca: { ...issuer, keyType: 'ec-p256' },
    ...(options.now ? { now: options.now } : {}),
  });

beforeAll(async () => {
  ca = await issueCaCertificate({ subject: 'unit CA', keyType: 'ec-p256', lifetimeMs: 86_400_000 });
  stranger = await issueCaCertificate({ subject: 'stranger CA', keyType: 'ec-p256', lifetimeMs: 86_400_000 });
});

function setUp() {
  const store = new InMemorySecretStore();
  store.create('bundle', JSON.stringify({ engine: 'tls-trust-bundle', certificates: [ca.certificate] }));
  // The CAs an mTLS server trusts for client certificates: another bundle than the one its own chain reaches.
  store.create('clients', JSON.stringify({ engine: 'tls-trust-bundle', certificates: [stranger.certificate] }));
  const certificate = (material: TlsMaterial) =>
    JSON.stringify({
      engine: 'tls-certificate',
      names: ['localhost'],
      lifetime: '1h',
      issuer: { type: 'internal-ca', ca: 'ca' },
      trust: 'bundle',
      ...material,
    });
  const put = (id: string, value: string) => store.putVersion(id, randomUUID(), value, [Stage.current]);
  const refusals: TlsRefusalEvent[] = [];
  const cache = new SecretCache({ store, refreshIntervalMs: 1 });
  const start = (options: { certificate?: string; trustBundle?: string }, now?: () => number) =>
    RotatingTls.start({
      cache,
      ...options,
      checkIntervalMs: 3_600_000,
      onRefused: (e) => refusals.push(e),
      ...(now ? { now } : {}),
    });
  return { store, certificate, put, refusals, start };
}

describe('RotatingTls', () => {
  it('refuses to start on a trust bundle it cannot use, rather than trust Node’s public roots', async () => {
    const { store, start } = setUp();
    store.create('broken', JSON.stringify({ engine: 'tls-trust-bundle', certificates: ['not a certificate'] }));
    await expect(start({ trustBundle: 'broken' })).rejects.toThrow(
      'RotatingTls: secret broken holds no usable trust bundle',
    );
  });

  it('keeps serving the certificate in use when a new version is refused, and a bad bundle never holds back a good certificate', async () => {
    const { store, certificate, put, refusals, start } = setUp();
    const first = await leaf(ca);
    store.create('server', certificate(first));
    const tls = await start({ certificate: 'server', trustBundle: 'clients' });
    const inUse = tls.stats().serial;

    put('server', certificate(await leaf(stranger)));
    await new Promise((r) => setTimeout(r, 5));
    expect(await tls.refresh()).toBe(false);
    expect(tls.stats()).toMatchObject({ serial: inUse, refusals: 1 });
    expect(refusals.at(-1)).toMatchObject({ secretId: 'server', reason: 'untrusted' });
    // The same version is not refused again at every check.
    expect(await tls.refresh()).toBe(false);
    expect(tls.stats().refusals).toBe(1);

    // A broken version of the clients' bundle is refused once, and a good certificate swaps in regardless.
    put('clients', JSON.stringify({ engine: 'tls-trust-bundle', certificates: ['not a certificate'] }));
    const second = await leaf(ca);
    put('server', certificate(second));
    await new Promise((r) => setTimeout(r, 5));
    expect(await tls.refresh()).toBe(true);
    expect(tls.stats().serial).not.toBe(inUse);
    expect(tls.stats().anchors).toBe(1);
    expect(refusals.map((r) => r.secretId)).toEqual(['server', 'clients']);
    expect(await tls.refresh()).toBe(false);
    expect(refusals).toHaveLength(2);
    for (const r of refusals) expect(JSON.stringify(r)).not.toContain('PRIVATE KEY');
    tls.close();
  });

  it('tries a certificate that is not valid yet again at each check (a clock behind the issuer’s), and takes it once it is', async () => {
    const { store, certificate, put, start } = setUp();
    store.create('server', certificate(await leaf(ca)));
    let now = Date.now();
    const tls = await start({ certificate: 'server' }, () => now);
    // Issued "in 10 minutes": notBefore is 10 minutes less a tenth of the hour from now.
    const early = await leaf(ca, { now: new Date(now + 600_000) });
    put('server', certificate(early));
    await new Promise((r) => setTimeout(r, 5));
    expect(await tls.refresh()).toBe(false);
    now += 600_000;
    expect(await tls.refresh()).toBe(true);
    tls.close();
  });

  it('gives the same agent for the same options, and new ones once the material changes', async () => {
    const { store, certificate, put, start } = setUp();
    store.create('client', certificate(await leaf(ca)));
    const tls = await start({ certificate: 'client', trustBundle: 'bundle' });
    const kept = tls.agent({ keepAlive: true });
    expect(tls.agent({ keepAlive: true })).toBe(kept);
    expect(tls.agent({ keepAlive: false })).not.toBe(kept);
    put('client', certificate(await leaf(ca)));
    await new Promise((r) => setTimeout(r, 5));
    expect(await tls.refresh()).toBe(true);
    expect(tls.agent({ keepAlive: true })).not.toBe(kept);
    tls.close();
  });
});
