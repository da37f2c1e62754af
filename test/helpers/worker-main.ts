/** A real `rotor worker` process whose rotators carry the test faults of faulty-rotators.ts. */
import { runWorker } from '../../packages/rotor/src/worker';
import { faultyRotators } from './faulty-rotators';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
runWorker({ rotators: faultyRotators(process.env.ROTOR_TEST_HOLD_DIR) }).then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`worker failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
