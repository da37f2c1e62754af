import type { Stage } from '../stages';

/** One version of a secret with the staging labels attached to it. */
export interface SecretVersionInfo {
  versionId: string;
  stages: string[];
  createdAt?: Date;
}

export interface SecretDescription {
  secretId: string;
  /** The store's full name of the secret (the ARN in AWS). */
  arn?: string;
  versions: SecretVersionInfo[];
  tags: Record<string, string>;
}

/** A version's value. Stays inside activities and rotators: never returned to a workflow, never logged. */
export interface StoredValue {
  versionId: string;
  stages: string[];
  value: string;
}

/**
 * A secret store that keeps versions and AWS-style staging labels (AWSCURRENT, AWSPENDING, AWSPREVIOUS).
 * AWS Secrets Manager semantics are the reference: moving AWSCURRENT makes the version that had it AWSPREVIOUS.
 *
 * Every write is idempotent, so a step retried after a crash at any line converges on the same state.
 * Errors are RotorErrors: SecretNotFound and StoreRejected are final, Unavailable may pass.
 */
export interface SecretStore {
  /** Names the store for people, e.g. "AWS Secrets Manager at http://127.0.0.1:5055 (us-east-1)". */
  readonly description: string;

  describe(secretId: string): Promise<SecretDescription>;

  /** The version holding `stage`, or undefined when no version holds it. */
  getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined>;

  /** The version with this id, or undefined when there is none. */
  getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined>;

  /**
   * Stores `value` as version `token` labelled AWSPENDING (the label leaves any other version).
   * Calling it again with the same token and value changes nothing.
   */
  putPending(secretId: string, token: string, value: string): Promise<void>;

  /** Attaches `stage` to `versionId`, taking it from the version that had it. No-op when already there. */
  moveStage(secretId: string, stage: Stage, versionId: string): Promise<void>;

  /** Removes `stage` from `versionId`. No-op when that version does not hold it. */
  removeStage(secretId: string, stage: Stage, versionId: string): Promise<void>;
}

/** The version that holds `stage`, from a description. */
export function versionWithStage(description: SecretDescription, stage: Stage): string | undefined {
  return description.versions.find((v) => v.stages.includes(stage))?.versionId;
}
