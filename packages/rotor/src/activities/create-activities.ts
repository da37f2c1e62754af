import type { ActivityDeps } from './ports';
import { createPreflightActivities } from './preflight';
import { createReportingActivities } from './reporting';
import { createRotationSteps } from './rotation-steps';
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
  // Steps of one rotation read each version once (values never change); labels are always read fresh.
  const deps = { ...given, store: withVersionCache(given.store) };
  return { ...createRotationSteps(deps), ...createPreflightActivities(deps), ...createReportingActivities(deps) };
}

export type RotorActivities = ReturnType<typeof createActivities>;
