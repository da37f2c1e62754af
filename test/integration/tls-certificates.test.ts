import { randomUUID, X509Certificate } from 'node:crypto';
import { createServer as createHttpsServer, get, type Agent, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RotatingTls, SecretCache, type TlsRefusalEvent } from 'rotor-consumers';
import { TestFailedError } from 'rotor-consumers/core';
import { tlsCertificateRotator } from '../../packages/rotor/src/rotators/tls/tls-certificate';
import { issueLeafCertificate } from '../../packages/rotor/src/rotators/tls/issue';
import { expectNoPasswords } from '../helpers/hygiene';
import { useWorkerRig } from '../helpers/rig';
import { labels, store } from '../helpers/stack';
import { createCertificateSecret, createTestCa, materialAt, rememberKeys, type TestCa } from '../helpers/tls';
import { createSecret } from '../helpers/stack';
import { uniqueName } from '../helpers/env';
import { rotationWorkflowId } from '../../packages/rotor/src/shared/constants';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRotationSteps } from '../../packages/rotor/src/activities/rotation-steps';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import type { RenewalDecision } from '../../packages/rotor/src/shared/rotation';

/**
 * TLS certificates on the real stack: an internal CA and its trust bundle in Secrets Manager, certificates rotated
 * by a `rotor worker`, HTTPS servers and clients on rotor-consumers' RotatingTls under load.
 */
const rig = useWorkerRig('it-tls');
/** Every private key the tests see, for the hygiene check. */
const keys = new Set<string>();
const certificates: string[] = [];
let ca: TestCa;
const servers: Server[] = [];
const contexts: RotatingTls[] = [];

beforeAll(async () => {
  ca = await createTestCa('main', keys);
});

afterAll(async () => {
  for (const tls of contexts) tls.close();
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function rotate(secretId: string): Promise<string> {
  await rig.rotor.rotate(secretId, { graceMs: 0 });
  const outcome = await rig.rotor.wait(secretId);
  certificates.push(secretId);
  return outcome.outcome === 'failed' ? `failed: ${outcome.message}` : outcome.outcome;
}

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://localhost:${(server.address() as AddressInfo).port}/`;
}

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;

describe('a tls-certificate secret issued by an internal CA', () => {
  it('is issued by its first rotation, verifies for every name, and a rollback serves the previous one again', async () => {
    const secretId = await createCertificateSecret('first', ca, { names: ['localhost', '127.0.0.1', '*.svc.test'] });
    expect(await rotate(secretId)).toBe('completed');
    const first = await materialAt(secretId, 'AWSCURRENT', keys);
    const leaf = new X509Certificate(first.certificate);
    expect(leaf.checkIssued(new X509Certificate(ca.material.certificate))).toBe(true);
    expect(leaf.checkHost('api.svc.test')).toBe('*.svc.test');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    // The rotation's memo carries the certificate's end and renewal time (2/3 of its life), for `rotor status`.
    const { memo } = await rig.rotor.client.workflow.getHandle(rotationWorkflowId(secretId)).describe();
    const [from, to] = [Date.parse(leaf.validFrom), Date.parse(leaf.validTo)];
    expect(memo?.credential).toEqual({
      notBefore: new Date(from).toISOString(),
      notAfter: new Date(to).toISOString(),
      renewsAt: new Date(from + (2 / 3) * (to - from)).toISOString(),
    });

    await rig.rotor.rotate(secretId, { graceMs: 60_000 });
    await expect.poll(async () => (await rig.rotor.status(secretId))?.phase, { timeout: 30_000 }).toBe('grace');
    const second = await materialAt(secretId, 'AWSCURRENT', keys);
    expect(serialOf(second.certificate)).not.toBe(serialOf(first.certificate));
    // A new key at every renewal.
    expect(second.privateKey).not.toBe(first.privateKey);
    await rig.rotor.rollback(secretId, 'the new certificate breaks a pinned client', 'it');
    expect((await rig.rotor.wait(secretId)).outcome).toBe('rolled-back');
    expect(serialOf((await materialAt(secretId, 'AWSCURRENT', keys)).certificate)).toBe(serialOf(first.certificate));
    certificates.push(secretId);
  });

  it('refuses, at prepare and changing nothing, a CA its trust bundle does not hold', async () => {
    const other = await createTestCa('other', keys);
    // The certificate names `other`'s CA but trusts `ca`'s bundle: what the CA issues, clients would refuse.
    const secretId = await createCertificateSecret('untrusted', { ...other, bundleId: ca.bundleId });
    const outcome = await rotate(secretId);
    expect(outcome).toMatch(/failed at prepare: .*is not in its trust bundle.*clients would refuse what it issues/);
    expect(await labels(secretId)).toMatchObject({ versions: 1 });
  });

  it('tests what a client would: an expired, untrusted or misnamed certificate fails the test step', async () => {
    const secretId = uniqueName('it/tls-cert-probe');
    const base = {
      engine: 'tls-certificate',
      names: ['localhost'],
      lifetime: '1h',
      issuer: { type: 'internal-ca', ca: ca.caId },
      trust: ca.bundleId,
    };
    await createSecret(secretId, base);
    const context = { readCurrent: async (id: string) => (await store.getByStage(id, 'AWSCURRENT'))!.value };
    const caMaterial = { ...ca.material, keyType: 'ec-p256' as const };
    const other = await createTestCa('stranger', keys);
    const cases = {
      expired: await issueLeafCertificate({
        names: ['localhost'],
        keyType: 'ec-p256',
        lifetimeMs: 60_000,
        ca: caMaterial,
        now: new Date(Date.now() - 3_600_000),
      }),
      untrusted: await issueLeafCertificate({
        names: ['localhost'],
        keyType: 'ec-p256',
        lifetimeMs: 60_000,
        ca: { ...other.material, keyType: 'ec-p256' },
      }),
      misnamed: await issueLeafCertificate({
        names: ['elsewhere.test'],
        keyType: 'ec-p256',
        lifetimeMs: 60_000,
        ca: caMaterial,
      }),
    };
    const reasons: Record<string, string> = {};
    for (const [name, material] of Object.entries(cases)) {
      keys.add(material.privateKey);
      const value = tlsCertificateRotator.parse(secretId, JSON.stringify({ ...base, ...material }));
      const error = await tlsCertificateRotator.test(secretId, value, context).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(TestFailedError);
      reasons[name] = (error as Error).message;
    }
    expect(reasons.expired).toMatch(/expired: certificate 1 \(serial [0-9A-F]+\) expired at/);
    expect(reasons.untrusted).toMatch(/untrusted: the chain ends at CN=rotor stranger CA/);
    expect(reasons.misnamed).toMatch(/name-mismatch: certificate [0-9A-F]+ is not valid for localhost/);
    // The control: a good certificate passes.
    const good = await issueLeafCertificate({
      names: ['localhost'],
      keyType: 'ec-p256',
      lifetimeMs: 60_000,
      ca: caMaterial,
    });
    keys.add(good.privateKey);
    await tlsCertificateRotator.test(
      secretId,
      tlsCertificateRotator.parse(secretId, JSON.stringify({ ...base, ...good })),
      context,
    );
  });
});

describe('rotating the internal CA', () => {
  it('refuses a wait shorter than the consumers refresh, and a grace shorter than the longest leaf, naming both numbers', async () => {
    const own = await createTestCa('refused', keys);
    const value = JSON.parse((await store.getByStage(own.caId, 'AWSCURRENT'))!.value) as Record<string, unknown>;
    const shortWait = uniqueName('it/tls-ca-short-wait');
    await createSecret(shortWait, { ...value, prePublication: '1s' });
    expect(await rotate(shortWait)).toMatch(
      /failed at prepare: .*prePublication: 1\.0s is shorter than consumers.refresh 2\.0s: a consumer that read the bundle just before the new CA joined it would refuse what the new CA issues/,
    );
    await rig.rotor.rotate(own.caId, { graceMs: 30_000 });
    const outcome = await rig.rotor.wait(own.caId);
    expect(outcome.outcome === 'failed' && outcome.message).toMatch(
      /failed at prepare: .*grace 30s is shorter than maxLeafLifetime 1h: the old CA would leave the trust bundle while certificates it issued are still valid/,
    );
    expect(await labels(own.caId)).toMatchObject({ versions: 1 });
  });

  it('puts the new CA in the bundle before it issues; a rollback in grace issues from the old CA again, and the bundle trusts both', async () => {
    const own = await createTestCa('rollback', keys, { maxLeafLifetime: '60s' });
    const leafId = await createCertificateSecret('under-rollback', own);
    await rig.rotor.rotate(own.caId, { graceMs: 120_000 });
    await expect.poll(async () => (await rig.rotor.status(own.caId))?.phase, { timeout: 30_000 }).toBe('grace');
    const bundleOf = async () =>
      (JSON.parse((await store.getByStage(own.bundleId, 'AWSCURRENT'))!.value) as { certificates: string[] })
        .certificates;
    const [oldCa, newCa] = [
      new X509Certificate(own.material.certificate),
      new X509Certificate((await materialAt(own.caId, 'AWSCURRENT', keys)).certificate),
    ];
    expect((await bundleOf()).map((p) => new X509Certificate(p).fingerprint256)).toEqual([
      oldCa.fingerprint256,
      newCa.fingerprint256,
    ]);
    // In grace, leaves come from the new CA.
    expect(await rotate(leafId)).toBe('completed');
    expect(new X509Certificate((await materialAt(leafId, 'AWSCURRENT', keys)).certificate).checkIssued(newCa)).toBe(
      true,
    );

    await rig.rotor.rollback(own.caId, 'a client pins the old CA', 'it');
    expect((await rig.rotor.wait(own.caId)).outcome).toBe('rolled-back');
    expect(await rotate(leafId)).toBe('completed');
    expect(new X509Certificate((await materialAt(leafId, 'AWSCURRENT', keys)).certificate).checkIssued(oldCa)).toBe(
      true,
    );
    // Both CAs stay trusted: the leaf the new CA issued in grace is still valid.
    expect((await bundleOf()).length).toBe(2);
    certificates.push(own.caId, leafId);
  });
});

describe('renewAt schedules: when a certificate renews', () => {
  it('at 2/3 of its life (jitter only earlier), and an alert when it is overdue within the margin of its end', async () => {
    const secretId = await createCertificateSecret('due', ca, { lifetime: '60s' });
    expect(await rotate(secretId)).toBe('completed');
    const leaf = new X509Certificate((await materialAt(secretId, 'AWSCURRENT', keys)).certificate);
    const [notBefore, notAfter] = [Date.parse(leaf.validFrom), Date.parse(leaf.validTo)];
    const steps = createRotationSteps({ store, rotators });
    const activity = new MockActivityEnvironment();
    const renewal = { renewAt: 2 / 3, checkEveryMs: 10_000, jitterMs: 5000 };
    const due: RenewalDecision = await activity.run(steps.renewalDue, { secretId, renewal });
    const twoThirds = notBefore + (2 / 3) * (notAfter - notBefore);
    expect(Date.parse(due.dueAt)).toBeLessThanOrEqual(twoThirds);
    expect(Date.parse(due.dueAt)).toBeGreaterThanOrEqual(twoThirds - 5000);
    expect(due).toMatchObject({ basis: 'lifetime', notAfter: new Date(notAfter).toISOString() });
    expect(due.expiring).toBeUndefined();

    // Overdue (renewAt 10%: a few seconds after notBefore) and within the margin of its end: the workflow alerts.
    await sleep(Math.max(0, notBefore + 0.1 * (notAfter - notBefore) + 200 - Date.now()));
    const late: RenewalDecision = await activity.run(steps.renewalDue, {
      secretId,
      renewal: { renewAt: 0.1, checkEveryMs: 10_000, alertBeforeMs: 3_600_000 },
    });
    expect(late.waitMs).toBe(0);
    expect(late.expiring).toMatch(/expires in \d+s \(.*Z\) and has not been renewed/);

    // A credential without a lifetime of its own has no renewAt schedule.
    const apiKey = uniqueName('it/tls-not-a-cert');
    await createSecret(apiKey, { engine: 'postgres', host: '127.0.0.1', username: 'x', password: 'y' });
    await expect(activity.run(steps.renewalDue, { secretId: apiKey, renewal })).rejects.toThrow(
      /renewAt schedules apply to credentials with a lifetime of their own \(certificates\); postgres-single-user has none/,
    );
  });
});

interface Tally {
  ok: number;
  failed: number;
  errors: Map<string, number>;
  /** Serials seen: the server's (plain TLS), or the client's as the mTLS server saw it. */
  serials: Set<string>;
}

const tally = (): Tally => ({ ok: 0, failed: 0, errors: new Map(), serials: new Set() });

/** Requests `url` in a loop until `stop`, each through the agent `agentOf` gives at that moment. */
async function drive(url: string, agentOf: () => Agent, into: Tally, stop: { done: boolean }): Promise<void> {
  while (!stop.done) {
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const request = get(url, { agent: agentOf(), timeout: 5000 }, (response) => {
          const peer = (response.socket as TLSSocket).getPeerCertificate();
          if (peer?.serialNumber) into.serials.add(peer.serialNumber);
          let text = '';
          response.on('data', (chunk: Buffer) => (text += chunk.toString()));
          response.on('end', () =>
            response.statusCode === 200 ? resolve(text) : reject(new Error(`HTTP ${response.statusCode}`)),
          );
        });
        request.on('timeout', () => request.destroy(new Error('timeout')));
        request.on('error', reject);
      });
      if (body) into.serials.add(body);
      into.ok++;
    } catch (error) {
      into.failed++;
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      into.errors.set(code, (into.errors.get(code) ?? 0) + 1);
    }
    await sleep(15);
  }
}

describe('serving and trusting under HTTPS load', () => {
  it('5 renewals of a 60 s certificate and a CA rotation: 0 failed handshakes on rotating servers and clients (TLS and mTLS); the servers and clients that loaded theirs at start fail', async () => {
    // A CA of its own, rotated in the middle of the renewals; its rotation checks these two before the old CA goes.
    const [serverId, clientId] = [uniqueName('it/tls-cert-server'), uniqueName('it/tls-cert-client')];
    const rotatedCa = await createTestCa('rotated', keys, {
      leaves: [serverId, clientId],
      maxLeafLifetime: '60s',
    });
    certificates.push(rotatedCa.caId);
    await createCertificateSecret('server', rotatedCa, { lifetime: '60s', secretId: serverId });
    await createCertificateSecret('client', rotatedCa, {
      names: ['orders-client.test'],
      lifetime: '60s',
      secretId: clientId,
    });
    expect(await Promise.all([rotate(serverId), rotate(clientId)])).toEqual(['completed', 'completed']);
    const issuedAt = Date.now();

    const cache = new SecretCache({ store, refreshIntervalMs: 1000 });
    const refusals: TlsRefusalEvent[] = [];
    const follow = async (options: { certificate?: string; trustBundle?: string }) => {
      const tls = await RotatingTls.start({
        cache,
        ...options,
        checkIntervalMs: 250,
        onRefused: (e) => refusals.push(e),
      });
      contexts.push(tls);
      return tls;
    };
    // Servers: rotating, the control (its certificate loaded at start), and a rotating one asking for client certificates.
    const serving = await follow({ certificate: serverId });
    const rotatingUrl = await listen(
      serving.serve(createHttpsServer(serving.secureContextOptions(), (_, res) => res.end())),
    );
    const atStart = await materialAt(serverId, 'AWSCURRENT', keys);
    const controlUrl = await listen(
      createHttpsServer({ key: atStart.privateKey, cert: atStart.certificate }, (_, res) => res.end()),
    );
    const mutual = await follow({ certificate: serverId, trustBundle: rotatedCa.bundleId });
    const mtlsUrl = await listen(
      mutual.serve(
        createHttpsServer(
          { ...mutual.secureContextOptions(), requestCert: true, rejectUnauthorized: true },
          (req, res) => res.end((req.socket as TLSSocket).getPeerCertificate().serialNumber),
        ),
      ),
    );
    // Clients: trusting the bundle; presenting a rotating client certificate; presenting the one loaded at start.
    const trusting = await follow({ trustBundle: rotatedCa.bundleId });
    const presenting = await follow({ certificate: clientId, trustBundle: rotatedCa.bundleId });
    const clientAtStart = await materialAt(clientId, 'AWSCURRENT', keys);
    const { Agent: HttpsAgent } = await import('node:https');
    const staleClient = new HttpsAgent({
      key: clientAtStart.privateKey,
      cert: clientAtStart.certificate,
      ca: [rotatedCa.material.certificate],
      maxCachedSessions: 0,
    });
    // The CA rotation's control: a client that read the trust bundle at start (the old CA only).
    const staleTrust = new HttpsAgent({ ca: [rotatedCa.material.certificate], maxCachedSessions: 0 });
    // New connections every time (no session resumption, which would skip the certificate checks), and keep-alive.
    const fresh = { maxCachedSessions: 0 };
    const kept = { keepAlive: true };

    const stop = { done: false };
    const runs = {
      rotatingFresh: tally(),
      rotatingKept: tally(),
      control: tally(),
      mtlsFresh: tally(),
      mtlsKept: tally(),
      mtlsControl: tally(),
      trustControl: tally(),
    };
    const load = Promise.all([
      drive(rotatingUrl, () => trusting.agent(fresh), runs.rotatingFresh, stop),
      drive(rotatingUrl, () => trusting.agent(kept), runs.rotatingKept, stop),
      drive(controlUrl, () => trusting.agent(fresh), runs.control, stop),
      drive(mtlsUrl, () => presenting.agent(fresh), runs.mtlsFresh, stop),
      drive(mtlsUrl, () => presenting.agent(kept), runs.mtlsKept, stop),
      drive(mtlsUrl, () => staleClient, runs.mtlsControl, stop),
      drive(rotatingUrl, () => staleTrust, runs.trustControl, stop),
    ]);

    const outcomes: string[] = [];
    let caRotation: Promise<string> | undefined;
    for (let i = 1; i <= 5; i++) {
      await sleep(Math.max(0, issuedAt + i * 10_000 - Date.now()));
      outcomes.push(...(await Promise.all([rotate(serverId), rotate(clientId)])));
      // After the first renewal, the CA rotates (grace: the longest leaf's life); the renewals after its finish
      // are issued by the new CA, and its retirement takes the old CA out of the bundle while the load goes on.
      if (i === 1)
        caRotation = rig.rotor
          .rotate(rotatedCa.caId, { graceMs: 60_000 })
          .then(() => rig.rotor.wait(rotatedCa.caId))
          .then((o) => (o.outcome === 'failed' ? `failed: ${o.message}` : o.outcome));
    }
    // Past the first certificates' end, with a margin for the last handshakes to meet it, and the CA's retirement.
    const firstNotAfter = new Date(new X509Certificate(atStart.certificate).validTo).getTime();
    await sleep(Math.max(0, firstNotAfter + 4000 - Date.now()));
    const caOutcome = await caRotation;
    await sleep(3000);
    stop.done = true;
    await load;

    expect(outcomes).toEqual(Array(10).fill('completed'));
    expect(caOutcome).toBe('completed');
    // The bundle holds the new CA only, and the last leaves were issued by it.
    const newCa = new X509Certificate((await materialAt(rotatedCa.caId, 'AWSCURRENT', keys)).certificate);
    const bundle = JSON.parse((await store.getByStage(rotatedCa.bundleId, 'AWSCURRENT'))!.value) as {
      certificates: string[];
    };
    expect(bundle.certificates.map((p) => new X509Certificate(p).fingerprint256)).toEqual([newCa.fingerprint256]);
    expect(new X509Certificate((await materialAt(serverId, 'AWSCURRENT', keys)).certificate).checkIssued(newCa)).toBe(
      true,
    );
    const summary = Object.fromEntries(
      Object.entries(runs).map(([k, t]) => [k, { ok: t.ok, failed: t.failed, errors: Object.fromEntries(t.errors) }]),
    );
    for (const run of ['rotatingFresh', 'rotatingKept', 'mtlsFresh', 'mtlsKept'] as const) {
      expect(runs[run].failed, `${run}: ${JSON.stringify(summary)}`).toBe(0);
      expect(runs[run].ok).toBeGreaterThan(50);
    }
    // The rotating server served all six certificates; the mTLS server saw all six client certificates.
    expect(runs.rotatingFresh.serials.size).toBe(6);
    expect(runs.mtlsFresh.serials.size).toBeGreaterThanOrEqual(6);
    expect(serving.stats()).toMatchObject({ swaps: 6, refusals: 0 });
    // The controls: handshakes fail once the certificate they loaded at start has expired.
    expect(runs.control.failed, JSON.stringify(summary)).toBeGreaterThan(0);
    expect([...runs.control.errors.keys()]).toContain('CERT_HAS_EXPIRED');
    expect(runs.mtlsControl.failed, JSON.stringify(summary)).toBeGreaterThan(0);
    // The CA rotation's control: trusting only the old CA, it fails once the server serves a leaf of the new one.
    expect(runs.trustControl.failed, JSON.stringify(summary)).toBeGreaterThan(0);
    expect([...runs.trustControl.errors.keys()]).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(refusals).toEqual([]);
    await rememberKeys(serverId, keys);
    await rememberKeys(clientId, keys);
  }, 240_000);

  it('keeps serving the certificate in use when a new version would not verify, and says why', async () => {
    const secretId = await createCertificateSecret('refused', ca);
    expect(await rotate(secretId)).toBe('completed');
    const cache = new SecretCache({ store, refreshIntervalMs: 100 });
    const refusals: TlsRefusalEvent[] = [];
    const tls = await RotatingTls.start({
      cache,
      certificate: secretId,
      checkIntervalMs: 60_000,
      onRefused: (e) => refusals.push(e),
    });
    contexts.push(tls);
    const inUse = tls.stats().serial;
    // A version written behind rotor's back, by a CA the bundle does not hold.
    const stranger = await createTestCa('behind-the-back', keys);
    const bad = await issueLeafCertificate({
      names: ['localhost', '127.0.0.1'],
      keyType: 'ec-p256',
      lifetimeMs: 3_600_000,
      ca: { ...stranger.material, keyType: 'ec-p256' },
    });
    keys.add(bad.privateKey);
    const current = JSON.parse((await store.getByStage(secretId, 'AWSCURRENT'))!.value) as object;
    const token = randomUUID();
    await store.putPending(secretId, token, JSON.stringify({ ...current, ...bad }));
    await store.moveStage(secretId, 'AWSCURRENT', token);
    await sleep(150);
    expect(await tls.refresh()).toBe(false);
    expect(tls.stats()).toMatchObject({ serial: inUse, refusals: 1 });
    expect(refusals).toMatchObject([{ secretId, reason: 'untrusted' }]);
    expect(refusals[0]!.message).toMatch(/the chain ends at CN=rotor behind-the-back CA/);
    for (const key of keys) expect(JSON.stringify(refusals).includes(key)).toBe(false);
  });

  it('leaves no private key in histories or worker logs', async () => {
    for (const id of certificates) await rememberKeys(id, keys);
    await rememberKeys(ca.caId, keys);
    expect(keys.size).toBeGreaterThan(10);
    await expectNoPasswords(rig.rotor.client, rig.taskQueue, keys, certificates[0]!);
  });
});
