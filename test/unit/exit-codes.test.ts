import { ServiceError } from '@temporalio/client';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { describeError, ExitCode, exitCodeForFailure } from '../../packages/rotor/src/cli/exit-codes';
import {
  ErrorType,
  InvalidInputError,
  InvalidSecretError,
  NotRotatingError,
  SecretNotFoundError,
  StoreConflictError,
  UnavailableError,
} from 'rotor-consumers/core';

/** A gRPC error as the Temporal client raises it. */
function grpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code, details: message, metadata: {} });
}

describe('CLI exit codes: the one place errors become codes', () => {
  it('maps rotor errors by type, with a hint where one helps', () => {
    expect(describeError(new SecretNotFoundError('prod/x', 'in AWS Secrets Manager'))).toMatchObject({
      code: ExitCode.notFound,
      message: expect.stringMatching(/AWS_REGION/),
    });
    expect(describeError(new NotRotatingError('prod/x', 'no rotation is running')).code).toBe(ExitCode.notFound);
    expect(describeError(new InvalidInputError('--grace: "60" has no unit')).code).toBe(ExitCode.usage);
    expect(describeError(new InvalidSecretError('prod/x', ['host: is required'])).code).toBe(ExitCode.usage);
    expect(describeError(new UnavailableError('prod/x', 'the store did not answer'))).toMatchObject({
      code: ExitCode.unavailable,
      message: expect.stringMatching(/reachable/),
    });
    expect(describeError(new StoreConflictError('prod/x', 'moved')).code).toBe(ExitCode.internal);
  });

  it('says Temporal is unreachable for UNAVAILABLE and DEADLINE_EXCEEDED, and refused for the rest', () => {
    expect(describeError(new ServiceError('x', { cause: grpcError(14, 'connection refused') }))).toMatchObject({
      code: ExitCode.unavailable,
      message: expect.stringMatching(/cannot reach Temporal at .*npm run stack -- up/),
    });
    expect(describeError(new ServiceError('x', { cause: grpcError(4, 'deadline') })).code).toBe(ExitCode.unavailable);
    expect(
      describeError(new ServiceError('x', { cause: grpcError(3, 'search attribute RotorSecretId is not defined') })),
    ).toMatchObject({
      code: ExitCode.internal,
      message: expect.stringMatching(/refused: .*RotorSecretId/),
    });
    expect(describeError(new Error('Failed to connect before the deadline')).code).toBe(ExitCode.unavailable);
  });

  it("leaves commander's own messages to commander: help exits 0, bad usage 2, nothing printed twice", () => {
    expect(describeError(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toEqual({
      code: ExitCode.ok,
      message: '',
    });
    expect(describeError(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"))).toEqual({
      code: ExitCode.usage,
      message: '',
    });
  });

  it('reports anything else as internal, with its message', () => {
    expect(describeError(new TypeError('boom'))).toEqual({ code: ExitCode.internal, message: 'boom' });
    expect(describeError('a string')).toEqual({ code: ExitCode.internal, message: 'a string' });
  });

  it('maps how a rotation failed to the code `rotate --wait` exits with', () => {
    expect(exitCodeForFailure(ErrorType.SecretNotFound)).toBe(ExitCode.notFound);
    expect(exitCodeForFailure(ErrorType.InvalidSecret)).toBe(ExitCode.usage);
    expect(exitCodeForFailure(ErrorType.UnsupportedEngine)).toBe(ExitCode.usage);
    expect(exitCodeForFailure(ErrorType.TestFailed)).toBe(ExitCode.rotationNotCompleted);
    expect(exitCodeForFailure(undefined)).toBe(ExitCode.rotationNotCompleted);
  });
});
