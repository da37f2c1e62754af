/**
 * Error types rotor raises. The `type` strings travel in Temporal failures (ApplicationFailure.type) and are
 * matched against retry policies' `nonRetryableErrorTypes`, so they are constants here, never class names.
 * Safe to import from workflow code: no I/O.
 *
 * Messages name the secret and the cause; they never contain a secret value.
 */
export const ErrorType = {
  /** The secret does not exist in the store. */
  SecretNotFound: 'RotorSecretNotFound',
  /** The secret's value is not valid JSON or lacks a field the rotator needs. */
  InvalidSecret: 'RotorInvalidSecret',
  /** The secret names an engine (or strategy) no rotator handles. */
  UnsupportedEngine: 'RotorUnsupportedEngine',
  /** Neither the current nor the previous credential (nor the pending one) logs in to the target. */
  CredentialsRejected: 'RotorCredentialsRejected',
  /** The target refused a statement for a reason retrying will not change. */
  TargetRejected: 'RotorTargetRejected',
  /** A version or staging label the rotation relies on is not where it should be. */
  StoreConflict: 'RotorStoreConflict',
  /** The new credential was set but does not work (retryable: the target may still be converging). */
  TestFailed: 'RotorTestFailed',
  /** The store refused the request (access denied, secret scheduled for deletion). */
  StoreRejected: 'RotorStoreRejected',
  /** The store or the target did not answer (retryable). */
  Unavailable: 'RotorUnavailable',
  /** Bad input to the client or the CLI (an invalid duration, an empty secret id). */
  InvalidInput: 'RotorInvalidInput',
  /** A rollback or grace signal was sent for a secret with no rotation that can take it. */
  NotRotating: 'RotorNotRotating',
  /** The operator asked for a rollback; used inside the workflow to unwind. */
  RollbackRequested: 'RotorRollbackRequested',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Error types that retrying cannot fix: activities fail at once and the workflow compensates. */
export const NON_RETRYABLE_ERROR_TYPES: readonly ErrorType[] = [
  ErrorType.SecretNotFound,
  ErrorType.InvalidSecret,
  ErrorType.UnsupportedEngine,
  ErrorType.CredentialsRejected,
  ErrorType.TargetRejected,
  ErrorType.StoreConflict,
  ErrorType.StoreRejected,
  ErrorType.InvalidInput,
];

/** Base of every error rotor throws on purpose. `secretId` is the secret it concerns, when there is one. */
export class RotorError extends Error {
  constructor(
    readonly type: ErrorType,
    message: string,
    readonly secretId?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = type;
  }

  get nonRetryable(): boolean {
    return NON_RETRYABLE_ERROR_TYPES.includes(this.type);
  }
}

/** Thrown when the store has no secret with that id. */
export class SecretNotFoundError extends RotorError {
  constructor(secretId: string, where: string) {
    super(ErrorType.SecretNotFound, `secret ${secretId} not found in ${where}`, secretId);
  }
}

/** Thrown when a secret's JSON is malformed or lacks what the rotator needs; `problems` lists each issue. */
export class InvalidSecretError extends RotorError {
  constructor(
    secretId: string,
    readonly problems: readonly string[],
  ) {
    super(ErrorType.InvalidSecret, `secret ${secretId} is not valid: ${problems.join('; ')}`, secretId);
  }
}

/** Thrown when no rotator handles the secret's engine or strategy. */
export class UnsupportedEngineError extends RotorError {
  constructor(secretId: string, engine: string) {
    super(
      ErrorType.UnsupportedEngine,
      `secret ${secretId}: engine ${JSON.stringify(engine)} is not supported`,
      secretId,
    );
  }
}

/** Thrown when none of the credentials rotor holds can log in to the target to change it. */
export class CredentialsRejectedError extends RotorError {
  /**
   * @param noLoginWorks true only when every credential rotor holds was tried and refused: the target then holds
   *   none of rotor's versions (as opposed to a login that worked but was refused a statement).
   */
  constructor(
    secretId: string,
    detail: string,
    readonly noLoginWorks = false,
  ) {
    super(ErrorType.CredentialsRejected, `secret ${secretId}: ${detail}`, secretId);
  }
}

/** Thrown when the target refused a statement for a reason retrying will not change (a missing role, a policy). */
export class TargetRejectedError extends RotorError {
  constructor(secretId: string, detail: string) {
    super(ErrorType.TargetRejected, `secret ${secretId}: ${detail}`, secretId);
  }
}

/** Thrown when the store's versions or labels are not in the state a step expects. */
export class StoreConflictError extends RotorError {
  constructor(secretId: string, detail: string) {
    super(ErrorType.StoreConflict, `secret ${secretId}: ${detail}`, secretId);
  }
}

/** Thrown when the store refuses a request for a reason retrying will not change. */
export class StoreRejectedError extends RotorError {
  constructor(secretId: string, detail: string) {
    super(ErrorType.StoreRejected, `secret ${secretId}: ${detail}`, secretId);
  }
}

/** Thrown when the pending credential does not work against the target. */
export class TestFailedError extends RotorError {
  constructor(secretId: string, detail: string) {
    super(ErrorType.TestFailed, `secret ${secretId}: test of the pending credential failed: ${detail}`, secretId);
  }
}

/** Thrown when the store or the target cannot be reached; retrying may help. */
export class UnavailableError extends RotorError {
  constructor(secretId: string | undefined, detail: string, options?: { cause?: unknown }) {
    super(ErrorType.Unavailable, secretId ? `secret ${secretId}: ${detail}` : detail, secretId, options);
  }
}

/** Thrown on bad input to the client or CLI. */
export class InvalidInputError extends RotorError {
  constructor(message: string) {
    super(ErrorType.InvalidInput, message);
  }
}

/** Thrown by the client when a signal needs a running rotation (in the right phase) and there is none. */
export class NotRotatingError extends RotorError {
  constructor(secretId: string, detail: string) {
    super(ErrorType.NotRotating, `secret ${secretId}: ${detail}`, secretId);
  }
}
