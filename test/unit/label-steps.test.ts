import { MockActivityEnvironment } from '@temporalio/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { createRotationSteps } from '../../packages/rotor/src/activities';
import type { RotatorRegistry } from '../../packages/rotor/src/rotators/registry';
import { Stage } from '../../packages/rotor/src/shared/constants';
import { StoreConflictError } from 'rotor-consumers/core';
import type { PreparedRotation, StepInput } from '../../packages/rotor/src/shared/rotation';
import { InMemorySecretStore } from 'rotor-consumers/stores';
import { fakeTarget, type FakeSecret } from '../helpers/fake-target';

/**
 * The engine's label logic (finish, compensation, rollback) on the reference store, with a target in memory: the
 * same activities the worker runs, in Temporal's mock activity context.
 */
const SECRET = 'unit/app';
const TOKEN = '11111111-1111-4111-8111-111111111111';
let store: InMemorySecretStore;
let target: ReturnType<typeof fakeTarget>;
let steps: ReturnType<typeof createRotationSteps>;
let env: MockActivityEnvironment;
let current: string;
let previous: string;

const value = (password: string) => JSON.stringify({ user: 'app', password } satisfies FakeSecret);

async function labels(): Promise<Record<string, string | undefined>> {
  const d = await store.describe(SECRET);
  const at = (stage: string) => d.versions.find((v) => v.stages.includes(stage))?.versionId;
  return { current: at(Stage.current), pending: at(Stage.pending), previous: at(Stage.previous) };
}

function input(): StepInput {
  const prepared: PreparedRotation = {
    rotator: 'fake-single-user',
    currentVersionId: current,
    previousVersionId: previous,
  };
  return { secretId: SECRET, token: TOKEN, prepared };
}

/** prepare's view, then create, set, test: the target holds the new password, AWSPENDING is on the token. */
async function uptoTest(): Promise<void> {
  await env.run(steps.createPending, input());
  await env.run(steps.setPending, input());
  await env.run(steps.testPending, input());
}

beforeEach(async () => {
  store = new InMemorySecretStore();
  target = fakeTarget();
  steps = createRotationSteps({
    store,
    rotators: { 'fake-single-user': target.rotator } as unknown as RotatorRegistry,
  });
  env = new MockActivityEnvironment();
  // A secret rotated once before: AWSPREVIOUS on v0, AWSCURRENT on v1, the target holding v1's password.
  const v0 = store.create(SECRET, value('zero'));
  store.putVersion(SECRET, 'v1', value('one'), [Stage.current]);
  await store.moveStage(SECRET, Stage.previous, v0);
  target.passwords.set('app', 'one');
  [current, previous] = ['v1', v0];
});

describe('finish', () => {
  it('moves AWSCURRENT to the token, the old one becomes AWSPREVIOUS, AWSPENDING is gone; a re-run changes nothing', async () => {
    await uptoTest();
    expect(await env.run(steps.finishRotation, input())).toMatchObject({ outcome: 'finished' });
    expect(await labels()).toEqual({ current: TOKEN, pending: undefined, previous: current });
    expect(await env.run(steps.finishRotation, input())).toMatchObject({ outcome: 'already-finished' });
    expect(await labels()).toEqual({ current: TOKEN, pending: undefined, previous: current });
  });

  it('refuses when AWSCURRENT moved to another version during the rotation', async () => {
    await uptoTest();
    store.putVersion(SECRET, 'someone-else', value('x'), [Stage.current]);
    await expect(env.run(steps.finishRotation, input())).rejects.toMatchObject({
      type: new StoreConflictError(SECRET, '').type,
    });
  });
});

describe('compensation', () => {
  it('after set: the target takes the previous password back and the store ends exactly as before', async () => {
    await uptoTest();
    expect(target.passwords.get('app')).not.toBe('one');
    await env.run(steps.reinstate, { ...input(), versionId: current, mode: 'compensate' as const });
    expect(target.passwords.get('app')).toBe('one');
    expect(await labels()).toEqual({ current, pending: undefined, previous });
  });

  it('after finish (the result was lost): labels go back, AWSPREVIOUS included, and a re-run changes nothing', async () => {
    await uptoTest();
    await env.run(steps.finishRotation, input());
    for (let run = 0; run < 2; run++) {
      await env.run(steps.reinstate, { ...input(), versionId: current, mode: 'compensate' as const });
      expect(await labels()).toEqual({ current, pending: undefined, previous });
      expect(target.passwords.get('app')).toBe('one');
    }
  });

  it('when set never reached the target: nothing to undo there, the store is cleaned', async () => {
    await env.run(steps.createPending, input());
    const outcome = (await env.run(steps.reinstate, {
      ...input(),
      versionId: current,
      mode: 'compensate' as const,
    })) as { outcome?: string };
    expect(outcome.outcome).toBe('already-set');
    expect(await labels()).toEqual({ current, pending: undefined, previous });
  });
});

describe('rollback during grace', () => {
  it('makes the previous version current in the target and the store; the rolled-back one stays AWSPREVIOUS', async () => {
    await uptoTest();
    await env.run(steps.finishRotation, input());
    await env.run(steps.reinstate, { ...input(), versionId: current, mode: 'rollback' as const });
    expect(target.passwords.get('app')).toBe('one');
    expect(await labels()).toEqual({ current, pending: undefined, previous: TOKEN });
  });

  it('refuses to roll back over a version someone else made current meanwhile, changing nothing', async () => {
    await uptoTest();
    await env.run(steps.finishRotation, input());
    store.putVersion(SECRET, 'third', value('three'), [Stage.current]);
    const before = await labels();
    await expect(
      env.run(steps.reinstate, { ...input(), versionId: current, mode: 'rollback' as const }),
    ).rejects.toThrow(/during grace: rotor will not roll back over it/);
    expect(await labels()).toEqual(before);
  });
});
