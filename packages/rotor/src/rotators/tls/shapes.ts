import {
  tlsSchemas,
  type AcmeAccountShape,
  type TlsCaShape,
  type TlsCertificateShape,
} from 'rotor-consumers/credentials';
import { parseJsonObject, validateShape } from '../secret-json';

/** A certificate secret: what to issue, the chain and key once issued, and the JSON it came from. */
export interface TlsCertificateSecret extends TlsCertificateShape {
  json: Record<string, unknown>;
}

export type AcmeIssuer = Extract<TlsCertificateShape['issuer'], { type: 'acme' }>;
export type InternalCaIssuer = Extract<TlsCertificateShape['issuer'], { type: 'internal-ca' }>;

export function parseTlsCertificateSecret(secretId: string, raw: string): TlsCertificateSecret {
  const json = parseJsonObject(secretId, raw);
  return { ...validateShape(secretId, tlsSchemas().certificate, json), json };
}

export function parseTlsCaSecret(secretId: string, raw: string): TlsCaShape {
  return validateShape(secretId, tlsSchemas().ca, parseJsonObject(secretId, raw));
}

export function parseTlsAcmeAccount(secretId: string, raw: string): AcmeAccountShape {
  return validateShape(secretId, tlsSchemas().acmeAccount, parseJsonObject(secretId, raw));
}
