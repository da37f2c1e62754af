/**
 * A worker with the Redis ACL example and a copy of it whose test step fails for every password it made (selected
 * with the tag `rotor:rotator=redis-acl-failing-test`), to prove the engine compensates a team's own rotator; the
 * password compensation reinstates still passes the test that follows the restore.
 */
import { TestFailedError, withRotators } from '../../packages/rotor/src/rotators';
import { runWorker } from '../../packages/rotor/src/worker';
import { Redis } from 'ioredis';
import { redisAclRotator } from '../../examples/redis-acl/redis-acl-rotator';

const made = new Set<string>();
const failing: typeof redisAclRotator = {
  ...redisAclRotator,
  kind: 'redis-acl-failing-test',
  engines: [],
  async nextValue(secretId, current, policy) {
    const next = await redisAclRotator.nextValue(secretId, current, policy);
    made.add(redisAclRotator.parse(secretId, next).password);
    return next;
  },
  async test(secretId, value, context) {
    if (made.has(value.password)) throw new TestFailedError(secretId, 'made to fail by the test');
    await redisAclRotator.test(secretId, value, context);
  },
};

/**
 * A careless team's rotator (selected with `rotor:rotator=redis-acl-echoing`): its set sends the new password as a
 * malformed ACL rule (`=` and the password: no rule starts with `=`, whereas a bare password starting with `>`, `~` or
 * `&` would be a valid rule), and Redis's real error quotes it back; the raw error leaves the rotator. rotor must
 * redact it before it reaches the history, the logs or the CLI.
 */
const echoing: typeof redisAclRotator = {
  ...redisAclRotator,
  kind: 'redis-acl-echoing',
  engines: [],
  async set(_secretId, { pending }, context) {
    const admin = JSON.parse(await context.readCurrent(pending.masterarn!)) as { username: string; password: string };
    const redis = new Redis({ host: pending.host, port: pending.port, ...admin, lazyConnect: true });
    try {
      await redis.connect();
      await redis.call('ACL', 'SETUSER', pending.username, `=${pending.password}`);
      return 'changed';
    } finally {
      redis.disconnect();
    }
  },
};

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
runWorker({ rotators: withRotators(redisAclRotator, failing, echoing) }).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`worker failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
