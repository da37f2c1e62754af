import type { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { z } from 'zod';
import { loadZod } from '../lazy';
import { parseJsonObject, validateShape } from '../secret-json';
import { formatDuration } from '../duration';
import { zodDuration } from './zod-duration';
import {
  ACME_ACCOUNT_ENGINE,
  parseCertificates,
  TLS_CA_ENGINE,
  TLS_CERTIFICATE_ENGINE,
  TLS_KEY_TYPES,
  TRUST_BUNDLE_ENGINE,
} from './tls';

// The zod schemas of the TLS secrets, built with their first use (zod loads then, never at import).

/** A DNS name (a leading `*.` allowed) of labels of a-z, 0-9 and -, or an IPv4/IPv6 address. */
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function build(zod: typeof import('zod')) {
  const { z } = zod;
  const secretRef = z.string().min(1, 'must not be empty').max(2048);
  const pem = (max: number) => z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);
  const name = z
    .string()
    .max(253)
    .refine(
      (n) => isIP(n) !== 0 || DNS_NAME.test(n),
      'must be a DNS name (a-z, 0-9, - and dots, a leading *. allowed) or an IP address',
    );

  const issuer = z.discriminatedUnion('type', [
    z.object({ type: z.literal('internal-ca'), ca: secretRef }),
    z.object({
      type: z.literal('acme'),
      directory: z.url({ protocol: /^https$/, error: 'must be the https URL of an ACME directory' }).max(2048),
      account: secretRef,
      challenge: z.enum(['http-01', 'dns-01']).default('http-01'),
      hook: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must name a hook of rotor.yaml (1 to 63 of a-z, 0-9 and -)'),
      profile: z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,64}$/)
        .optional(),
    }),
  ]);

  const material = {
    certificate: pem(65_536).optional(),
    privateKey: pem(16_384).optional(),
  };
  const bothOrNeither = (s: { certificate?: string; privateKey?: string }, ctx: z.RefinementCtx) => {
    if ((s.certificate === undefined) !== (s.privateKey === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [s.certificate === undefined ? 'certificate' : 'privateKey'],
        message: 'certificate and privateKey come together (both, or neither before the first issuance)',
      });
  };

  const certificate = z
    .looseObject({
      engine: z.literal(TLS_CERTIFICATE_ENGINE),
      names: z.array(name).min(1, 'must name at least one DNS name or IP address').max(100),
      keyType: z.enum(TLS_KEY_TYPES).default('ec-p256'),
      lifetime: zodDuration(zod, 'lifetime').optional(),
      issuer,
      trust: secretRef.optional(),
      ...material,
    })
    .superRefine((s, ctx) => {
      bothOrNeither(s, ctx);
      if (s.issuer.type === 'internal-ca' && s.lifetime === undefined)
        ctx.addIssue({ code: 'custom', path: ['lifetime'], message: 'is required with an internal-ca issuer' });
      // Without a bundle a client would check an internal CA's certificate against the public roots, and refuse it.
      if (s.issuer.type === 'internal-ca' && s.trust === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['trust'],
          message: 'is required with an internal-ca issuer (the trust bundle that holds the CA)',
        });
      if (s.lifetime !== undefined && s.lifetime < 10_000)
        ctx.addIssue({ code: 'custom', path: ['lifetime'], message: 'must be at least 10s' });
    });

  const ca = z
    .looseObject({
      engine: z.literal(TLS_CA_ENGINE),
      subject: z.string().min(1).max(64),
      keyType: z.enum(TLS_KEY_TYPES).default('ec-p256'),
      lifetime: zodDuration(zod, 'lifetime'),
      bundle: secretRef,
      // How soon every consumer has read a new trust bundle: its cache's refresh interval (and check interval).
      consumers: z.object({
        refresh: zodDuration(zod, 'consumers.refresh').refine((ms) => ms >= 1000, 'must be at least 1s'),
      }),
      prePublication: zodDuration(zod, 'prePublication').optional(),
      maxLeafLifetime: zodDuration(zod, 'maxLeafLifetime'),
      leaves: z.array(secretRef).max(1000).default([]),
      ...material,
    })
    .superRefine((s, ctx) => {
      bothOrNeither(s, ctx);
      if (s.prePublication !== undefined && s.prePublication < s.consumers.refresh)
        ctx.addIssue({
          code: 'custom',
          path: ['prePublication'],
          message: `${formatDuration(s.prePublication)} is shorter than consumers.refresh ${formatDuration(s.consumers.refresh)}: a consumer that read the bundle just before the new CA joined it would refuse what the new CA issues`,
        });
      if (s.maxLeafLifetime >= s.lifetime)
        ctx.addIssue({ code: 'custom', path: ['maxLeafLifetime'], message: 'must be shorter than the CA lifetime' });
    });

  const bundle = z.looseObject({
    engine: z.literal(TRUST_BUNDLE_ENGINE),
    certificates: z.array(pem(16_384)).max(64),
  });

  const acmeAccount = z.looseObject({
    engine: z.literal(ACME_ACCOUNT_ENGINE),
    privateKey: pem(16_384),
    email: z.email().max(254).optional(),
  });

  return { certificate, ca, bundle, acmeAccount };
}

let built: ReturnType<typeof build> | undefined;

/**
 * The TLS secrets: a certificate (`tls-certificate`: the names and key type to issue, the issuer, the trust bundle
 * its chain must reach, and the chain and key once issued), an internal CA (`tls-ca`), and a trust bundle
 * (`tls-trust-bundle`: CA certificates only, the one secret clients read).
 */
export function tlsSchemas(): ReturnType<typeof build> {
  return (built ??= build(loadZod()));
}

export type TlsCertificateShape = z.output<ReturnType<typeof build>['certificate']>;
/** How long a new CA is in the bundle before it issues: `prePublication`, or twice the consumers' refresh. */
export const caPrePublicationMs = (s: Pick<TlsCaShape, 'prePublication' | 'consumers'>) =>
  s.prePublication ?? 2 * s.consumers.refresh;

export type TlsCaShape = z.output<ReturnType<typeof build>['ca']>;
export type AcmeAccountShape = z.output<ReturnType<typeof build>['acmeAccount']>;
export type TrustBundleShape = z.output<ReturnType<typeof build>['bundle']>;

/**
 * The CA certificates of a trust bundle secret's value, as PEM texts and parsed. Throws InvalidSecretError for a
 * value that is not a trust bundle, TlsMaterialError for a certificate that cannot be read; neither quotes the value.
 */
export function parseTrustBundle(secretId: string, raw: string): { pems: string[]; certificates: X509Certificate[] } {
  const bundle = validateShape(secretId, tlsSchemas().bundle, parseJsonObject(secretId, raw));
  const certificates = bundle.certificates.flatMap((pem, i) => parseCertificates(pem, `certificates.${i}`, secretId));
  return { pems: certificates.map((c) => c.toString()), certificates };
}
