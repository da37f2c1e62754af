import { CreateSecretCommand, SecretsManagerClient, TagResourceCommand } from '@aws-sdk/client-secrets-manager';
import { AwsSecretsManagerStore } from 'rotor-consumers/stores';
import { secretStoreContract } from '../../packages/consumers/test/contract/secret-store';
import { uniqueName } from '../helpers/env';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

secretStoreContract('AWS Secrets Manager (moto)', () => {
  const sm = new SecretsManagerClient({});
  return {
    store: new AwsSecretsManagerStore(),
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
  };
});
