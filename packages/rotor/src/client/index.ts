/**
 * `rotor/client`: drive rotations from a program, as the CLI does.
 *
 * @example
 *   import { RotationClient } from 'rotor/client';
 *
 *   const rotor = await RotationClient.connect(); // TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, profiles
 *   await rotor.rotate('prod/db/app', { graceMs: 60 * 60_000, trigger: { kind: 'api', by: 'deploy-bot' } });
 *   const outcome = await rotor.wait('prod/db/app');
 *   console.log(outcome.outcome); // 'completed', 'rolled-back' or 'failed'
 */
export {
  RotationClient,
  type RollbackOptions,
  type RotateOptions,
  type RotationOutcome,
  type StartedRotation,
} from './rotation-client';
export { ScheduleManager, planSummary, type ApplyPlan, type PlanEntry, type ScheduleView } from './schedule-manager';
export { secretsOverview, type SecretOverview } from './overview';
export {
  loadConfig,
  parseConfig,
  ConfigError,
  type RotorConfig,
  type ManagedSecret,
  type ConfigProblem,
} from '../config/rotor-config';
export { parseDuration, formatDuration } from 'rotor-consumers/core';
export { ErrorType, RotorError, InvalidInputError, NotRotatingError } from 'rotor-consumers/core';
export type { SecretCheck, SecretCheckReport, SetupPlan, SetupStatement } from '../shared/reports';
export type { Phase, Trigger } from '../shared/vocabulary';
export type {
  RollbackInput,
  RotationInput,
  RotationResult,
  RotationFailureDetails,
  PasswordPolicy,
  RetirementPolicy,
} from '../shared/rotation';
export type { OperatorAnswer, RotationStatus, StepRecord } from '../shared/status';
