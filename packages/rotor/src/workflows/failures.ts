import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from 'rotor-consumers/core';

/** Type of the failure a rotation ends with when it did not complete. */
export const ROTATION_FAILED = 'RotorRotationFailed';

/** Raised inside the workflow when an operator's rollback arrives before finish: unwinds through compensation. */
export class RollbackRequested extends Error {
  override readonly name = ErrorType.RollbackRequested;
}

/** The failure an activity raised, out of the ActivityFailure(s) Temporal wraps it in (a local one arrives bare). */
export function innermostFailure(error: unknown): unknown {
  let e: unknown = error;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e;
}

/** The type of the innermost failure: rotor's error type when an activity raised one. */
export function typeOf(error: unknown): string | undefined {
  const e = innermostFailure(error);
  return e instanceof ApplicationFailure ? (e.type ?? undefined) : undefined;
}

/** The innermost message of an activity failure: rotor's typed, value-free message. */
export function causeOf(error: unknown): string {
  const e = innermostFailure(error);
  if (e instanceof ApplicationFailure && e.type) return `${e.message} [${e.type}]`;
  return e instanceof Error ? e.message : String(e);
}
