import { createPrivateKey } from 'node:crypto';
import {
  TLS_CA_ENGINE,
  TLS_CERTIFICATE_ENGINE,
  TRUST_BUNDLE_ENGINE,
  type TlsMaterial,
} from 'rotor-consumers/credentials';
import type { Stage } from 'rotor-consumers';
import { issueCaCertificate } from '../../packages/rotor/src/rotators/tls/issue';
import { uniqueName } from './env';
import { createSecret, store } from './stack';

/** An internal CA on the stack's store: its secret (certificate and key) and the trust bundle that holds it. */
export interface TestCa {
  caId: string;
  bundleId: string;
  material: TlsMaterial;
}

/**
 * Makes a CA (1 day) with rotor's own issuing code, its `tls-ca` secret and a `tls-trust-bundle` of it. Consumers
 * refresh the bundle within 2 s (the tests' caches), certificates it issues live at most `maxLeafLifetime`, `leaves` are the
 * certificate secrets its rotation checks before the old CA leaves the bundle.
 */
export async function createTestCa(
  marker: string,
  keys: Set<string>,
  { leaves = [], maxLeafLifetime = '1h' }: { leaves?: string[]; maxLeafLifetime?: string } = {},
): Promise<TestCa> {
  const material = await issueCaCertificate({
    subject: `rotor ${marker} CA`,
    keyType: 'ec-p256',
    lifetimeMs: 86_400_000,
  });
  keys.add(material.privateKey);
  const caId = uniqueName(`it/tls-ca-${marker}`);
  const bundleId = uniqueName(`it/tls-bundle-${marker}`);
  await createSecret(bundleId, { engine: TRUST_BUNDLE_ENGINE, certificates: [material.certificate] });
  await createSecret(caId, {
    engine: TLS_CA_ENGINE,
    subject: `rotor ${marker} CA`,
    lifetime: '1d',
    bundle: bundleId,
    consumers: { refresh: '2s' },
    maxLeafLifetime,
    leaves,
    ...material,
  });
  return { caId, bundleId, material };
}

/** A `tls-certificate` secret issued by `ca`, before its first issuance (its first rotation issues). */
export async function createCertificateSecret(
  marker: string,
  ca: TestCa,
  options: { names?: string[]; lifetime?: string; secretId?: string } = {},
): Promise<string> {
  const secretId = options.secretId ?? uniqueName(`it/tls-cert-${marker}`);
  await createSecret(secretId, {
    engine: TLS_CERTIFICATE_ENGINE,
    names: options.names ?? ['localhost', '127.0.0.1'],
    lifetime: options.lifetime ?? '1h',
    issuer: { type: 'internal-ca', ca: ca.caId },
    trust: ca.bundleId,
  });
  return secretId;
}

/** The material of a certificate secret's version with `stage`; its key joins `keys`, for the hygiene check. */
export async function materialAt(secretId: string, stage: Stage, keys: Set<string>): Promise<TlsMaterial> {
  const version = await store.getByStage(secretId, stage);
  if (!version) throw new Error(`${secretId} has no ${stage}`);
  const { certificate, privateKey } = JSON.parse(version.value) as TlsMaterial;
  keys.add(privateKey);
  return { certificate, privateKey };
}

/** Every private key of a secret's versions (PEM, and its base64 body alone), for the hygiene check. */
export async function rememberKeys(secretId: string, keys: Set<string>): Promise<void> {
  for (const v of (await store.describe(secretId)).versions) {
    const value = await store.getByVersion(secretId, v.versionId);
    const key = value ? (JSON.parse(value.value) as { privateKey?: string }).privateKey : undefined;
    if (key === undefined) continue;
    keys.add(key);
    // The key's DER in base64 as one line, which a log might print without the PEM's line breaks.
    keys.add(createPrivateKey(key).export({ type: 'pkcs8', format: 'der' }).toString('base64').slice(0, 48));
  }
}
