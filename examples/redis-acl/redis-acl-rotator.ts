/**
 * A rotator a team writes for its own target: the password of a Redis ACL user (docs/custom-rotators.md walks
 * through it; test/integration/custom-rotator.test.ts runs it on the stack's Redis).
 *
 * Redis lets an ACL user hold several passwords at once, which makes rotation overlap natively: `set` adds the new
 * password beside the old one, so both work through grace; `retire` removes the old one. The admin login (the
 * secret named by `masterarn`) makes every change; the user's own login only proves a password works.
 */
import { Redis, ReplyError } from 'ioredis';
import { z } from 'zod';
import {
  CredentialsRejectedError,
  generatePassword,
  InvalidSecretError,
  parseJsonObject,
  TargetRejectedError,
  TestFailedError,
  UnavailableError,
  validateShape,
  type Rotator,
  type RotatorContext,
} from 'rotor/rotators';

/** The secret: AWS's database shape with `engine: redis`; `masterarn` names the admin secret, in the same shape. */
const RedisSecretSchema = z.looseObject({
  engine: z.literal('redis'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535).default(6379),
  username: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1 to 64 of A-Z, a-z, 0-9, _, . and -'),
  password: z.string().min(1),
  masterarn: z.string().min(1).optional(),
});
export type RedisSecret = z.infer<typeof RedisSecretSchema>;

function parseRedisSecret(secretId: string, raw: string): RedisSecret {
  return validateShape(secretId, RedisSecretSchema, parseJsonObject(secretId, raw));
}

/**
 * Runs `work` on a connection logged in as `login`. Errors are re-thrown as rotor's types with the reply's first
 * word only: a Redis error can quote the command, and an ACL command carries a password.
 */
async function withRedis<T>(secretId: string, login: RedisSecret, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({
    host: login.host,
    port: login.port,
    username: login.username,
    password: login.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 5000,
  });
  // A refused login reaches the 'error' event as Redis's reply (WRONGPASS); connect() then only says it closed.
  let reported: unknown;
  redis.on('error', (error) => (reported ??= error));
  try {
    await redis.connect();
    return await work(redis);
  } catch (thrown) {
    const error = thrown instanceof ReplyError ? thrown : (reported ?? thrown);
    const reply = error instanceof ReplyError ? /^([A-Z]+)\b/.exec(String((error as Error).message))?.[1] : undefined;
    if (reply === 'WRONGPASS')
      throw new CredentialsRejectedError(secretId, `Redis refused the login of ${login.username}`);
    if (reply === 'NOPERM')
      throw new CredentialsRejectedError(
        secretId,
        `${login.username} may not manage ACL users on ${login.host}:${login.port}`,
      );
    if (reply) throw new TargetRejectedError(secretId, `Redis answered ${reply} to ${login.username}`);
    throw new UnavailableError(
      secretId,
      `Redis at ${login.host}:${login.port} did not answer (${(error as { code?: string }).code ?? 'no reply'})`,
    );
  } finally {
    redis.disconnect();
  }
}

const logsIn = (secretId: string, login: RedisSecret) =>
  withRedis(secretId, login, async (redis) => (await redis.ping()) === 'PONG').catch((error: unknown) => {
    if (error instanceof CredentialsRejectedError) return false;
    throw error;
  });

/** The admin secret, checked to name the same server: a secret must not steer rotor's admin login elsewhere. */
async function adminFor(secretId: string, secret: RedisSecret, context: RotatorContext): Promise<RedisSecret> {
  if (!secret.masterarn)
    throw new InvalidSecretError(secretId, ['masterarn: is required (the id or ARN of the Redis admin secret)']);
  const admin = parseRedisSecret(secret.masterarn, await context.readCurrent(secret.masterarn));
  if (admin.host !== secret.host || admin.port !== secret.port) {
    throw new InvalidSecretError(secretId, [`masterarn: names another server (${admin.host}:${admin.port})`]);
  }
  return admin;
}

/** ACL SETUSER with the given rules, each a separate argument (Redis parses them; nothing is pasted into a string). */
async function setUser(secretId: string, admin: RedisSecret, username: string, rules: string[]): Promise<void> {
  await withRedis(secretId, admin, (redis) => redis.call('ACL', 'SETUSER', username, ...rules));
}

export const redisAclRotator: Rotator<RedisSecret> = {
  kind: 'redis-acl',
  engines: ['redis'],

  parse: parseRedisSecret,

  target: (secret) => `redis://${secret.host}:${secret.port}`,

  async check(secretId, { current, fallbacks }, context) {
    const admin = await adminFor(secretId, current, context);
    await withRedis(secretId, admin, (redis) => redis.call('ACL', 'GETUSER', current.username));
    for (const version of [current, ...fallbacks]) if (await logsIn(secretId, version)) return 'admin-and-login-work';
    throw new CredentialsRejectedError(secretId, `no version of the secret logs in as ${current.username}`, true);
  },

  nextValue: (_secretId, current, policy) => JSON.stringify({ ...current, password: generatePassword(policy) }),

  async set(secretId, { pending, current }, context) {
    if (await logsIn(secretId, pending)) return 'already-set';
    // `>password` adds a password and keeps the others: the current one keeps working through grace.
    await setUser(secretId, await adminFor(secretId, current, context), pending.username, [
      'on',
      `>${pending.password}`,
    ]);
    return 'password-added';
  },

  async test(secretId, value) {
    if (!(await logsIn(secretId, value)))
      throw new TestFailedError(secretId, `the new password does not log in as ${value.username}`);
  },

  async restore(secretId, { want, via }, context) {
    // Compensation and rollback: `want` works again, and the passwords of the versions given up are removed.
    const others: string[] = [];
    for (const v of via) if (v.password !== want.password && (await logsIn(secretId, v))) others.push(`<${v.password}`);
    await setUser(secretId, await adminFor(secretId, want, context), want.username, [
      'on',
      `>${want.password}`,
      ...others,
    ]);
    return others.length > 0 ? 'restored-and-removed' : 'restored';
  },

  async retire(secretId, { previous, current }, context) {
    if (!previous || previous.password === current.password) return 'nothing-to-retire';
    if (!(await logsIn(secretId, previous))) return 'already-retired';
    await setUser(secretId, await adminFor(secretId, current, context), current.username, [`<${previous.password}`]);
    return 'previous-password-removed';
  },
};
