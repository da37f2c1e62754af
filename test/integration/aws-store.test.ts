import { randomUUID } from 'node:crypto';
import { CreateSecretCommand, SecretsManagerClient, TagResourceCommand } from '@aws-sdk/client-secrets-manager';
import { Stage } from 'rotor-consumers/core';
import { AwsSecretsManagerStore } from 'rotor-consumers/stores';
import { describe, expect, it } from 'vitest';
import { secretStoreContract } from '../../packages/consumers/test/contract/secret-store';
import { stackEnv, uniqueName } from '../helpers/env';
import { lossyProxy } from '../helpers/lossy-proxy';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Port 1 (tcpmux) answers on no machine this runs on: a store that does not answer.
const closedPort = 1;

secretStoreContract('AWS Secrets Manager (moto)', () => {
  const sm = new SecretsManagerClient({});
  return {
    store: new AwsSecretsManagerStore(),
    second: new AwsSecretsManagerStore(),
    arnPattern: /^arn:aws:secretsmanager:/,
    unreachable: new AwsSecretsManagerStore({
      client: new SecretsManagerClient({ endpoint: `http://127.0.0.1:${closedPort}`, maxAttempts: 1 }),
    }),
    async create(secretId, value, tags) {
      const out = await sm.send(new CreateSecretCommand({ Name: secretId, SecretString: value }));
      if (tags)
        await sm.send(
          new TagResourceCommand({
            SecretId: secretId,
            Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
      return out.VersionId!;
    },
    uniqueId: (marker) => uniqueName(`contract/${marker}`),
    async lossy() {
      const proxy = await lossyProxy(stackEnv('AWS_ENDPOINT_URL_SECRETS_MANAGER'));
      return {
        // One attempt per call: the SDK's own retries would hide the lost answer; the step's next attempt retries.
        store: new AwsSecretsManagerStore({
          client: new SecretsManagerClient({ endpoint: proxy.url, maxAttempts: 1 }),
        }),
        loseAnswerOfWrite: (n) => proxy.loseAnswerOfWrite(n),
        get lost() {
          return proxy.lost;
        },
        close: () => proxy.close(),
      };
    },
  };
});

describe('AWS Secrets Manager store, racing another worker', () => {
  it('reads a version another worker put between its read and its describe, rather than calling it missing', async () => {
    const sm = new SecretsManagerClient({});
    const id = uniqueName('contract/race-between');
    const v1 = (await sm.send(new CreateSecretCommand({ Name: id, SecretString: '{"n":1}' }))).VersionId!;
    const token = randomUUID();
    const other = new AwsSecretsManagerStore();
    // This store's client: right after its read of the version found nothing, the other worker's put lands.
    const client = new SecretsManagerClient({});
    const send = client.send.bind(client) as (command: unknown) => Promise<unknown>;
    let raced = false;
    client.send = (async (command: { constructor: { name: string } }) => {
      if (!raced && command.constructor.name === 'DescribeSecretCommand') {
        raced = true;
        await other.putPending(id, token, '{"n":2}');
      }
      return send(command);
    }) as unknown as typeof client.send;
    const store = new AwsSecretsManagerStore({ client });
    await store.putPending(id, token, '{"n":2}');
    expect(raced).toBe(true);
    expect((await store.getByStage(id, Stage.pending))?.versionId).toBe(token);
    expect((await store.getByStage(id, Stage.current))?.versionId).toBe(v1);
  });
});
