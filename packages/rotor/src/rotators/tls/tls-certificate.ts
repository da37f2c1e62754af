import {
  inspectTlsMaterial,
  parseCertificates,
  parseTrustBundle,
  TLS_CERTIFICATE_ENGINE,
  TlsMaterialError,
  type TlsMaterial,
} from 'rotor-consumers/credentials';
import { InvalidInputError, TestFailedError } from 'rotor-consumers/core';
import type { Rotator, RotatorContext } from '../rotator';
import { probeHandshakes } from './handshake';
import { randomInt } from 'node:crypto';
import { ACME_ORDER_TIMEOUT_MS, ariCertId, checkAcme, issueByAcme, renewalInfo } from './acme';
import { issueLeafCertificate } from './issue';
import {
  parseTlsCaSecret,
  parseTlsCertificateSecret,
  type InternalCaIssuer,
  type TlsCertificateSecret,
} from './shapes';

export { parseTlsCaSecret, parseTlsCertificateSecret, type TlsCertificateSecret } from './shapes';

const materialOf = (s: { certificate?: string; privateKey?: string }): TlsMaterial | undefined =>
  s.certificate !== undefined && s.privateKey !== undefined
    ? { certificate: s.certificate, privateKey: s.privateKey }
    : undefined;

/** The trust anchors a certificate's chain must reach: its trust bundle's, or Node's roots without one. */
async function trustOf(secret: TlsCertificateSecret, context: RotatorContext) {
  return secret.trust === undefined
    ? undefined
    : parseTrustBundle(secret.trust, await context.readCurrent(secret.trust));
}

/** The internal CA a certificate is issued by, checked as a client would: its key, its validity, and in the bundle. */
async function internalCa(
  secretId: string,
  secret: TlsCertificateSecret & { issuer: InternalCaIssuer },
  context: RotatorContext,
) {
  const caId = secret.issuer.ca;
  const ca = parseTlsCaSecret(caId, await context.readCurrent(caId));
  const material = materialOf(ca);
  if (!material)
    throw new InvalidInputError(`secret ${secretId}: its CA ${caId} has no certificate yet (rotate the CA first)`);
  const facts = inspectTlsMaterial(material, { secretId: caId });
  const trust = await trustOf(secret, context);
  const [caCertificate] = parseCertificates(material.certificate, 'certificate', caId);
  if (trust && !trust.certificates.some((c) => c.fingerprint256 === caCertificate!.fingerprint256))
    throw new InvalidInputError(
      `secret ${secretId}: its CA ${caId} (serial ${facts.serial}) is not in its trust bundle ${secret.trust}: clients would refuse what it issues`,
    );
  return { material, keyType: ca.keyType, facts, maxLeafLifetimeMs: ca.maxLeafLifetime };
}

/**
 * TLS certificates (kind `tls-certificate`): a chain and its private key, issued for `names` by the secret's issuer
 * with a new key at every renewal. Servers and clients read AWSCURRENT through rotor-consumers' rotating TLS context,
 * so the store is the target: `set` and `restore` have nothing to change elsewhere, `finish` is the switch, and a
 * rollback serves the previous certificate again.
 * - `check`: the issuer can issue (the CA secret holds a valid certificate and key, in the trust bundle);
 * - `nextValue`: a new key and a certificate for it;
 * - `test`: what a client would check (key, chain to the trust bundle, validity, every name), then a real handshake
 *   per name on a loopback port: a certificate that would not verify never becomes current.
 */
export const tlsCertificateRotator: Rotator<TlsCertificateSecret> = {
  kind: 'tls-certificate',
  engines: [TLS_CERTIFICATE_ENGINE],

  parse: parseTlsCertificateSecret,

  // Rotations of one CA share the per-target limit (an ACME CA's rate limits are per account and names).
  target: (secret) => (secret.issuer.type === 'acme' ? secret.issuer.directory : `tls-ca://${secret.issuer.ca}`),

  remoteCreate: (secret) => (secret.issuer.type === 'acme' ? { timeoutMs: ACME_ORDER_TIMEOUT_MS } : undefined),

  async check(secretId, { current }, context) {
    if (current.issuer.type === 'acme') return checkAcme(secretId, current.issuer, context);
    const ca = await internalCa(secretId, { ...current, issuer: current.issuer }, context);
    return `issuer-ready-ca-serial-${ca.facts.serial.toLowerCase()}`;
  },

  async nextValue(secretId, current, _policy, context) {
    const { issuer } = current;
    if (issuer.type === 'acme') {
      const replaces = current.certificate !== undefined ? ariCertId(current.certificate) : undefined;
      const issued = await issueByAcme(
        secretId,
        { issuer, names: current.names, keyType: current.keyType, ...(replaces ? { replaces } : {}) },
        context!,
      );
      return JSON.stringify({ ...current.json, ...issued });
    }
    const ca = await internalCa(secretId, { ...current, issuer }, context!);
    const issued = await issueLeafCertificate({
      names: current.names,
      keyType: current.keyType,
      // Never longer than the CA says its leaves live: its rotation keeps the old CA trusted that long, no longer.
      lifetimeMs: Math.min(current.lifetime!, ca.maxLeafLifetimeMs),
      ca: { ...ca.material, keyType: ca.keyType },
    });
    return JSON.stringify({ ...current.json, ...issued });
  },

  lifetimeOf(secretId, value) {
    if (value.certificate === undefined) return undefined;
    const [leaf] = parseCertificates(value.certificate, 'certificate', secretId);
    return { notBefore: new Date(leaf!.validFrom), notAfter: new Date(leaf!.validTo) };
  },

  async renewalDue(secretId, current, { renewAt }) {
    const lifetime = this.lifetimeOf!(secretId, current);
    if (current.certificate === undefined || !lifetime) return { dueAt: new Date(), basis: 'none-yet' };
    const { notBefore, notAfter } = lifetime;
    const atLifetime = new Date(notBefore.getTime() + renewAt * (notAfter.getTime() - notBefore.getTime()));
    if (current.issuer.type === 'acme') {
      // RFC 9773 section 4.2: a random time within the CA's window, which may move (a revocation, a CA incident).
      // A CA slow to answer never holds up the decision: past 5 s, the lifetime decides.
      const window = await Promise.race([
        renewalInfo(current.issuer.directory, current.certificate).catch(() => undefined),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5000).unref()),
      ]);
      if (window) {
        const at = window.start.getTime() + randomInt(0, Math.max(1, window.end.getTime() - window.start.getTime()));
        return { dueAt: new Date(at), notBefore, notAfter, basis: 'ari' };
      }
    }
    return { dueAt: atLifetime, notBefore, notAfter, basis: 'lifetime' };
  },

  async set() {
    return 'served-from-store';
  },

  async test(secretId, value, context) {
    const material = materialOf(value);
    // A secret before its first issuance (which compensation may restore) serves nothing.
    if (!material) return;
    const trust = await trustOf(value, context);
    try {
      inspectTlsMaterial(material, { secretId, names: value.names, ...(trust ? { trust: trust.certificates } : {}) });
      await probeHandshakes(material, { secretId, names: value.names, ...(trust ? { trust: trust.pems } : {}) });
    } catch (error) {
      if (!(error instanceof TlsMaterialError)) throw error;
      throw new TestFailedError(secretId, error.message.replace(`secret ${secretId}: `, ''));
    }
  },

  async restore() {
    return 'served-from-store';
  },

  async retire() {
    return 'nothing-to-retire';
  },
};
