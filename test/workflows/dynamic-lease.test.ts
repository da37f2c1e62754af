import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEASE_NAMES, leaseWorkflowId, type LeaseView } from '../../packages/rotor/src/shared/lease';
import { dynamicLease } from '../../packages/rotor/src/workflows';
import { renewLeadMs } from '../../packages/rotor/src/workflows/dynamic-lease';
import { uniqueName } from '../helpers/env';
import { fakeActivities, type Recorded } from '../helpers/fake-activities';
import { timeSkipping } from '../helpers/time-skipping';

/*
 * A lease's life on the time-skipping server, its steps faked (fake-activities.ts: TTL 60 s, maximum 180 s, the
 * instance renews every 20 s, times out after 80 s, a new login 60 s before the maximum).
 */

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  ({ env, bundle } = await timeSkipping());
});

afterAll(async () => {
  await env?.teardown();
});

const OWNER = 'apps';

async function withLease<T>(
  fakes: Recorded,
  body: (handle: WorkflowHandle<typeof dynamicLease>) => Promise<T>,
): Promise<T> {
  const taskQueue = uniqueName('lease');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: fakes.activities,
  });
  const leaseId = crypto.randomUUID();
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(dynamicLease, {
      workflowId: leaseWorkflowId(leaseId),
      taskQueue,
      args: [{ secretId: 'prod/db/orders-leased', leaseId, owner: OWNER }],
    });
    return body(handle);
  });
}

const renew = (handle: WorkflowHandle<typeof dynamicLease>, owner = OWNER) =>
  handle.executeUpdate<LeaseView, [{ owner: string }]>(LEASE_NAMES.renew, { args: [{ owner }] });

/** The lease steps called, as `<step> <generation or login>`, in order. */
function steps(fakes: Recorded): string[] {
  return fakes.calls.flatMap((c) => {
    const input = c.input as { generation?: number; username?: string };
    if (c.name === 'issueLeaseCredential') return [`issue ${input.generation}`];
    if (c.name === 'renewLeaseCredential') return [`renew ${input.username?.slice(-1)}`];
    if (c.name === 'revokeLeaseCredential') return [`revoke ${input.username?.slice(-1)}`];
    return [];
  });
}

describe('a lease', () => {
  it('leaves a third of the TTL at a renewal, half of a short one (30 s at most)', () => {
    expect(renewLeadMs(6_000)).toBe(3_000);
    expect(renewLeadMs(60_000)).toBe(30_000);
    expect(renewLeadMs(90_000)).toBe(30_000);
    expect(renewLeadMs(3_600_000)).toBe(1_200_000);
  });

  it('renews its login with half of a short TTL left, replaces it before its maximum, revokes each one once', async () => {
    const fakes = fakeActivities();
    await withLease(fakes, async (handle) => {
      expect(await renew(handle)).toMatchObject({ generation: 0, ended: false, liveLogins: 1 });
      const seen: number[] = [];
      // The instance renews every 20 s for 400 s: two replacements.
      for (let t = 0; t < 400; t += 20) {
        await env.sleep(20_000);
        seen.push((await renew(handle)).generation!);
      }
      // A new login every 120 s (the 180 s maximum less the 60 s lead): four in 400 s.
      expect(new Set(seen)).toEqual(new Set([0, 1, 2, 3]));
      await handle.signal(LEASE_NAMES.release, { owner: OWNER });
      expect(await handle.result()).toMatchObject({ ended: true, liveLogins: 0 });
    });
    const order = steps(fakes);
    // Each login is revoked exactly once, after the next one was issued (the instance moved in between).
    for (const n of [0, 1, 2, 3]) expect(order.filter((s) => s === `revoke ${n}`)).toHaveLength(1);
    for (const n of [0, 1, 2]) expect(order.indexOf(`revoke ${n}`)).toBeGreaterThan(order.indexOf(`issue ${n + 1}`));
    expect(order.filter((s) => s.startsWith('issue'))).toEqual(['issue 0', 'issue 1', 'issue 2', 'issue 3']);
    // Renewed between issues (with half of the 60 s TTL left, and to the maximum before a replacement).
    expect(order.slice(0, order.indexOf('issue 1'))).toContain('renew 0');
    const first = (name: string) => fakes.calls.find((c) => c.name === name)!.input as { expiresAtMs: number };
    // The first renewal came 30 s after the issue (renewLeadMs: half of a short TTL), not at two thirds (40 s).
    const moved = first('renewLeaseCredential').expiresAtMs - first('issueLeaseCredential').expiresAtMs;
    expect(moved).toBeGreaterThanOrEqual(30_000);
    expect(moved).toBeLessThan(31_000);
  });

  it('ends when its instance stops renewing: every login revoked after four missed renewals', async () => {
    const fakes = fakeActivities();
    await withLease(fakes, async (handle) => {
      await renew(handle);
      expect(await handle.result()).toMatchObject({ ended: true, liveLogins: 0 });
    });
    // Renewed at 30 s and 60 s while it waited for the instance, ended at 80 s.
    expect(steps(fakes)).toEqual(['issue 0', 'renew 0', 'renew 0', 'revoke 0']);
  });

  it("refuses another holder's renewal and ignores its release", async () => {
    const fakes = fakeActivities();
    await withLease(fakes, async (handle) => {
      await renew(handle);
      await expect(renew(handle, 'intruder')).rejects.toThrow(WorkflowUpdateFailedError);
      await handle.signal(LEASE_NAMES.release, { owner: 'intruder' });
      expect((await handle.query<LeaseView>(LEASE_NAMES.query)).ended).toBe(false);
      await handle.signal(LEASE_NAMES.release, { owner: OWNER });
      expect(await handle.result()).toMatchObject({ ended: true });
    });
  });

  it('replaces a login dropped behind its back at the next renewal', async () => {
    let renewals = 0;
    const fakes = fakeActivities({
      renewLeaseCredential: async () => ({ attempt: 1, gone: renewals++ === 0 }),
    });
    await withLease(fakes, async (handle) => {
      await renew(handle);
      await env.sleep(20_000);
      await renew(handle);
      await env.sleep(30_000);
      expect((await renew(handle)).generation).toBe(1);
      await handle.signal(LEASE_NAMES.release, { owner: OWNER });
      await handle.result();
    });
    expect(steps(fakes).slice(0, 3)).toEqual(['issue 0', 'renew 0', 'issue 1']);
  });

  it('a lease whose step fails for good revokes its logins before it fails', async () => {
    const fakes = fakeActivities({
      renewLeaseCredential: async () => {
        throw ApplicationFailure.create({ type: 'RotorTargetRejected', message: 'refused', nonRetryable: true });
      },
    });
    await withLease(fakes, async (handle) => {
      await renew(handle);
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    });
    expect(steps(fakes)).toEqual(['issue 0', 'renew 0', 'revoke 0']);
  });
});
