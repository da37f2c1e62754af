/** Every workflow a rotor worker runs. Deterministic code only: see eslint.config.mjs for the imports it bans. */
export {
  rotateSecret,
  statusQuery,
  rollbackSignal,
  extendGraceSignal,
  endGraceSignal,
  rollbackUpdate,
  extendGraceUpdate,
  endGraceUpdate,
  consumerReportSignal,
  ROTATION_FAILED,
} from './rotate-secret';
export { scheduledRotation, type ScheduledRotationInput, type ScheduledRotationResult } from './scheduled-rotation';
export { rollbackSecret } from './rollback-secret';
export { preflightCheck, rollbackPreflight, setupPair } from './preflight-check';
export { dynamicLease, renewLeaseUpdate, releaseLeaseSignal, claimLeaseSignal, leaseQuery } from './dynamic-lease';
export {
  rewrapKeyring,
  pauseRewrapUpdate,
  resumeRewrapUpdate,
  cancelRewrapUpdate,
  rewrapProgressQuery,
  keyringRows,
} from './rewrap-keyring';
