import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { SearchAttribute } from '../../packages/rotor/src/shared/constants';
import { stackEnv } from './env';
import { rotorWorkflowBundle } from './workflow-bundle';

/**
 * The time-skipping test server (the stack's ROTOR_TEMPORAL_TEST_SERVER) with rotor's search attributes added (it
 * knows none until they are, as on a real cluster), and rotor's workflow bundle.
 */
export async function timeSkipping(): Promise<{ env: TestWorkflowEnvironment; bundle: WorkflowBundleWithSourceMap }> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: stackEnv('ROTOR_TEMPORAL_TEST_SERVER') } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(
      Object.values(SearchAttribute).map((key) => [
        key.name,
        temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      ]),
    ),
  });
  return { env, bundle: await rotorWorkflowBundle() };
}
