import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../src/errors';
import { InMemorySecretStore } from '../src/stores/in-memory';
import { StoreRouter } from '../src/stores/store-router';
import { storeNameOf } from '../src/secret-ids';

describe('StoreRouter', () => {
  it('sends an id that names a store there, and plain ids and ARNs to the default', async () => {
    const aws = new InMemorySecretStore();
    const bao = new InMemorySecretStore();
    aws.create('prod/db/app', '{"on":"aws"}');
    bao.create('bao:secret/prod/db/app', '{"on":"bao"}');
    const router = new StoreRouter({ aws, bao }, 'aws');
    expect((await router.getByStage('prod/db/app', 'AWSCURRENT'))?.value).toBe('{"on":"aws"}');
    expect((await router.getByStage('bao:secret/prod/db/app', 'AWSCURRENT'))?.value).toBe('{"on":"bao"}');
    expect(router.storeFor('arn:aws:secretsmanager:eu-west-1:1:secret:prod/db/app-AbCdEf')).toBe(aws);
  });

  it('refuses an id naming a store it does not have, and a default it does not have, naming the stores', () => {
    const router = new StoreRouter({ aws: new InMemorySecretStore() }, 'aws');
    expect(() => router.storeFor('vault:secret/x')).toThrow(InvalidInputError);
    expect(() => router.storeFor('vault:secret/x')).toThrow('names the store vault, which is not one of aws');
    expect(() => new StoreRouter({ aws: new InMemorySecretStore() }, 'bao')).toThrow('"bao" is not one of aws');
  });

  it('reads a store name only from a prefix of lower-case letters, digits and -', () => {
    expect(storeNameOf('bao:secret/a')).toBe('bao');
    expect(storeNameOf('arn:aws:secretsmanager:x')).toBeUndefined();
    expect(storeNameOf('prod/db:app')).toBeUndefined();
    expect(storeNameOf('Bao:secret/a')).toBeUndefined();
  });
});
