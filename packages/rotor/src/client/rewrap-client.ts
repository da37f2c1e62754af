import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import { InvalidInputError, NotRotatingError } from 'rotor-consumers/core';
import { SearchAttribute } from '../shared/constants';
import { assertSecretId } from './rotation-client';
import { randomUUID } from 'node:crypto';
import { rewrapWorkflowId, type KeyringRows, type RewrapInput, type RewrapProgress } from '../shared/rewrap';
import {
  cancelRewrapUpdate,
  pauseRewrapUpdate,
  resumeRewrapUpdate,
  rewrapKeyring,
  keyringRows,
  rewrapProgressQuery,
} from '../workflows';

/**
 * Drives a keyring's re-wrap (`rotor rewrap`): start one (at most one per keyring), follow its progress, pause,
 * resume or cancel it. Everything it sends and receives is ids and counts.
 */
export class RewrapClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  /** Starts a re-wrap of `input.secretId`, or joins the one running. */
  async start(input: RewrapInput): Promise<{ workflowId: string; runId: string; started: boolean }> {
    assertSecretId(input.secretId);
    for (const [name, value, max] of [
      ['batch', input.batchSize, 5000],
      ['rate', input.ratePerSecond, 1_000_000],
      ['passes', input.maxPasses, 20],
    ] as const)
      if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= max))
        throw new InvalidInputError(`${name}: ${value} is not a whole number from 1 to ${max}`);
    const workflowId = rewrapWorkflowId(input.secretId);
    try {
      const handle = await this.client.workflow.start(rewrapKeyring, {
        workflowId,
        taskQueue: this.taskQueue,
        args: [input],
        staticSummary: `re-wrap ${input.secretId}`,
        workflowIdConflictPolicy: 'FAIL',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE',
        typedSearchAttributes: [{ key: SearchAttribute.secretId, value: input.secretId }],
      });
      return { workflowId, runId: handle.firstExecutionRunId, started: true };
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      const description = await this.client.workflow.getHandle(workflowId).describe();
      return { workflowId, runId: description.runId, started: false };
    }
  }

  /** The latest re-wrap's progress: live while it runs, its result once it ended; undefined when none ever ran. */
  async progress(secretId: string): Promise<RewrapProgress | undefined> {
    const handle = this.client.workflow.getHandle<typeof rewrapKeyring>(rewrapWorkflowId(secretId));
    try {
      const description = await handle.describe();
      if (description.status.name === 'RUNNING') return await handle.query(rewrapProgressQuery);
      if (description.status.name === 'COMPLETED') return await handle.result();
      const memo = description.memo?.rewrap as RewrapProgress | undefined;
      return memo ? { ...memo, outcome: description.status.name.toLowerCase() } : undefined;
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) return undefined;
      throw error;
    }
  }

  /** The keyring's keys (no material) and the rows each protects now, counted on a worker. */
  async keys(secretId: string): Promise<KeyringRows> {
    return this.client.workflow.execute(keyringRows, {
      workflowId: `rotor/keyring-rows/${secretId}/${randomUUID()}`,
      taskQueue: this.taskQueue,
      args: [{ secretId }],
      staticSummary: `count the rows under each key of ${secretId}`,
      workflowExecutionTimeout: '5m',
    });
  }

  /** Waits for the re-wrap to end, calling `onProgress` as it goes. */
  async wait(secretId: string, onProgress?: (p: RewrapProgress) => void, pollMs = 1000): Promise<RewrapProgress> {
    const handle = this.client.workflow.getHandle<typeof rewrapKeyring>(rewrapWorkflowId(secretId));
    const result = handle.result();
    let ended = false;
    void result.finally(() => (ended = true)).catch(() => undefined);
    while (!ended) {
      await new Promise((r) => setTimeout(r, pollMs));
      if (ended || !onProgress) continue;
      try {
        onProgress(await handle.query(rewrapProgressQuery));
      } catch {
        // Between runs (continue-as-new) or just ended: the next poll tells.
      }
    }
    return result;
  }

  async pause(secretId: string, actor?: string): Promise<RewrapProgress> {
    return this.request(secretId, (h) => h.executeUpdate(pauseRewrapUpdate, { args: [actor ? { actor } : {}] }));
  }

  async resume(secretId: string, actor?: string): Promise<RewrapProgress> {
    return this.request(secretId, (h) => h.executeUpdate(resumeRewrapUpdate, { args: [actor ? { actor } : {}] }));
  }

  async cancel(secretId: string, actor?: string): Promise<RewrapProgress> {
    return this.request(secretId, (h) => h.executeUpdate(cancelRewrapUpdate, { args: [actor ? { actor } : {}] }));
  }

  private async request(
    secretId: string,
    send: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<RewrapProgress>,
  ): Promise<RewrapProgress> {
    const handle = this.client.workflow.getHandle(rewrapWorkflowId(secretId));
    try {
      if ((await handle.describe()).status.name !== 'RUNNING')
        throw new NotRotatingError(secretId, 'no re-wrap is running');
      return await send(handle);
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) throw new NotRotatingError(secretId, 'no re-wrap ever ran');
      if (error instanceof WorkflowUpdateFailedError)
        throw new NotRotatingError(secretId, `refused: ${error.cause?.message ?? error.message}`);
      throw error;
    }
  }
}
