import { Redis } from 'ioredis';
import { stackEnv } from './env';

/** The stack's Redis admin URL (ROTOR_REDIS_ADMIN_URL), for the custom-rotator example's secrets. */
export const redisAdmin = () => new URL(stackEnv('ROTOR_REDIS_ADMIN_URL'));

/** A Redis secret in the Redis ACL example's shape, on the stack's Redis. */
export function redisSecret(username: string, password: string, extra: object = {}): object {
  const admin = redisAdmin();
  return { engine: 'redis', host: admin.hostname, port: Number(admin.port), username, password, ...extra };
}

/** True when `username` logs in to the stack's Redis with `password`; false when Redis says WRONGPASS. */
export async function redisLogsIn(username: string, password: string): Promise<boolean> {
  const admin = redisAdmin();
  const redis = new Redis({
    host: admin.hostname,
    port: Number(admin.port),
    username,
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let reported: unknown;
  redis.on('error', (error) => (reported ??= error));
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch (error) {
    if (/WRONGPASS/.test(String(reported ?? error))) return false;
    throw error;
  } finally {
    redis.disconnect();
  }
}
