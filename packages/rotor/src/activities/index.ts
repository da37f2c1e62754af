/** The activities a rotor worker runs, and the ports they depend on. */
export { createActivities, type RotorActivities } from './create-activities';
export { createRotationSteps } from './rotation-steps';
export { createReportingActivities } from './reporting';
export { attemptSignal } from './attempt';
export type { ActivityDeps, ActivityMetrics, AlertNotifier, AuditSink, TargetLimiter } from './ports';
