import { CreateSecretCommand, SecretsManagerClient, TagResourceCommand } from '@aws-sdk/client-secrets-manager';
import { AwsSecretsManagerStore } from 'rotor-consumers/stores';
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
