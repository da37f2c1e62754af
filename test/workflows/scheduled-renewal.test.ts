import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scheduledRotation } from '../../packages/rotor/src/workflows';
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

describe('scheduledRotation with a renewAt schedule (certificates)', () => {
  const HOUR = 3_600_000;

  async function scheduled(renewalWaitMs: number, expiring?: string) {
    const fakes = fakeActivities({
      renewalDue: async () => ({
        attempt: 1,
        outcome: 'lifetime',
        basis: 'lifetime',
        waitMs: renewalWaitMs,
        dueAt: new Date(Date.now() + renewalWaitMs).toISOString(),
        notAfter: new Date(Date.now() + 3 * renewalWaitMs).toISOString(),
        ...(expiring ? { expiring } : {}),
      }),
    });
    const taskQueue = uniqueName('wf');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: bundle,
      activities: fakes.activities,
    });
    const secretId = uniqueName('prod/tls/api');
    const startedAt = await env.currentTimeMs();
    const result = await worker.runUntil(
      env.client.workflow.execute(scheduledRotation, {
        workflowId: uniqueName('rotor/scheduled'),
        taskQueue,
        args: [
          {
            rotation: {
              secretId,
              graceMs: 0,
              maxStepAttempts: 2,
              reporting: { alerts: ['oncall'], stuckPhaseBudgetMs: 1_800_000 },
            },
            renewal: { renewAt: 2 / 3, checkEveryMs: 6 * HOUR },
          },
        ],
      }),
    );
    return { result, fakes, elapsedMs: (await env.currentTimeMs()) - startedAt };
  }

  it('ends not-due, starting no rotation, when the renewal is due after the next check', async () => {
    const { result, fakes } = await scheduled(7 * HOUR);
    expect(result).toMatchObject({ outcome: 'not-due', renewal: { basis: 'lifetime' } });
    expect(fakes.names()).toEqual(['renewalDue']);
  });

  it('alerts, then renews at once, when the renewal is overdue and the certificate near its end', async () => {
    const { result, fakes } = await scheduled(
      0,
      'the credential of prod/tls/api expires in 2h and has not been renewed',
    );
    expect(result).toMatchObject({ outcome: 'completed' });
    expect(fakes.alerts()).toMatchObject([
      {
        kind: 'certificate-expiring',
        message: 'the credential of prod/tls/api expires in 2h and has not been renewed',
      },
    ]);
    expect(fakes.auditEvents().map((e) => e.kind)).toContain('certificate-expiring');
  });

  it('waits on a durable timer until the renewal is due, then rotates', async () => {
    const { result, fakes, elapsedMs } = await scheduled(2 * HOUR);
    expect(result).toMatchObject({ outcome: 'completed', renewal: { basis: 'lifetime' } });
    expect(fakes.names().slice(0, 2)).toEqual(['renewalDue', 'prepareRotation']);
    expect(elapsedMs).toBeGreaterThanOrEqual(2 * HOUR);
  });
});
