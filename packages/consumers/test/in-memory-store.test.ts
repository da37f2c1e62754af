import { InMemorySecretStore } from '../src/stores/in-memory';
import { secretStoreContract } from './contract/secret-store';

let n = 0;
secretStoreContract('in memory', () => {
  const store = new InMemorySecretStore();
  return {
    store,
    create: async (secretId, value, tags) => store.create(secretId, value, tags ? { tags } : {}),
    uniqueId: (marker) => `unit/${marker}-${++n}`,
    second: store,
    arnPattern: /^arn:aws:secretsmanager:/,
  };
});
