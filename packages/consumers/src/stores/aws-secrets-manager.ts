import type { SecretsManagerClient, SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';
import { loadSecretsManagerSdk } from '../lazy';
import { Stage } from '../stages';
import { RotorError, SecretNotFoundError, StoreConflictError, StoreRejectedError, UnavailableError } from '../errors';
import type { SecretDescription, SecretStore, StoredValue } from './secret-store';
import { versionWithStage } from './secret-store';

type Sdk = ReturnType<typeof loadSecretsManagerSdk>;

/** Attempts of one label change when another writer moved the label meanwhile. */
const MAX_STAGE_ATTEMPTS = 4;

export interface AwsSecretsManagerStoreOptions {
  /** A client of your own; otherwise one is made from the standard AWS environment. */
  client?: SecretsManagerClient;
  /** Per-request timeout in milliseconds (default 5000): a store that hangs fails the attempt, not the worker. */
  requestTimeoutMs?: number;
  /** SDK-level attempts per call (default 2); Temporal retries the step beyond that. */
  maxAttempts?: number;
}

/**
 * SecretStore on AWS Secrets Manager. Region, credentials and endpoint come from the standard AWS environment
 * (AWS_REGION, AWS_PROFILE or keys, AWS_ENDPOINT_URL_SECRETS_MANAGER).
 *
 * Reads always name a VersionStage or VersionId: some emulators do not move their default version when a
 * stage moves.
 */
export class AwsSecretsManagerStore implements SecretStore {
  readonly description: string;
  readonly #options: AwsSecretsManagerStoreOptions;
  #client?: SecretsManagerClient;

  constructor(options: AwsSecretsManagerStoreOptions = {}) {
    this.#options = options;
    if (options.client) this.#client = options.client;
    const endpoint = process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER ?? process.env.AWS_ENDPOINT_URL;
    const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'the default region';
    this.description = `AWS Secrets Manager${endpoint ? ` at ${endpoint}` : ''} (${region})`;
  }

  async describe(secretId: string): Promise<SecretDescription> {
    const described = await this.call(secretId, (client, sdk) =>
      client.send(new sdk.DescribeSecretCommand({ SecretId: secretId })),
    );
    const versions: SecretDescription['versions'] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.call(secretId, (client, sdk) =>
        // Deprecated (unlabelled) versions too: compensation may put AWSPREVIOUS back on one.
        client.send(
          new sdk.ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true, NextToken: nextToken }),
        ),
      );
      for (const v of page.Versions ?? []) {
        if (v.VersionId)
          versions.push({ versionId: v.VersionId, stages: v.VersionStages ?? [], createdAt: v.CreatedDate });
      }
      nextToken = page.NextToken;
    } while (nextToken);
    if (described.DeletedDate) {
      throw new StoreRejectedError(secretId, `is scheduled for deletion in ${this.description}`);
    }
    const tags = Object.fromEntries((described.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
    return { secretId, arn: described.ARN, versions, tags };
  }

  async getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined> {
    try {
      const out = await this.call(secretId, (client, sdk) =>
        client.send(new sdk.GetSecretValueCommand({ SecretId: secretId, VersionStage: stage })),
      );
      return this.toStored(secretId, out);
    } catch (error) {
      // "Not found" is also the answer for a label no version holds: tell the two apart.
      if (error instanceof SecretNotFoundError) {
        const description = await this.describe(secretId);
        if (!versionWithStage(description, stage)) return undefined;
      }
      throw error;
    }
  }

  async getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined> {
    const read = async () =>
      this.toStored(
        secretId,
        await this.call(secretId, (client, sdk) =>
          client.send(new sdk.GetSecretValueCommand({ SecretId: secretId, VersionId: versionId })),
        ),
      );
    try {
      return await read();
    } catch (error) {
      if (!(error instanceof SecretNotFoundError)) throw error;
      // Not found: the version, or the secret (describe says which, and throws for a secret that is gone).
      const description = await this.describe(secretId);
      if (!description.versions.some((v) => v.versionId === versionId)) return undefined;
      // Made between the two calls (another worker putting the same version): it is there now.
      return read();
    }
  }

  async putPending(secretId: string, token: string, value: string): Promise<void> {
    const existing = await this.getByVersion(secretId, token);
    if (existing) {
      if (existing.value !== value) {
        throw new StoreConflictError(secretId, `version ${token} already exists with another value`);
      }
      if (!existing.stages.includes(Stage.pending)) await this.moveStage(secretId, Stage.pending, token);
      return;
    }
    await this.call(secretId, (client, sdk) =>
      client.send(
        new sdk.PutSecretValueCommand({
          SecretId: secretId,
          ClientRequestToken: token,
          SecretString: value,
          VersionStages: [Stage.pending],
        }),
      ),
    );
  }

  async moveStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    await this.#changeStage(secretId, (description) => {
      if (!description.versions.some((v) => v.versionId === versionId)) {
        throw new StoreConflictError(secretId, `cannot move ${stage} to version ${versionId}: no such version`);
      }
      const holder = versionWithStage(description, stage);
      if (holder === versionId) return undefined;
      return { VersionStage: stage, MoveToVersionId: versionId, RemoveFromVersionId: holder };
    });
  }

  async removeStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    await this.#changeStage(secretId, (description) =>
      versionWithStage(description, stage) === versionId
        ? { VersionStage: stage, RemoveFromVersionId: versionId }
        : undefined,
    );
  }

  /**
   * One label change, decided on a fresh description. `RemoveFromVersionId` is AWS's check-and-set: the request
   * fails when the label has left that version meanwhile (another worker moved it), and the change is decided again
   * on what the store now says, so two workers racing both see their change made, once.
   */
  async #changeStage(
    secretId: string,
    decide: (
      description: SecretDescription,
    ) => { VersionStage: Stage; MoveToVersionId?: string; RemoveFromVersionId?: string } | undefined,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const change = decide(await this.describe(secretId));
      if (!change) return;
      try {
        await this.call(secretId, (client, sdk) =>
          client.send(new sdk.UpdateSecretVersionStageCommand({ SecretId: secretId, ...change })),
        );
        return;
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= MAX_STAGE_ATTEMPTS) throw error;
      }
    }
  }

  private toStored(
    secretId: string,
    out: { VersionId?: string; VersionStages?: string[]; SecretString?: string },
  ): StoredValue {
    if (out.SecretString === undefined || !out.VersionId) {
      throw new StoreConflictError(secretId, 'has no SecretString (binary secrets are not rotated by rotor)');
    }
    return { versionId: out.VersionId, stages: out.VersionStages ?? [], value: out.SecretString };
  }

  /**
   * Sends one request, loading the AWS SDK and making the client on the first (an application that never reads
   * from AWS never loads the SDK), and maps AWS errors to rotor's typed errors. AWS messages name resources, never
   * secret values.
   */
  private async call<T>(secretId: string, send: (client: SecretsManagerClient, sdk: Sdk) => Promise<T>): Promise<T> {
    const sdk = loadSecretsManagerSdk();
    this.#client ??= new sdk.SecretsManagerClient(this.#clientConfig());
    try {
      return await send(this.#client, sdk);
    } catch (error) {
      throw this.translate(secretId, error, sdk);
    }
  }

  #clientConfig(): SecretsManagerClientConfig {
    return {
      maxAttempts: this.#options.maxAttempts ?? 2,
      requestHandler: {
        requestTimeout: this.#options.requestTimeoutMs ?? 5000,
        connectionTimeout: 3000,
        throwOnRequestTimeout: true,
      },
    };
  }

  private translate(secretId: string, error: unknown, sdk: Sdk): Error {
    if (error instanceof RotorError) return error;
    if (error instanceof sdk.SecretsManagerServiceException) {
      switch (error.name) {
        case 'ResourceNotFoundException':
          return new SecretNotFoundError(secretId, this.description);
        case 'AccessDeniedException':
        case 'UnrecognizedClientException':
        case 'InvalidSignatureException':
        case 'ExpiredTokenException':
          return new StoreRejectedError(
            secretId,
            `${this.description} refused access (${error.name}): check the worker's AWS credentials`,
          );
        case 'InvalidRequestException':
        case 'InvalidParameterException':
        case 'ResourceExistsException':
        case 'ValidationException':
          return new StoreConflictError(
            secretId,
            `${this.description} rejected the request (${error.name}): ${error.message}`,
          );
        case 'DecryptionFailure':
          return new StoreRejectedError(
            secretId,
            `${this.description} could not decrypt it (check the KMS key policy)`,
          );
        default:
          break;
      }
      const status = error.$metadata?.httpStatusCode ?? 0;
      if (
        status >= 400 &&
        status < 500 &&
        error.name !== 'ThrottlingException' &&
        error.name !== 'LimitExceededException'
      ) {
        return new StoreRejectedError(secretId, `${this.description} rejected the request (${error.name})`);
      }
    }
    const name = error instanceof Error ? error.name : 'Error';
    const message = error instanceof Error ? error.message : String(error);
    return new UnavailableError(secretId, `${this.description} did not answer (${name}: ${message})`, { cause: error });
  }
}
