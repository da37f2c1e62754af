import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import type { TlsKeyType, TlsMaterial } from 'rotor-consumers/credentials';

/*
 * Keys and certificates of rotor's internal CA, made with WebCrypto (node:crypto) and @peculiar/x509: nothing here
 * encodes ASN.1 or signs by hand.
 */

type Crypto = webcrypto.Crypto;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;

const crypto: Crypto = webcrypto;

const ALGORITHMS: Record<TlsKeyType, { key: EcKeyGenParams | RsaHashedKeyGenParams; sign: Algorithm | EcdsaParams }> = {
  'ec-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams },
  'ec-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams },
  'rsa-2048': {
    key: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
  'rsa-3072': {
    key: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

/** How far a certificate's notBefore is set back, for clocks behind the issuer's: a tenth of its life, at most 1 h. */
const backdateMs = (lifetimeMs: number) => Math.min(3_600_000, Math.floor(lifetimeMs / 10));

/** A new key pair of `type`; its private half as PEM (PKCS#8). */
export async function generateKeyPair(type: TlsKeyType): Promise<{ keys: CryptoKeyPair; privateKeyPem: string }> {
  const keys = (await crypto.subtle.generateKey(ALGORITHMS[type].key, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, privateKeyPem: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

/** A PEM private key of `type`, for signing (not extractable). */
export async function importSigningKey(privateKeyPem: string, type: TlsKeyType): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(privateKeyPem), ALGORITHMS[type].key, false, [
    'sign',
  ]);
}

/** A positive 128-bit serial from the CSPRNG, as hex (RFC 5280: at most 20 octets, positive). */
const serialNumber = () => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  bytes[0]! |= 0x01;
  return bytes.toString('hex');
};

/** A self-signed CA certificate and its new key: `CN=<subject>`, CA:TRUE (path length 0), keyCertSign and cRLSign. */
export async function issueCaCertificate(options: {
  subject: string;
  keyType: TlsKeyType;
  lifetimeMs: number;
  now?: Date;
}): Promise<TlsMaterial> {
  const now = options.now ?? new Date();
  const { keys, privateKeyPem } = await generateKeyPair(options.keyType);
  const name = [{ CN: [options.subject] }];
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name,
      notBefore: new Date(now.getTime() - backdateMs(options.lifetimeMs)),
      notAfter: new Date(now.getTime() + options.lifetimeMs),
      signingAlgorithm: ALGORITHMS[options.keyType].sign,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certificate: certificate.toString('pem'), privateKey: privateKeyPem };
}

/**
 * A leaf certificate for `names` with a new key, signed by the CA: the first name as CN, every name in the
 * subjectAltName (DNS or IP), CA:FALSE, digitalSignature (and keyEncipherment for RSA), serverAuth and clientAuth,
 * valid from a little before now (clock skew) until `lifetimeMs` from now, and never beyond the CA's own notAfter.
 */
export async function issueLeafCertificate(options: {
  names: readonly string[];
  keyType: TlsKeyType;
  lifetimeMs: number;
  ca: TlsMaterial & { keyType: TlsKeyType };
  now?: Date;
}): Promise<TlsMaterial> {
  const now = options.now ?? new Date();
  const caCertificate = new x509.X509Certificate(options.ca.certificate);
  const signingKey = await importSigningKey(options.ca.privateKey, options.ca.keyType);
  const { keys, privateKeyPem } = await generateKeyPair(options.keyType);
  const notAfter = new Date(Math.min(now.getTime() + options.lifetimeMs, caCertificate.notAfter.getTime()));
  const usage = options.keyType.startsWith('rsa')
    ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
    : x509.KeyUsageFlags.digitalSignature;
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: [{ CN: [options.names[0]!] }],
      issuer: caCertificate.subject,
      notBefore: new Date(now.getTime() - backdateMs(options.lifetimeMs)),
      notAfter,
      signingAlgorithm: ALGORITHMS[options.ca.keyType].sign,
      publicKey: keys.publicKey,
      signingKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usage, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(
          options.names.map((value) => ({ type: isIP(value) ? ('ip' as const) : ('dns' as const), value })),
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false, crypto),
      ],
    },
    crypto,
  );
  return { certificate: certificate.toString('pem'), privateKey: privateKeyPem };
}
