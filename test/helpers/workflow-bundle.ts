import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** rotor's workflows from the sources, bundled once per test process (webpack takes seconds). */
export function rotorWorkflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: path.resolve(__dirname, '../../packages/rotor/src/workflows/index.ts'),
    logger: new DefaultLogger('WARN'),
  });
  return bundle;
}
