import { X509Certificate } from 'node:crypto';
import {
  caPrePublicationMs,
  inspectTlsMaterial,
  parseCertificates,
  parseTrustBundle,
  TLS_CA_ENGINE,
  TlsMaterialError,
  tlsSchemas,
  TRUST_BUNDLE_ENGINE,
  type TlsCaShape,
} from 'rotor-consumers/credentials';
import { formatDuration, InvalidInputError, TestFailedError, UnavailableError } from 'rotor-consumers/core';
import type { Rotator, RotatorContext } from '../rotator';
import { parseJsonObject, validateShape } from '../secret-json';
import { issueCaCertificate } from './issue';
import { parseTlsCertificateSecret } from './shapes';

/** An internal CA secret: its certificate and key, its trust bundle, and the JSON it came from. */
export interface TlsCaSecret extends TlsCaShape {
  json: Record<string, unknown>;
}

export function parseTlsCaRotation(secretId: string, raw: string): TlsCaSecret {
  const json = parseJsonObject(secretId, raw);
  return { ...validateShape(secretId, tlsSchemas().ca, json), json };
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

/** The trust bundle as it is now: its value, and its certificates' PEMs. */
async function bundleOf(ca: TlsCaSecret, context: RotatorContext) {
  const raw = await context.readCurrent(ca.bundle);
  const json = parseJsonObject(ca.bundle, raw);
  return { json, pems: parseTrustBundle(ca.bundle, raw).pems };
}

/** Writes the bundle with `pems` (the other fields kept), as AWSCURRENT. Returns whether it changed. */
async function writeBundle(
  ca: TlsCaSecret,
  bundle: { json: Record<string, unknown> },
  pems: string[],
  context: RotatorContext,
): Promise<boolean> {
  if (!context.writeCurrent) throw new InvalidInputError('this worker cannot write a trust bundle');
  return context.writeCurrent(
    ca.bundle,
    JSON.stringify({ ...bundle.json, engine: TRUST_BUNDLE_ENGINE, certificates: pems }),
  );
}

/**
 * An internal CA (kind and engine `tls-ca`), rotated with a trust overlap: the new CA joins the trust bundle every
 * consumer reads before it issues anything, and the old one leaves it only when nothing it issued can still be in use.
 * - `check`: the bundle reads; grace is at least `maxLeafLifetime` (the longest life of a certificate the CA issues:
 *   the old CA must stay trusted until the last leaf it signed has expired), or it is refused naming both numbers;
 * - `nextValue`: a new self-signed CA with a new key;
 * - `set`: the new CA joins the bundle (the old one stays);
 * - `test`: the new CA's key and certificate hold together, and the bundle holds it;
 * - `holdBeforeFinish`: until the bundle with the new CA has been current for `prePublication` (twice the consumers'
 *   refresh by default): every consumer trusts the new CA before any leaf is issued by it;
 * - `finish`: leaves issued from now on come from the new CA (their next renewal);
 * - `retire`, after grace: every leaf the CA lists (`leaves`) is now from the new CA, else the retirement fails
 *   and the old CA stays; then the old CA, and any expired CA, leave the bundle.
 * Rollback at any phase keeps a bundle every client trusts: `restore` makes sure the CA restored is in it and
 * removes nothing (a leaf the given-up CA issued during grace stays trusted until it expires).
 */
export const tlsCaRotator: Rotator<TlsCaSecret> = {
  kind: 'tls-ca',
  engines: [TLS_CA_ENGINE],

  parse: parseTlsCaRotation,

  target: (ca) => `tls-bundle://${ca.bundle}`,

  async check(secretId, { current }, context, rotation) {
    // A CA's first rotation makes it: there is no old CA to keep trusted.
    if (rotation && current.certificate !== undefined && rotation.graceMs < current.maxLeafLifetime)
      throw new InvalidInputError(
        `secret ${secretId}: grace ${formatDuration(rotation.graceMs)} is shorter than maxLeafLifetime ${formatDuration(current.maxLeafLifetime)}: the old CA would leave the trust bundle while certificates it issued are still valid, and clients would refuse them`,
      );
    const bundle = await bundleOf(current, context);
    if (current.certificate !== undefined) {
      const inBundle = bundle.pems.some((p) => fingerprintOf(p) === fingerprintOf(current.certificate!));
      if (!inBundle)
        throw new InvalidInputError(
          `secret ${secretId}: the current CA is not in its trust bundle ${current.bundle}: clients do not trust what it issued`,
        );
    }
    return `bundle-ready-${bundle.pems.length}-certificates`;
  },

  async nextValue(_secretId, current) {
    const issued = await issueCaCertificate({
      subject: current.subject,
      keyType: current.keyType,
      lifetimeMs: current.lifetime,
    });
    return JSON.stringify({ ...current.json, ...issued });
  },

  async set(_secretId, { pending }, context) {
    const bundle = await bundleOf(pending, context);
    const pem = pending.certificate!;
    if (bundle.pems.some((p) => fingerprintOf(p) === fingerprintOf(pem))) return 'already-in-bundle';
    await writeBundle(pending, bundle, [...bundle.pems, pem], context);
    return 'added-to-bundle';
  },

  async test(secretId, value, context) {
    if (value.certificate === undefined || value.privateKey === undefined) return;
    try {
      inspectTlsMaterial({ certificate: value.certificate, privateKey: value.privateKey }, { secretId });
    } catch (error) {
      if (!(error instanceof TlsMaterialError)) throw error;
      throw new TestFailedError(secretId, error.message.replace(`secret ${secretId}: `, ''));
    }
    const bundle = await bundleOf(value, context);
    if (!bundle.pems.some((p) => fingerprintOf(p) === fingerprintOf(value.certificate!)))
      throw new TestFailedError(secretId, `the CA is not in the trust bundle ${value.bundle}`);
  },

  // The whole prePublication, from the end of test (after set): when the bundle became current is not recorded (a
  // version's creation time is not it), and waiting longer than needed is safe.
  async holdBeforeFinish(_secretId, pending) {
    return caPrePublicationMs(pending);
  },

  async restore(_secretId, { want }, context) {
    if (want.certificate === undefined) return 'nothing-to-restore';
    const bundle = await bundleOf(want, context);
    if (bundle.pems.some((p) => fingerprintOf(p) === fingerprintOf(want.certificate!))) return 'bundle-trusts-it';
    await writeBundle(want, bundle, [...bundle.pems, want.certificate], context);
    return 'added-back-to-bundle';
  },

  async retire(secretId, { previous, current }, context) {
    const newCa = new X509Certificate(current.certificate!);
    for (const leafId of current.leaves) {
      const leaf = parseTlsCertificateSecret(leafId, await context.readCurrent(leafId));
      const [cert] = leaf.certificate ? parseCertificates(leaf.certificate, 'certificate', leafId) : [];
      // Retryable: the step's attempts (with backoff) give a renewal under way time to finish.
      if (!cert || !cert.checkIssued(newCa) || !cert.verify(newCa.publicKey))
        throw new UnavailableError(
          secretId,
          `${leafId} is not yet issued by the new CA (renew it; the retirement is tried again): the old CA stays in the bundle`,
        );
      // Its servers must have loaded it: issued at least prePublication ago. When, from the certificate itself: rotor
      // sets notBefore back a tenth of the span at most (1 h at most), so it was issued no later than that after.
      const notBefore = Date.parse(cert.validFrom);
      const issuedBy = notBefore + Math.min(3_600_000, (Date.parse(cert.validTo) - notBefore) / 10);
      if (Date.now() - issuedBy < caPrePublicationMs(current))
        throw new UnavailableError(
          secretId,
          `${leafId} was renewed by the new CA moments ago: its servers may not serve it yet; the old CA stays in the bundle until they do`,
        );
    }
    const bundle = await bundleOf(current, context);
    const gone = new Set(previous?.certificate ? [fingerprintOf(previous.certificate)] : []);
    const now = Date.now();
    const keep = bundle.pems.filter((p) => {
      const cert = new X509Certificate(p);
      return !gone.has(cert.fingerprint256) && Date.parse(cert.validTo) > now;
    });
    if (keep.length === bundle.pems.length) return 'nothing-to-retire';
    await writeBundle(current, bundle, keep, context);
    return `removed-${bundle.pems.length - keep.length}-from-bundle`;
  },
};
