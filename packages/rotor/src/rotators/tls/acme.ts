import { get as httpsGet } from 'node:https';
import { isIP } from 'node:net';
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { parseTlsAcmeAccount, type AcmeIssuer } from './shapes';
import { InvalidInputError, TargetRejectedError, UnavailableError } from 'rotor-consumers/core';
import type { TlsKeyType, TlsMaterial } from 'rotor-consumers/credentials';
import type { RotatorContext } from '../rotator';
import { generateKeyPair } from './issue';

/*
 * Certificates from an ACME CA (RFC 8555) with acme-client (its JWS, nonces and polling), rotor adding what a durable
 * rotation needs: the order noted in Temporal as soon as it exists, so an attempt cut short (a SIGKILLed worker) is
 * resumed, not doubled; challenges answered through a hook of rotor.yaml; the renewal told to the CA (ARI `replaces`).
 * The directory's TLS is trusted as Node trusts anything: system roots plus NODE_EXTRA_CA_CERTS.
 */

type Acme = typeof import('acme-client');
type Client = InstanceType<Acme['Client']>;
type Order = Awaited<ReturnType<Client['createOrder']>>;

/** The most an order may take, from the first request to the certificate (hooks and the CA's validation included). */
export const ACME_ORDER_TIMEOUT_MS = 10 * 60_000;

/** What create notes in Temporal: the order it placed (a URL, no secret). */
interface AcmeNote {
  order?: string;
  /** Serials of certificates issued to an attempt that was cut short, revoked by the next one. */
  revoked?: string[];
}

const loadAcme = (): Promise<Acme> => import('acme-client');

async function clientFor(issuer: AcmeIssuer, context: RotatorContext): Promise<{ acme: Acme; client: Client }> {
  const account = parseTlsAcmeAccount(issuer.account, await context.readCurrent(issuer.account));
  const acme = await loadAcme();
  const client = new acme.Client({
    directoryUrl: issuer.directory,
    accountKey: account.privateKey,
    backoffAttempts: 30,
    backoffMin: 250,
    backoffMax: 5000,
  });
  // Finds the account of this key (RFC 8555 7.3.1: onlyReturnExisting, then a POST-as-GET of it), or makes it. Asking
  // to create an existing account makes acme-client send its fields as an update, which a CA may refuse as empty.
  try {
    await client.createAccount({ onlyReturnExisting: true });
  } catch {
    await client.createAccount({
      termsOfServiceAgreed: true,
      ...(account.email ? { contact: [`mailto:${account.email}`] } : {}),
    });
  }
  return { acme, client };
}

/** An ACME problem or a failed request, as a rotor error: the CA's refusals are final, the rest may pass. */
function acmeError(secretId: string, what: string, error: unknown): Error {
  if (error instanceof InvalidInputError || error instanceof UnavailableError || error instanceof TargetRejectedError)
    return error;
  const message = (error as Error).message ?? String(error);
  const detail = `${what}: ${message.slice(0, 500)}`;
  // acme-client throws its network failures as axios errors, and the CA's problems as plain errors carrying only the
  // problem's detail (not its type or status): a CA's answer is final unless it says to come back later.
  const network =
    (error as { isAxiosError?: boolean }).isAxiosError === true ||
    /ECONN|ETIMEDOUT|socket hang up|EAI_AGAIN/.test(message);
  const later = /rate.?limit|too many|try again|temporar|unavailable|internal|timeout|retry/i.test(message);
  return network || later
    ? new UnavailableError(secretId, detail, { cause: error })
    : new TargetRejectedError(secretId, detail);
}

/** How often an order is resumed within one attempt when the CA or the network fails for a moment, and how long apart. */
const ORDER_TRIES = 5;
const ORDER_BACKOFF_MS = [2000, 5000, 15_000, 30_000];

/** `check`: the account reads, the hook is declared, the directory answers. Changes nothing at the CA. */
export async function checkAcme(secretId: string, issuer: AcmeIssuer, context: RotatorContext): Promise<string> {
  if (context.hasHook && !context.hasHook(issuer.hook))
    throw new InvalidInputError(
      `secret ${secretId}: issuer.hook ${JSON.stringify(issuer.hook)} is not a hook of this worker's rotor.yaml`,
    );
  parseTlsAcmeAccount(issuer.account, await context.readCurrent(issuer.account));
  // One plain GET (acme-client would retry for longer than a step may take): the CA is there and speaks ACME.
  const answer = await getJson(issuer.directory).catch((error: unknown) => {
    throw new UnavailableError(
      secretId,
      `the ACME directory ${issuer.directory} did not answer (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  });
  if (answer.status >= 500)
    throw new UnavailableError(secretId, `the ACME directory ${issuer.directory} answered ${answer.status}`);
  if (answer.status !== 200 || typeof (answer.body as { newOrder?: unknown } | undefined)?.newOrder !== 'string')
    throw new InvalidInputError(
      `secret ${secretId}: ${issuer.directory} is not an ACME directory (it answered ${answer.status}, without newOrder)`,
    );
  return 'acme-directory-ready';
}

/**
 * The ARI certificate id of a certificate (RFC 9773 section 4.1): its authority key identifier and its serial's DER
 * bytes, each base64url, joined by a dot. Undefined without an authority key identifier.
 */
export function ariCertId(certificatePem: string): string | undefined {
  const leaf = new x509.X509Certificate(certificatePem);
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return undefined;
  let serial = Buffer.from(leaf.serialNumber, 'hex');
  if (serial[0]! & 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

/** ACME servers refuse requests without a User-Agent (RFC 8555 section 6.1). */
const USER_AGENT = { 'user-agent': 'rotor-acme (+https://github.com/rotor-secrets/rotor)' };

/** GETs a JSON document over HTTPS (10 s), trusting Node's roots plus NODE_EXTRA_CA_CERTS, or `ca` when given. */
function getJson(url: string, ca?: string): Promise<{ status: number; retryAfter?: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const request = httpsGet(url, { timeout: 10_000, headers: USER_AGENT, ...(ca ? { ca } : {}) }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.length > 65_536) request.destroy(new Error(`${url} answered more than 64 KiB`));
      });
      response.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'], body });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`${url} did not answer in 10s`)));
    request.on('error', reject);
  });
}

/** The CA's suggested renewal window for a certificate (ARI), or undefined when it offers none. */
export async function renewalInfo(
  directory: string,
  certificatePem: string,
  options: { ca?: string } = {},
): Promise<{ start: Date; end: Date; retryAfterMs?: number } | undefined> {
  const certId = ariCertId(certificatePem);
  if (!certId) return undefined;
  const dir = (await getJson(directory, options.ca)).body as { renewalInfo?: unknown } | undefined;
  if (typeof dir?.renewalInfo !== 'string') return undefined;
  const answer = await getJson(`${dir.renewalInfo.replace(/\/$/, '')}/${certId}`, options.ca);
  if (answer.status !== 200) return undefined;
  const window = (answer.body as { suggestedWindow?: { start?: string; end?: string } } | undefined)?.suggestedWindow;
  const start = new Date(window?.start ?? NaN);
  const end = new Date(window?.end ?? NaN);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end < start) return undefined;
  const retryAfter = Number(answer.retryAfter);
  return { start, end, ...(retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}) };
}

/**
 * A certificate for `names` with a new key, ordered from the issuer's CA. The order is noted in Temporal the moment
 * it exists; an attempt that finds an earlier attempt's order resumes it when it is still pending or ready (its
 * challenges, answered or not, carry over, and the new key is what it finalizes with), and revokes the certificate
 * when the earlier attempt got as far as issuance (its key died with that attempt: nobody can use it), then orders
 * anew. A renewal tells the CA which certificate it replaces (ARI), when the CA supports it.
 */
export async function issueByAcme(
  secretId: string,
  options: { issuer: AcmeIssuer; names: readonly string[]; keyType: TlsKeyType; replaces?: string },
  context: RotatorContext,
): Promise<TlsMaterial> {
  const { issuer } = options;
  const { acme, client } = await clientFor(issuer, context).catch((error: unknown) => {
    throw acmeError(secretId, `the ACME account at ${issuer.directory}`, error);
  });
  const noted: AcmeNote = { ...((context.recall?.() as AcmeNote | undefined) ?? {}) };
  // A moment of trouble (the CA, the network) resumes the same order here, within the attempt: a new attempt starts
  // from the order noted in Temporal, but a ride-through round would not see that note.
  for (let tries = 1; ; tries++) {
    try {
      return await placeOrResume(secretId, options, context, { acme, client, noted });
    } catch (error) {
      const failure = acmeError(secretId, `the ACME order at ${issuer.directory}`, error);
      if (!(failure instanceof UnavailableError) || tries >= ORDER_TRIES) throw failure;
      await new Promise((r) => setTimeout(r, ORDER_BACKOFF_MS[tries - 1]));
    }
  }
}

async function placeOrResume(
  secretId: string,
  options: { issuer: AcmeIssuer; names: readonly string[]; keyType: TlsKeyType; replaces?: string },
  context: RotatorContext,
  { acme, client, noted }: { acme: Acme; client: Client; noted: AcmeNote },
): Promise<TlsMaterial> {
  const { issuer, names } = options;
  let order: Order | undefined;
  const revoked: string[] = [];
  if (noted.order) {
    // An error reading it is an error (retried above), never a reason to place a second order.
    const earlier = await client.getOrder({ url: noted.order } as Order);
    if (earlier.status === 'pending' || earlier.status === 'ready') order = earlier;
    else if (earlier.status === 'valid' || earlier.status === 'processing') {
      const issued = await client.getCertificate(await client.waitForValidStatus(earlier));
      // superseded (RFC 5280 reason 4): the key of this certificate died with the attempt that ordered it.
      const serial = new x509.X509Certificate(issued).serialNumber;
      await client.revokeCertificate(issued, { reason: 4 }).then(
        () => revoked.push(serial),
        () => undefined,
      );
    }
  }
  if (!order) {
    const request = {
      identifiers: names.map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value })),
      ...(issuer.profile ? { profile: issuer.profile } : {}),
    };
    // A CA that does not take `replaces` (no ARI, or the certificate was replaced already) is asked without it.
    order = options.replaces
      ? await client
          .createOrder({ ...request, replaces: options.replaces } as Parameters<Client['createOrder']>[0])
          .catch(() => client.createOrder(request))
      : await client.createOrder(request);
    // One note with all of it: Temporal keeps an attempt's first heartbeat at once and throttles the next ones.
    noted.order = order.url;
    noted.revoked = [...(noted.revoked ?? []), ...revoked];
    context.note?.({ ...noted });
  }
  if (order.status === 'pending') await answerChallenges(secretId, client, order, issuer, context);
  const { privateKeyPem } = await generateKeyPair(options.keyType);
  const [, csr] = await acme.crypto.createCsr(
    { commonName: names.find((n) => !isIP(n) && !n.startsWith('*.')) ?? names[0]!, altNames: [...names] },
    privateKeyPem,
  );
  const finalized = await client.finalizeOrder(order, csr);
  const certificate = await client.getCertificate(await client.waitForValidStatus(finalized));
  return { certificate, privateKey: privateKeyPem };
}

/** Each pending authorization's challenge of the issuer's type: the hook presents it, the CA validates, the hook cleans up. */
async function answerChallenges(
  secretId: string,
  client: Client,
  order: Order,
  issuer: AcmeIssuer,
  context: RotatorContext,
) {
  if (!context.runHook) throw new InvalidInputError('this worker runs no hooks: ACME challenges need one');
  for (const authz of await client.getAuthorizations(order)) {
    if (authz.status === 'valid') continue;
    const challenge = authz.challenges.find((c) => c.type === issuer.challenge);
    if (!challenge)
      throw new TargetRejectedError(
        secretId,
        `the CA offers no ${issuer.challenge} challenge for ${authz.identifier.value} (${authz.challenges.map((c) => c.type).join(', ')})`,
      );
    const content = await client.getChallengeKeyAuthorization(challenge);
    const vars: Record<string, string> = {
      ROTOR_ACME_CHALLENGE: issuer.challenge,
      ROTOR_ACME_IDENTIFIER: authz.identifier.value,
      ROTOR_ACME_ORDER: order.url,
      ROTOR_ACME_TOKEN: 'token' in challenge ? String(challenge.token) : '',
      // http-01: the body served at /.well-known/acme-challenge/<token>; dns-01: the TXT record's value.
      ROTOR_ACME_CONTENT: content,
      ...(issuer.challenge === 'dns-01' ? { ROTOR_ACME_DNS_NAME: `_acme-challenge.${authz.identifier.value}.` } : {}),
    };
    await context.runHook(issuer.hook, 'present', vars);
    try {
      // A challenge an earlier attempt answered is processing already: asking again is refused.
      if (challenge.status === 'pending') await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge).catch((error: unknown) => {
        throw new TargetRejectedError(
          secretId,
          `the CA refused the ${issuer.challenge} answer for ${authz.identifier.value}: ${(error as Error).message.slice(0, 300)}`,
        );
      });
    } finally {
      await context.runHook(issuer.hook, 'cleanup', vars).catch(() => undefined);
    }
  }
}
