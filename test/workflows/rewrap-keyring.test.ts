import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RewrapBatchInput } from '../../packages/rotor/src/shared/rewrap';
import { rewrapKeyring, pauseRewrapUpdate, resumeRewrapUpdate } from '../../packages/rotor/src/workflows';
import { uniqueName } from '../helpers/env';
import { fakeActivities } from '../helpers/fake-activities';
import { timeSkipping } from '../helpers/time-skipping';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
});

afterAll(async () => {
  await env?.teardown();
});

/** A table of `rows` rows under k1 that the fake batches move to `primary(batch)`, `limit` at a time. */
function table(rows: number, primary: (batch: number) => string = () => 'k2') {
  let moved = 0;
  let batches = 0;
  const calls: RewrapBatchInput[] = [];
  const fakes = fakeActivities({
    rewrapBatch: async (input) => {
      calls.push(input);
      const after = Number(input.afterKey ?? 0);
      const page = Math.max(0, Math.min(input.limit, rows - after));
      moved += page;
      return {
        attempt: 1,
        primaryId: primary(batches++),
        scanned: page,
        rewrapped: page,
        changedMeanwhile: 0,
        refused: {},
        refusedKeys: [],
        ...(page > 0 ? { lastKey: String(after + page) } : {}),
        done: page < input.limit,
        elapsedMs: 20,
      };
    },
    countKeyringRows: async () => ({
      attempt: 1,
      primaryId: 'k2',
      rows: { k1: rows - moved, k2: moved },
      keys: [],
    }),
  });
  return { fakes, calls };
}

async function run(
  fakes: ReturnType<typeof fakeActivities>,
  work: (workflowId: string) => Promise<void> = async () => undefined,
) {
  const taskQueue = uniqueName('wf');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: fakes.activities,
  });
  const workflowId = uniqueName('rotor/rewrap/it');
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(rewrapKeyring, {
      workflowId,
      taskQueue,
      args: [{ secretId: 'app/keyring', batchSize: 100, ratePerSecond: 1000 }],
    });
    await work(workflowId);
    return { result: await handle.result() };
  });
}

describe('rewrapKeyring', () => {
  it('pages through every row, continues as new before its history grows large, then retires by the final count', async () => {
    const { fakes, calls } = table(40_000);
    const { result } = await run(fakes);
    expect(result).toMatchObject({ phase: 'done', rewrapped: 40_000, outcome: 'disabled-1-removed-0' });
    expect(result.run).toBeGreaterThan(1);
    // Each page starts where the last one ended, across runs.
    expect(calls.map((c) => c.afterKey ?? '0').slice(0, 3)).toEqual(['0', '100', '200']);
    expect(new Set(calls.map((c) => c.afterKey)).size).toBe(calls.length);
    expect(fakes.names()).toContain('retireKeyringKeys');
  });

  it('retires nothing when the primary changed during the re-wrap', async () => {
    const { fakes } = table(1_000, (batch) => (batch < 3 ? 'k2' : 'k3'));
    const { result } = await run(fakes);
    expect(result).toMatchObject({ phase: 'done', outcome: 'primary-changed-keys-kept', disabled: [] });
    expect(fakes.names()).not.toContain('retireKeyringKeys');
  });

  it('reads no page while paused, and goes on when resumed', async () => {
    const { fakes, calls } = table(5_000);
    const { result } = await run(fakes, async (workflowId) => {
      const handle = env.client.workflow.getHandle(workflowId);
      const paused = await handle.executeUpdate(pauseRewrapUpdate, { args: [{ actor: 'ops' }] });
      const before = calls.length;
      await env.sleep(60_000);
      expect(calls.length - before).toBeLessThanOrEqual(1); // the batch in flight, if any
      expect(paused.secretId).toBe('app/keyring');
      await handle.executeUpdate(resumeRewrapUpdate, { args: [{ actor: 'ops' }] });
    });
    expect(result).toMatchObject({ phase: 'done', rewrapped: 5_000 });
    const kinds = fakes.auditEvents().map((e) => `${e.kind}:${e.actor ?? ''}`);
    expect(kinds).toEqual(expect.arrayContaining(['rewrap-paused:ops', 'rewrap-resumed:ops']));
  });
});
