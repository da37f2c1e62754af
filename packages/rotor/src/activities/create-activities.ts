import type { ActivityDeps } from './ports';
import { createPreflightActivities } from './preflight';
import { createLeaseSteps } from './lease-steps';
import { createRewrapSteps } from './rewrap-steps';
import { createReportingActivities } from './reporting';
import { createRotationSteps } from './rotation-steps';
import { notingStore } from './handed-values';
import { withVersionCache } from './version-cache';

/**
 * Every activity a rotor worker runs: the rotation's steps and its reporting. The workflows proxy
 * `RotorActivities`; tests pass fakes of the same ports.
 *
 * @example
 *   const activities = createActivities({ store: new AwsSecretsManagerStore(), rotators });
 *   await Worker.create({ taskQueue: 'rotor', workflowsPath, activities });
 */
export function createActivities(given: ActivityDeps) {
  // Steps of one rotation read each version once (values never change); labels are always read fresh. Every value
  // read or written is noted for the step, so no error leaves it quoting one (handed-values.ts).
  const deps = { ...given, store: notingStore(withVersionCache(given.store)) };
  return {
    ...createRotationSteps(deps),
    ...createPreflightActivities(deps),
    ...createReportingActivities(deps),
    ...createLeaseSteps(deps),
    ...createRewrapSteps(deps),
  };
}

export type RotorActivities = ReturnType<typeof createActivities>;
