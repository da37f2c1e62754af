import { randomUUID } from 'node:crypto';
import { Stage } from '../stages';
import { SecretNotFoundError, StoreConflictError } from '../errors';
import type { SecretDescription, SecretStore, StoredValue } from './secret-store';

interface Version {
  versionId: string;
  value: string;
  stages: Set<string>;
  createdAt: Date;
}

interface Secret {
  arn: string;
  versions: Version[];
  tags: Record<string, string>;
}

/**
 * A SecretStore in memory with AWS Secrets Manager's label semantics: the reference fake of the contract, checked
 * by the same contract tests as the AWS store. Labels move as AWS moves them: putting a version with AWSPENDING
 * takes the label from its holder, and moving AWSCURRENT makes the version that had it AWSPREVIOUS. For tests and
 * for trying rotors without a cloud; it keeps nothing across restarts.
 *
 * @example
 *   const store = new InMemorySecretStore();
 *   store.create('app/db', JSON.stringify({ engine: 'postgres', host, port, username, password }));
 *   const current = await store.getByStage('app/db', 'AWSCURRENT');
 */
export class InMemorySecretStore implements SecretStore {
  readonly description = 'the in-memory secret store';
  readonly #secrets = new Map<string, Secret>();
  /** Calls by operation, for tests and the bench: read, describe, write, stage move. */
  readonly calls = { read: 0, describe: 0, write: 0, stageMove: 0 };

  /** Creates a secret whose first version holds AWSCURRENT; returns that version's id. */
  create(secretId: string, value: string, options: { tags?: Record<string, string>; versionId?: string } = {}): string {
    if (this.#secrets.has(secretId)) throw new StoreConflictError(secretId, 'already exists');
    const versionId = options.versionId ?? randomUUID();
    this.#secrets.set(secretId, {
      arn: `arn:aws:secretsmanager:local:000000000000:secret:${secretId}`,
      versions: [{ versionId, value, stages: new Set([Stage.current]), createdAt: new Date() }],
      tags: { ...options.tags },
    });
    return versionId;
  }

  /** Sets tags on a secret, as TagResource does. */
  tag(secretId: string, tags: Record<string, string>): void {
    Object.assign(this.#secret(secretId).tags, tags);
  }

  /** Writes a version with the given labels as a third party would (another rotation tool, a person): no checks. */
  putVersion(secretId: string, versionId: string, value: string, stages: Stage[]): void {
    const secret = this.#secret(secretId);
    for (const stage of stages) this.#detach(secret, stage);
    secret.versions.push({ versionId, value, stages: new Set(stages), createdAt: new Date() });
  }

  async describe(secretId: string): Promise<SecretDescription> {
    this.calls.describe++;
    const secret = this.#secret(secretId);
    return {
      secretId,
      arn: secret.arn,
      versions: secret.versions.map((v) => ({ versionId: v.versionId, stages: [...v.stages], createdAt: v.createdAt })),
      tags: { ...secret.tags },
    };
  }

  async getByStage(secretId: string, stage: Stage): Promise<StoredValue | undefined> {
    this.calls.read++;
    const version = this.#secret(secretId).versions.find((v) => v.stages.has(stage));
    return version && stored(version);
  }

  async getByVersion(secretId: string, versionId: string): Promise<StoredValue | undefined> {
    this.calls.read++;
    const version = this.#secret(secretId).versions.find((v) => v.versionId === versionId);
    return version && stored(version);
  }

  async putPending(secretId: string, token: string, value: string): Promise<void> {
    const secret = this.#secret(secretId);
    const existing = secret.versions.find((v) => v.versionId === token);
    if (existing) {
      if (existing.value !== value)
        throw new StoreConflictError(secretId, `version ${token} already exists with another value`);
      if (!existing.stages.has(Stage.pending)) await this.moveStage(secretId, Stage.pending, token);
      return;
    }
    this.calls.write++;
    this.#detach(secret, Stage.pending);
    secret.versions.push({ versionId: token, value, stages: new Set([Stage.pending]), createdAt: new Date() });
  }

  async moveStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    const secret = this.#secret(secretId);
    const target = secret.versions.find((v) => v.versionId === versionId);
    if (!target)
      throw new StoreConflictError(secretId, `cannot move ${stage} to version ${versionId}: no such version`);
    if (target.stages.has(stage)) return;
    this.calls.stageMove++;
    const holder = this.#detach(secret, stage);
    target.stages.add(stage);
    if (stage === Stage.current && holder) {
      this.#detach(secret, Stage.previous);
      holder.stages.add(Stage.previous);
    }
  }

  async removeStage(secretId: string, stage: Stage, versionId: string): Promise<void> {
    const version = this.#secret(secretId).versions.find((v) => v.versionId === versionId);
    if (!version?.stages.has(stage)) return;
    if (stage === Stage.current)
      throw new StoreConflictError(secretId, `${Stage.current} cannot be removed, only moved`);
    this.calls.stageMove++;
    version.stages.delete(stage);
  }

  #secret(secretId: string): Secret {
    const secret = this.#secrets.get(secretId) ?? [...this.#secrets.values()].find((s) => s.arn === secretId);
    if (!secret) throw new SecretNotFoundError(secretId, this.description);
    return secret;
  }

  /** Takes `stage` from the version holding it, and returns that version. */
  #detach(secret: Secret, stage: string): Version | undefined {
    const holder = secret.versions.find((v) => v.stages.has(stage));
    holder?.stages.delete(stage);
    return holder;
  }
}

function stored(version: Version): StoredValue {
  return { versionId: version.versionId, stages: [...version.stages], value: version.value };
}
