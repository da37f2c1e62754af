import type { JWK } from 'jose';
import type { z } from 'zod';
import { formatDuration } from '../duration';
import { loadZod } from '../lazy';
import { zodDuration } from './zod-duration';
import { JWT_ALGORITHMS, JWT_SIGNING_KEY_ENGINE, type SigningKey } from './jwt';

// The zod schema of a `jwt-signing-key` secret, built with its first use, so that an application that only signs or
// verifies tokens loads zod when it first reads the secret, never at import.

function build(zod: typeof import('zod')) {
  const { z } = zod;
  const jwk = z.looseObject({ kty: z.string() });
  const signingKey = z.object({
    kid: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'must be 1 to 128 of A-Z, a-z, 0-9, _ and -'),
    alg: z.enum(JWT_ALGORITHMS),
    publicJwk: jwk.transform((k): JWK => k),
    privateJwk: jwk.refine((k) => 'd' in k, 'must be a private key (with d)').transform((k): JWK => k),
    createdAt: z.string(),
  }) satisfies z.ZodType<SigningKey>;

  const duration = (what: string) => zodDuration(zod, what);

  return z
    .looseObject({
      engine: z.literal(JWT_SIGNING_KEY_ENGINE),
      service: z
        .string()
        .regex(
          /^[a-z0-9][a-z0-9._-]{0,62}$/,
          'must be 1 to 63 of a-z, 0-9, ., _ and - starting with a letter or digit',
        ),
      alg: z.enum(JWT_ALGORITHMS).default('ES256'),
      registry: z.string().min(1, 'must not be empty').max(2048),
      jwks: z.object({ maxAge: duration('jwks.maxAge'), cooldown: duration('jwks.cooldown') }),
      tokens: z.object({
        maxLifetime: duration('tokens.maxLifetime'),
        clockSkew: duration('tokens.clockSkew').default(60_000),
      }),
      prePublication: duration('prePublication').optional(),
      keys: z
        .object({ next: signingKey.optional(), current: signingKey.optional(), previous: signingKey.optional() })
        .default({}),
    })
    .superRefine((s, ctx) => {
      const needed = s.jwks.maxAge + s.jwks.cooldown;
      if (s.prePublication !== undefined && s.prePublication < needed) {
        ctx.addIssue({
          code: 'custom',
          path: ['prePublication'],
          message:
            `${formatDuration(s.prePublication)} is shorter than jwks.maxAge ${formatDuration(s.jwks.maxAge)} + jwks.cooldown ${formatDuration(s.jwks.cooldown)} ` +
            `= ${formatDuration(needed)}: a verifier that cached the JWKS just before the key was published would refuse tokens signed with it`,
        });
      }
      if (s.tokens.maxLifetime <= 0)
        ctx.addIssue({ code: 'custom', path: ['tokens', 'maxLifetime'], message: 'must be more than 0s' });
    });
}

let built: ReturnType<typeof build> | undefined;

/**
 * A JWT signing key secret: the key set (`next` published ahead, `current` signing, `previous` still published for
 * tokens it signed), where its public keys are published, and the timings that make a rotation safe for every
 * verifier: how long verifiers may cache the JWKS (`jwks.maxAge`, the `Cache-Control` max-age the publisher serves),
 * how soon they may refetch it for an unknown kid (`jwks.cooldown`), and how long a token lives (`tokens`).
 */
export function jwtSecretSchema(): ReturnType<typeof build> {
  return (built ??= build(loadZod()));
}

export type JwtSecretShape = z.output<ReturnType<typeof build>>;

/** How long a key must be published before it signs: at least the JWKS cache lifetime plus the refetch cooldown. */
export const prePublicationMs = (s: Pick<JwtSecretShape, 'jwks' | 'prePublication'>) =>
  s.prePublication ?? s.jwks.maxAge + s.jwks.cooldown;

/** How long the previous key must stay published after the switch: the longest token's life plus clock skew. */
export const overlapMs = (s: Pick<JwtSecretShape, 'tokens'>) => s.tokens.maxLifetime + s.tokens.clockSkew;
