import { secretStoreContract } from '../../packages/consumers/test/contract/secret-store';
import { uniqueName } from '../helpers/env';
import { describe, expect, it } from 'vitest';
import { BAO_MOUNT, baoAdmin, baoStore, createBaoSecret, kvPath } from '../helpers/openbao';
import { stackEnv } from '../helpers/env';
import { lossyProxy } from '../helpers/lossy-proxy';

// Port 1 (tcpmux) answers on no machine this runs on: a store that does not answer.
const closedPort = 1;

secretStoreContract('OpenBao KV v2', () => ({
  store: baoStore(),
  second: baoStore(),
  arnPattern: new RegExp(`^bao:${BAO_MOUNT}/contract/`),
  unreachable: baoStore({ address: `http://127.0.0.1:${closedPort}` }),
  async lossy() {
    const proxy = await lossyProxy(stackEnv('BAO_ADDR'));
    return {
      store: baoStore({ address: proxy.url }),
      loseAnswerOfWrite: (n) => proxy.loseAnswerOfWrite(n),
      get lost() {
        return proxy.lost;
      },
      close: () => proxy.close(),
    };
  },
  create: createBaoSecret,
  uniqueId: (marker) => `bao:${BAO_MOUNT}/${uniqueName(`contract/${marker}`)}`,
}));

describe('OpenBao KV v2: a worker that died between a version and its labels', () => {
  it('the retried putPending claims the version it wrote instead of writing a second; another value is not claimed', async () => {
    const store = baoStore();
    const id = `bao:${BAO_MOUNT}/${uniqueName('contract/orphan')}`;
    const v1 = await createBaoSecret(id, { n: 1 });
    // What putPending did before the crash: AWSCURRENT written down, then the new version written; its labels never.
    await baoAdmin('PATCH', `${BAO_MOUNT}/metadata/${kvPath(id)}`, {
      custom_metadata: { 'rotor-label:AWSCURRENT': v1 },
    });
    await baoAdmin('POST', `${BAO_MOUNT}/data/${kvPath(id)}`, { options: { cas: 1 }, data: { n: 2 } });
    const token = crypto.randomUUID();
    await store.putPending(id, token, '{"n":2}');
    const d = await store.describe(id);
    expect(d.versions.map((v) => [v.versionId, v.stages])).toEqual([
      [v1, ['AWSCURRENT']],
      [token, ['AWSPENDING']],
    ]);
    // An unclaimed latest version with another value is someone else's: a new version is written beside it.
    await baoAdmin('POST', `${BAO_MOUNT}/data/${kvPath(id)}`, { options: { cas: 2 }, data: { n: 3 } });
    const other = crypto.randomUUID();
    await store.putPending(id, other, '{"n":4}');
    expect((await store.getByStage(id, 'AWSPENDING'))?.value).toBe('{"n":4}');
    expect((await store.describe(id)).versions.map((v) => v.versionId)).toEqual([v1, token, '3', other]);
  });

  it('refuses a value that is not a JSON object, and an id outside its mounts, changing nothing', async () => {
    const store = baoStore();
    const id = `bao:${BAO_MOUNT}/${uniqueName('contract/shape')}`;
    await createBaoSecret(id, { n: 1 });
    await expect(store.putPending(id, crypto.randomUUID(), '"a string"')).rejects.toThrow(/JSON object/);
    await expect(store.describe('bao:other/x')).rejects.toThrow(/the mount one of secret/);
    await expect(store.describe(`bao:${BAO_MOUNT}/a/../b`)).rejects.toThrow(/not a KV path/);
    expect((await store.describe(id)).versions).toHaveLength(1);
  });
});
