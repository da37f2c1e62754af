import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { instanceAddress, normalizeAddress } from '../../packages/rotor/src/shared/addresses';
import type { ConsumerReportLine } from '../../packages/rotor/src/shared/bake';
import {
  inScope,
  reportingAddress,
  serveReports,
  type ReportServer,
  type Token,
} from '../../packages/rotor/src/worker/report-server';
import type { LeaseCredential, LeaseService } from '../../packages/rotor/src/worker/lease-service';
import { createHash } from 'node:crypto';

/*
 * The report endpoint on a real loopback socket, with the rotation behind it faked: what it forwards, to whom, and
 * what it refuses. Instances report from distinct loopback addresses (127.0.0.x), as distinct hosts would.
 */

const TOKEN = 'apps-token-0123456789abcdef';
const token = (overrides: Partial<Token> = {}): Token => ({
  name: 'apps',
  digest: createHash('sha256').update(TOKEN).digest(),
  secrets: ['prod/db/payments/*'],
  requestsPerSecond: 1000,
  maxLeases: 100,
  ...overrides,
});

let server: ReportServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Fakes {
  forwarded: { secretId: string; lines: ConsumerReportLine[] }[];
  lookups: string[];
}

async function serve(
  options: {
    tokens?: Token[];
    window?: { next: string; previous: string };
    trustedProxies?: string[];
    ipv6InstancePrefix?: number;
    tls?: { cert: Buffer; key: Buffer };
    leases?: LeaseService;
  } = {},
): Promise<Fakes> {
  const fakes: Fakes = { forwarded: [], lookups: [] };
  server = await serveReports({
    port: 0,
    host: '127.0.0.1',
    tokens: options.tokens ?? [token()],
    lookup: async (secretId) => {
      fakes.lookups.push(secretId);
      return options.window;
    },
    forward: async (secretId, lines) => void fakes.forwarded.push({ secretId, lines }),
    logger: pino({ level: 'silent' }),
    forwardEveryMs: 3_600_000,
    ...(options.trustedProxies ? { trustedProxies: options.trustedProxies } : {}),
    ...(options.ipv6InstancePrefix ? { ipv6InstancePrefix: options.ipv6InstancePrefix } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.leases ? { leases: options.leases } : {}),
  });
  return fakes;
}

/** POSTs `body` from `from` (a loopback address), as one host would. */
function post(
  body: unknown,
  opts: { from?: string; bearer?: string; headers?: Record<string, string>; ca?: Buffer } = {},
): Promise<{ status: number; body: { error?: string; accepted?: number }; headers: Record<string, unknown> }> {
  const url = new URL('/v1/reports', server!.url);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        localAddress: opts.from ?? '127.0.0.1',
        headers: {
          authorization: `Bearer ${opts.bearer ?? TOKEN}`,
          'content-type': 'application/json',
          ...opts.headers,
        },
        ...(opts.ca ? { ca: opts.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: string },
            headers: res.headers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(typeof body === 'string' ? body : JSON.stringify(body));
  });
}

const SECRET = 'prod/db/payments/orders';
const line = (over: Partial<ConsumerReportLine & { secretId: string; errorClass: string }> = {}) => ({
  secretId: SECRET,
  versionId: 'next',
  outcome: 'auth-failure',
  count: 1,
  ...over,
});

describe('who reports', () => {
  it('is the token and the address the worker sees, never the instance id a body claims', async () => {
    const fakes = await serve({ window: { next: 'next', previous: 'prev' } });
    for (const instanceId of ['made-up-1', 'made-up-2', 'made-up-3'])
      expect((await post({ instanceId, reports: [line({ count: 1_000_000 })] })).status).toBe(202);
    expect(
      (await post({ instanceId: 'real', reports: [line({ outcome: 'success', count: 5 })] }, { from: '127.0.0.2' }))
        .status,
    ).toBe(202);
    await server!.flush();
    expect(fakes.forwarded).toHaveLength(1);
    const lines = fakes.forwarded[0]!.lines;
    expect(new Set(lines.map((l) => l.instanceId))).toEqual(new Set(['apps@127.0.0.1', 'apps@127.0.0.2']));
    expect(lines).toContainEqual({
      instanceId: 'apps@127.0.0.1',
      versionId: 'next',
      outcome: 'auth-failure',
      count: 3_000_000,
    });
  });

  it('is the address a trusted proxy forwarded, and the peer itself for any other', () => {
    expect(reportingAddress('::ffff:10.0.0.5', '1.2.3.4', [])).toBe('10.0.0.5');
    expect(reportingAddress('10.0.0.5', '192.168.1.7, 10.0.0.4', ['10.0.0.5', '10.0.0.4'])).toBe('192.168.1.7');
    // The client's own X-Forwarded-For entries before the proxy's are not believed.
    expect(reportingAddress('10.0.0.5', 'forged-1, 8.8.8.8, 192.168.1.7', ['10.0.0.5'])).toBe('192.168.1.7');
    expect(reportingAddress('10.0.0.5', 'not-an-address', ['10.0.0.5'])).toBe('10.0.0.5');
  });

  it('is one host per IPv6 /64, whatever addresses of it a host reports from or however they are spelt', () => {
    expect(instanceAddress('2001:db8:1:2::a')).toBe('2001:db8:1:2::/64');
    expect(instanceAddress('2001:DB8:1:2:0:ffff:1:2')).toBe('2001:db8:1:2::/64');
    expect(instanceAddress('2001:db8:1:3::a')).toBe('2001:db8:1:3::/64');
    expect(instanceAddress('2001:db8:1:2::a', 48)).toBe('2001:db8:1::/48');
    expect(instanceAddress('2001:db8:1:2::a', 128)).toBe('2001:db8:1:2::a');
    // IPv4, however it arrives, is the address itself; zones are dropped; what is not an address stays as it is.
    for (const mapped of ['10.0.0.5', '::ffff:10.0.0.5', '::FFFF:a00:5'])
      expect(instanceAddress(mapped)).toBe('10.0.0.5');
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(normalizeAddress('2001:DB8:0::1')).toBe('2001:db8::1');
    expect(instanceAddress('unknown')).toBe('unknown');
  });

  it('counts many addresses of one IPv6 host as one instance, summing their counts (or each address with a prefix of 128)', async () => {
    for (const [prefix, expected] of [
      [undefined, { 'apps@2001:db8:1:2::/64': 2, 'apps@2001:db8:1:3::/64': 1 }],
      [128, { 'apps@2001:db8:1:2::a': 1, 'apps@2001:db8:1:2::b': 1, 'apps@2001:db8:1:3::1': 1 }],
    ] as const) {
      const fakes = await serve({
        window: { next: 'next', previous: 'prev' },
        trustedProxies: ['127.0.0.1'],
        ...(prefix ? { ipv6InstancePrefix: prefix } : {}),
      });
      for (const from of ['2001:db8:1:2::a', '2001:DB8:1:2:0:0:0:b', '2001:db8:1:3::1'])
        await post({ reports: [line({ count: 1 })] }, { headers: { 'x-forwarded-for': from } });
      await server!.flush();
      const counts = Object.fromEntries(fakes.forwarded[0]!.lines.map((l) => [l.instanceId, l.count]));
      expect(counts).toEqual(expected);
      await server!.close();
      server = undefined;
    }
  });

  it('behind a trusted proxy, tells hosts apart by what the proxy forwarded', async () => {
    const fakes = await serve({ window: { next: 'next', previous: 'prev' }, trustedProxies: ['127.0.0.1'] });
    await post({ reports: [line()] }, { headers: { 'x-forwarded-for': '10.1.1.1' } });
    await post({ reports: [line()] }, { headers: { 'x-forwarded-for': '10.1.1.2' } });
    await post({ reports: [line()] }, { from: '127.0.0.3', headers: { 'x-forwarded-for': '10.1.1.3' } });
    await server!.flush();
    expect(new Set(fakes.forwarded[0]!.lines.map((l) => l.instanceId))).toEqual(
      new Set(['apps@10.1.1.1', 'apps@10.1.1.2', 'apps@127.0.0.3']),
    );
  });
});

describe('what reaches a rotation', () => {
  it('nothing while no bake window is open: no signal, whatever is reported', async () => {
    const fakes = await serve({ window: undefined });
    for (let i = 0; i < 20; i++) expect((await post({ reports: [line({ outcome: 'success' })] })).status).toBe(202);
    await server!.flush();
    expect(fakes.lookups).toEqual([SECRET]);
    expect(fakes.forwarded).toEqual([]);
  });

  it("one line per instance, version and outcome, for the window's two versions only: floods of error classes and versions push nothing out", async () => {
    const fakes = await serve({ window: { next: 'next', previous: 'prev' } });
    await post({ reports: [line({ outcome: 'success', count: 40 })] }, { from: '127.0.0.2' });
    for (let p = 0; p < 7; p++) {
      const flood = Array.from({ length: 1000 }, (_, i) =>
        line({ errorClass: `E${p}-${i}`, versionId: i % 2 ? 'next' : `v-${p}-${i}` }),
      );
      expect((await post({ reports: flood })).status).toBe(202);
    }
    await server!.flush();
    const lines = fakes.forwarded[0]!.lines;
    expect(lines).toHaveLength(2);
    expect(lines).toContainEqual({ instanceId: 'apps@127.0.0.2', versionId: 'next', outcome: 'success', count: 40 });
    expect(lines).toContainEqual({
      instanceId: 'apps@127.0.0.1',
      versionId: 'next',
      outcome: 'auth-failure',
      count: 7 * 500,
    });
    expect(JSON.stringify(fakes.forwarded).length).toBeLessThan(1000);
  });

  it('a request under a prefix scope costs at most one lookup per secret and no signal for secrets with no window', async () => {
    const fakes = await serve({ window: undefined });
    const reports = Array.from({ length: 100 }, (_, i) => line({ secretId: `prod/db/payments/made-up-${i}` }));
    expect((await post({ reports })).status).toBe(202);
    await server!.flush();
    expect(fakes.lookups).toHaveLength(100);
    expect(fakes.forwarded).toEqual([]);
  });
});

describe('one token against the others', () => {
  it('cannot fill the secrets held between forwards: another token still reports', async () => {
    const other = 'other-token-0123456789abcdef';
    const fakes = await serve({
      tokens: [
        token({ secrets: ['*'] }),
        token({ name: 'other', digest: createHash('sha256').update(other).digest() }),
      ],
      window: { next: 'next', previous: 'prev' },
    });
    for (let r = 0; r < 3; r++) {
      const reports = Array.from({ length: 100 }, (_, i) => line({ secretId: `made-up/${r}-${i}` }));
      await post({ reports }, { from: `127.0.0.${r + 1}` });
    }
    const answer = await post({ reports: [line()] }, { bearer: other });
    expect(answer).toMatchObject({ status: 202, body: { accepted: 1 } });
    await server!.flush();
    expect(fakes.forwarded.filter((f) => f.secretId.startsWith('made-up/'))).toHaveLength(200);
    expect(fakes.forwarded.map((f) => f.secretId)).toContain(SECRET);
  });
});

describe('one host against the other hosts of its token', () => {
  let batch = 0;
  const madeUp = (host: number, n = 100) => {
    batch++;
    return post(
      { reports: Array.from({ length: n }, (_, i) => line({ secretId: `made-up/${host}-${batch}-${i}` })) },
      { from: `127.0.0.${host}` },
    );
  };

  it("cannot push out the token's other hosts: a flood of made-up secrets fills only its own share", async () => {
    const fakes = await serve({ tokens: [token({ secrets: ['*'] })], window: { next: 'next', previous: 'prev' } });
    await madeUp(1);
    expect((await madeUp(1)).body).toMatchObject({ accepted: 0 }); // its own share is full
    expect((await post({ reports: [line()] }, { from: '127.0.0.2' })).body).toMatchObject({ accepted: 1 });
    await server!.flush();
    expect(fakes.forwarded.find((f) => f.secretId === SECRET)?.lines).toEqual([
      expect.objectContaining({ instanceId: 'apps@127.0.0.2' }),
    ]);
  });

  it('cannot push out a baking secret even with hosts enough to fill the token: its window was open at the last forward', async () => {
    const fakes = await serve({ tokens: [token({ secrets: ['*'] })], window: { next: 'next', previous: 'prev' } });
    await post({ reports: [line()] }, { from: '127.0.0.2' });
    await server!.flush(); // SECRET's window is open: known from now on
    await madeUp(1);
    await madeUp(3);
    expect((await madeUp(4)).body).toMatchObject({ accepted: 0 }); // the token's share is full
    expect((await post({ reports: [line()] }, { from: '127.0.0.2' })).body).toMatchObject({ accepted: 1 });
    await server!.flush();
    expect(fakes.forwarded.filter((f) => f.secretId === SECRET)).toHaveLength(2);
  });

  it("cannot starve the token's other hosts of requests: each host has a quarter of the token's rate", async () => {
    await serve({ tokens: [token({ requestsPerSecond: 20 })], window: { next: 'next', previous: 'prev' } });
    const answers = await Promise.all(Array.from({ length: 40 }, () => post({ reports: [line()] })));
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(25); // a burst of 10 (twice 5 a second), then the bucket is dry
    expect(refused[0]!.body.error).toContain("more than its share of token apps's 20 requests a second");
    for (const host of ['127.0.0.2', '127.0.0.3'])
      expect((await post({ reports: [line()] }, { from: host })).status).toBe(202);
  });
});

describe('what it refuses', () => {
  it('a body larger than 256 KiB, with 413, forwarding nothing', async () => {
    const fakes = await serve({ window: { next: 'next', previous: 'prev' } });
    const padding = 'x'.repeat(256 * 1024);
    const refused = await post({ reports: [line()], padding });
    expect(refused.status).toBe(413);
    expect(refused.body.error).toContain('larger than 262144 bytes');
    expect((await post({ reports: [line()] })).status).toBe(202);
    await server!.flush();
    expect(fakes.forwarded.flatMap((f) => f.lines).reduce((n, l) => n + l.count, 0)).toBeLessThanOrEqual(1);
  });

  it('more secrets than 100 in one request', async () => {
    await serve();
    const reports = Array.from({ length: 101 }, (_, i) => line({ secretId: `prod/db/payments/s-${i}` }));
    const refused = await post({ reports });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toContain('101 secrets');
  });

  it('a token past its rate, with 429 and Retry-After, and other tokens still answered', async () => {
    const other = 'other-token-0123456789abcdef';
    await serve({
      tokens: [
        token({ requestsPerSecond: 5 }),
        token({ name: 'other', digest: createHash('sha256').update(other).digest() }),
      ],
    });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await post({ reports: [line()] })).status);
    expect(statuses.filter((s) => s === 202).length).toBeLessThanOrEqual(12);
    const limited = await post({ reports: [line()] });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    expect((await post({ reports: [line()] }, { bearer: other })).status).toBe(202);
  });

  it('secrets outside whole path segments of the scope', async () => {
    await serve();
    expect((await post({ reports: [line({ secretId: 'prod/db/payments/ledger' })] })).status).toBe(202);
    const sibling = await post({ reports: [line({ secretId: 'prod/db/payments-ledger-admin' })] });
    expect(sibling.status).toBe(403);
    expect(sibling.body.error).toContain('prod/db/payments-ledger-admin');
    expect((await post({ reports: [line({ secretId: 'prod/db/payments' })] })).status).toBe(403);
  });
});

describe('inScope', () => {
  it('matches ids, whole-segment prefixes and *', () => {
    expect(inScope('a/b/c', ['a/b/*'])).toBe(true);
    expect(inScope('a/bc', ['a/b/*'])).toBe(false);
    expect(inScope('a/b', ['a/b'])).toBe(true);
    expect(inScope('a/b2', ['a/b'])).toBe(false);
    expect(inScope('anything', ['*'])).toBe(true);
  });
});

describe('TLS', () => {
  it('serves HTTPS with the configured certificate and key; a client trusting it reports', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rotor-reports-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const cert = readFileSync(join(dir, 'cert.pem'));
    const fakes = await serve({
      tls: { cert, key: readFileSync(join(dir, 'key.pem')) },
      window: { next: 'next', previous: 'prev' },
    });
    expect(server!.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await post({ reports: [line()] }, { ca: cert })).status).toBe(202);
    await expect(post({ reports: [line()] })).rejects.toThrow(/self-signed|certificate/);
    await server!.flush();
    expect(fakes.forwarded).toHaveLength(1);
  });
});

describe('the lease routes', () => {
  /** A lease service that hands out made-up credentials and remembers who asked for what. */
  function fakeLeases() {
    const open = new Map<string, string>();
    const calls: string[] = [];
    const credential = (leaseId: string, secretId: string): LeaseCredential => ({
      leaseId,
      secretId,
      generation: 0,
      engine: 'postgres',
      host: '127.0.0.1',
      port: 5432,
      username: 'v_app_0000000000_0',
      password: 'derived',
      expiresAtMs: 0,
      renewEveryMs: 50,
    });
    const service: LeaseService = {
      async open(secretId, owner) {
        const leaseId = crypto.randomUUID();
        open.set(leaseId, owner);
        calls.push(`open ${secretId} ${owner}`);
        return credential(leaseId, secretId);
      },
      async renew(leaseId, owner) {
        calls.push(`renew ${owner}`);
        return open.get(leaseId) === owner ? credential(leaseId, 'prod/db/payments/x') : undefined;
      },
      async release(leaseId, owner) {
        calls.push(`release ${owner}`);
        if (open.get(leaseId) === owner) open.delete(leaseId);
      },
      async close() {},
    };
    return { service, calls };
  }
  const call = (method: string, path: string, body?: object) =>
    fetch(new URL(path, server!.url), {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it("opens, renews and releases leases in the token's scopes, at most maxLeases at once", async () => {
    const { service, calls } = fakeLeases();
    await serve({ tokens: [token({ maxLeases: 2 })], leases: service });
    const first = await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' });
    expect(first.status).toBe(201);
    const { leaseId } = (await first.json()) as { leaseId: string };
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' })).status).toBe(201);
    const third = await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: string }).error).toContain('2 live leases');
    expect((await call('POST', `/v1/leases/${leaseId}/renew`)).status).toBe(200);
    expect((await call('DELETE', `/v1/leases/${leaseId}`)).status).toBe(204);
    expect((await call('POST', `/v1/leases/${leaseId}/renew`)).status).toBe(410);
    // A released lease frees its place.
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' })).status).toBe(201);
    expect(calls.filter((c) => c.startsWith('open'))).toEqual(Array(3).fill('open prod/db/payments/orders apps'));
  });

  it('forgets a lease whose holder stopped renewing (it ended): a restart loop does not use up the token', async () => {
    const { service } = fakeLeases();
    await serve({ tokens: [token({ maxLeases: 1 })], leases: service });
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' })).status).toBe(201);
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' })).status).toBe(429);
    // Four renewal periods (50 ms here) and a second without a renewal.
    await new Promise((r) => setTimeout(r, 1300));
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/orders' })).status).toBe(201);
  });

  it('refuses a secret outside its scopes, a malformed body or lease id, and serves none without a service', async () => {
    const { service, calls } = fakeLeases();
    await serve({ leases: service });
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/ledger' })).status).toBe(403);
    expect((await call('POST', '/v1/leases', { secret: 'prod/db/payments/x' })).status).toBe(400);
    expect((await call('POST', '/v1/leases/../../etc/renew')).status).toBe(404);
    expect((await call('GET', '/v1/leases')).status).toBe(405);
    expect(calls).toEqual([]);
    await server!.close();
    server = undefined;
    await serve();
    expect((await call('POST', '/v1/leases', { secretId: 'prod/db/payments/x' })).status).toBe(404);
  });
});
