import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { ErrorType, RotorError } from '../errors';

/** The `engine` of a certificate secret: a chain and its private key, and what to issue next. */
export const TLS_CERTIFICATE_ENGINE = 'tls-certificate';
/** The `engine` of a trust bundle secret: the CA certificates clients and mTLS servers trust (public only). */
export const TRUST_BUNDLE_ENGINE = 'tls-trust-bundle';
/** The `engine` of an internal CA secret: its certificate and private key, read only by the worker. */
export const TLS_CA_ENGINE = 'tls-ca';
/** The `engine` of an ACME account secret: the account's private key (PEM), read only by the worker. */
export const ACME_ACCOUNT_ENGINE = 'acme-account';
/** The key types rotor makes (a new key at every renewal). */
export const TLS_KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] as const;
export type TlsKeyType = (typeof TLS_KEY_TYPES)[number];

/** A certificate chain (PEM, leaf first) and the leaf's private key (PEM, PKCS#8). */
export interface TlsMaterial {
  certificate: string;
  privateKey: string;
}

/** Why material was refused: what a client's handshake would refuse, or what could not be read. */
export type TlsRefusal =
  'malformed' | 'key-mismatch' | 'broken-chain' | 'untrusted' | 'expired' | 'not-yet-valid' | 'name-mismatch';

/** Material a client would refuse. Its message names the reason and certificate fields, never the key. */
export class TlsMaterialError extends RotorError {
  constructor(
    readonly reason: TlsRefusal,
    detail: string,
    secretId?: string,
  ) {
    super(ErrorType.InvalidInput, `${secretId ? `secret ${secretId}: ` : ''}${reason}: ${detail}`, secretId);
  }
}

/** What a certificate says of itself: fields to show and compare, never key material. */
export interface CertificateFacts {
  serial: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;
/** The most certificates a chain or a bundle may hold: bounds the work a hostile secret can ask for. */
export const MAX_PEM_CERTIFICATES = 64;

/** The certificates of a PEM text, in order. Throws TlsMaterialError (`malformed`) for none or an unreadable one. */
export function parseCertificates(pem: string, what: string, secretId?: string): X509Certificate[] {
  const blocks = typeof pem === 'string' ? (pem.match(PEM_CERTIFICATE) ?? []) : [];
  if (blocks.length === 0) throw new TlsMaterialError('malformed', `${what} holds no PEM certificate`, secretId);
  if (blocks.length > MAX_PEM_CERTIFICATES)
    throw new TlsMaterialError('malformed', `${what} holds more than ${MAX_PEM_CERTIFICATES} certificates`, secretId);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new TlsMaterialError(
        'malformed',
        `${what}: certificate ${i + 1} is not a readable X.509 certificate`,
        secretId,
      );
    }
  });
}

export function certificateFacts(certificate: X509Certificate): CertificateFacts {
  return {
    serial: certificate.serialNumber,
    // An empty subject (an ACME CA that leaves the CN out) reads as undefined.
    subject: (certificate.subject ?? '').replace(/\n/g, ', '),
    issuer: (certificate.issuer ?? '').replace(/\n/g, ', '),
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
    fingerprint256: certificate.fingerprint256,
  };
}

export interface InspectOptions {
  /** The trust anchors (CA certificates) the chain must end at. Without them, the chain is checked only within itself. */
  trust?: readonly X509Certificate[];
  /** Names (DNS or IP) the leaf must be valid for. */
  names?: readonly string[];
  now?: number;
  secretId?: string;
}

/**
 * What a client would check of `material`, with Node's own X.509 (no handshake): the key is the leaf's, each
 * certificate is issued and signed by the next (a CA), the chain ends at a self-signed CA of `trust` (the last
 * certificate is one, or is issued and signed by one), every certificate is within its validity window at `now`,
 * and the leaf is valid for every name. Not checked: key usages and path lengths (the worker's `test` completes a
 * real handshake as well). Returns the leaf's facts; throws TlsMaterialError naming the first problem.
 */
export function inspectTlsMaterial(material: TlsMaterial, options: InspectOptions = {}): CertificateFacts {
  const { secretId, now = Date.now() } = options;
  const chain = parseCertificates(material.certificate, 'certificate', secretId);
  const leaf = chain[0]!;
  let key: KeyObject;
  try {
    key = createPrivateKey(material.privateKey);
  } catch {
    throw new TlsMaterialError('malformed', 'privateKey is not a readable PEM private key', secretId);
  }
  if (!leaf.checkPrivateKey(key))
    throw new TlsMaterialError(
      'key-mismatch',
      `privateKey is not the key of certificate ${leaf.serialNumber}`,
      secretId,
    );
  for (let i = 0; i + 1 < chain.length; i++) {
    const [child, parent] = [chain[i]!, chain[i + 1]!];
    if (!parent.ca || !child.checkIssued(parent) || !child.verify(parent.publicKey))
      throw new TlsMaterialError(
        'broken-chain',
        `certificate ${i + 1} (serial ${child.serialNumber}) is not signed by certificate ${i + 2} (serial ${parent.serialNumber})`,
        secretId,
      );
  }
  for (const [i, certificate] of chain.entries()) {
    const { notBefore, notAfter, serial } = certificateFacts(certificate);
    if (now >= notAfter.getTime())
      throw new TlsMaterialError(
        'expired',
        `certificate ${i + 1} (serial ${serial}) expired at ${notAfter.toISOString()}`,
        secretId,
      );
    if (now < notBefore.getTime())
      throw new TlsMaterialError(
        'not-yet-valid',
        `certificate ${i + 1} (serial ${serial}) is valid from ${notBefore.toISOString()}`,
        secretId,
      );
  }
  if (options.trust) {
    const top = chain.at(-1)!;
    // As OpenSSL does by default (no partial chains): the chain ends at a self-signed CA of the bundle.
    const selfSigned = (c: X509Certificate) => c.ca && c.checkIssued(c) && c.verify(c.publicKey);
    const anchored = options.trust.some(
      (anchor) =>
        selfSigned(anchor) &&
        now < new Date(anchor.validTo).getTime() &&
        (anchor.fingerprint256 === top.fingerprint256 || (top.checkIssued(anchor) && top.verify(anchor.publicKey))),
    );
    if (!anchored)
      throw new TlsMaterialError(
        'untrusted',
        `the chain ends at ${certificateFacts(top).issuer}, which no certificate of the trust bundle (${options.trust.length}) issued`,
        secretId,
      );
  }
  for (const name of options.names ?? []) {
    const probe = name.startsWith('*.') ? `probe${name.slice(1)}` : name;
    const matches = isIP(probe) ? leaf.checkIP(probe) : leaf.checkHost(probe);
    if (matches === undefined)
      throw new TlsMaterialError(
        'name-mismatch',
        `certificate ${leaf.serialNumber} is not valid for ${name}`,
        secretId,
      );
  }
  return certificateFacts(leaf);
}
