import { isGrpcServiceError, ServiceError } from '@temporalio/client';
import { CommanderError } from 'commander';
import { ErrorType, RotorError } from 'rotor-consumers/core';

const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;
/** How the Node gRPC client and the worker's native core (tonic) say a connection could not be made. */
const TRANSPORT_ERROR =
  /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|Failed to connect|transport error|tonic::transport|tcp connect error|dns error/i;

/** The reason inside a transport error, for people: `Connection refused` rather than the core's debug dump. */
function transportReason(message: string): string {
  return /message: "([^"]+)"/.exec(message)?.[1] ?? /dns error[^)"]*/i.exec(message)?.[0] ?? message.slice(0, 160);
}

/** rotor's exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  /** The rotation ended without completing: compensated, rolled back, or failed. */
  rotationNotCompleted: 1,
  /** Bad usage or input: an unknown option, an invalid duration, an invalid secret. */
  usage: 2,
  /** The secret, or a rotation to act on, does not exist. */
  notFound: 3,
  /** Temporal, the store or the audit database could not be reached. */
  unavailable: 4,
  /** `rotor audit verify` found an edited or deleted event. */
  auditBroken: 5,
  /** `rotor check` found a secret a rotation would fail on. */
  checkFailed: 6,
  /** Anything else: a bug, reported with its message. */
  internal: 70,
} as const;

/**
 * Maps an error to an exit code and a one-line message with a hint. The one place the CLI decides this. Commander
 * has printed its own message already (usage, help, version), so its errors come back with an empty message.
 */
export function describeError(error: unknown): { code: number; message: string } {
  if (error instanceof CommanderError)
    return { code: error.exitCode === 0 ? ExitCode.ok : ExitCode.usage, message: '' };
  if (error instanceof RotorError) {
    switch (error.type) {
      case ErrorType.SecretNotFound:
        return { code: ExitCode.notFound, message: `${error.message} — check the secret id and AWS_REGION` };
      case ErrorType.NotRotating:
        return { code: ExitCode.notFound, message: error.message };
      case ErrorType.InvalidInput:
      case ErrorType.InvalidSecret:
      case ErrorType.UnsupportedEngine:
        return { code: ExitCode.usage, message: error.message };
      case ErrorType.Unavailable:
        return {
          code: ExitCode.unavailable,
          message: `${error.message} — check that it is up and reachable from here`,
        };
      default:
        return { code: ExitCode.internal, message: error.message };
    }
  }
  const address = process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';
  const unreachable = (why: string) => ({
    code: ExitCode.unavailable,
    message:
      `cannot reach Temporal at ${address} (${why}) — is it running? Point rotor at your cluster with TEMPORAL_ADDRESS ` +
      `(and TEMPORAL_NAMESPACE, TEMPORAL_API_KEY or TEMPORAL_TLS_*) or a profile in temporal.toml; from a rotor checkout, ` +
      `\`npm run stack -- up\` starts a local one`,
  });
  if (isGrpcServiceError(error) || error instanceof ServiceError) {
    const grpc = isGrpcServiceError(error) ? error : isGrpcServiceError(error.cause) ? error.cause : undefined;
    if (!grpc || grpc.code === GRPC_UNAVAILABLE || grpc.code === GRPC_DEADLINE_EXCEEDED)
      return unreachable(messageWithCause(error));
    return { code: ExitCode.internal, message: `Temporal at ${address} refused: ${messageWithCause(error)}` };
  }
  if (error instanceof Error && TRANSPORT_ERROR.test(error.message)) return unreachable(transportReason(error.message));
  return { code: ExitCode.internal, message: error instanceof Error ? messageWithCause(error) : String(error) };
}

/** Exit code of a rotation that failed, from rotor's error type of its cause. */
export function exitCodeForFailure(errorType: string | undefined): number {
  switch (errorType) {
    case ErrorType.SecretNotFound:
      return ExitCode.notFound;
    case ErrorType.InvalidSecret:
    case ErrorType.UnsupportedEngine:
      return ExitCode.usage;
    default:
      return ExitCode.rotationNotCompleted;
  }
}

function messageWithCause(error: Error): string {
  const cause =
    error.cause instanceof Error && !error.message.includes(error.cause.message) ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
