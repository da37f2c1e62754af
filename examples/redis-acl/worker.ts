/**
 * A rotor worker that runs the built-in rotators and the team's Redis ACL rotator: secrets with `engine: redis`
 * (or the tag `rotor:rotator=redis-acl`) rotate with it. Started like `rotor worker`: the same environment and
 * rotor.yaml (ROTOR_CONFIG).
 */
import { withRotators } from 'rotor/rotators';
import { runWorker } from 'rotor/worker';
import { redisAclRotator } from './redis-acl-rotator';

runWorker({ rotators: withRotators(redisAclRotator) }).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`worker failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
