// rotor-consumers' build, loaded as an application on the oldest Node the package claims loads it
// (scripts/oldest-node.sh): nothing but the package at require, then each lazily loaded part when first used.
'use strict';
const assert = require('node:assert/strict');

const loaded = (name) => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${name}/`));
const lazy = ['jose', 'zod', '@aws-sdk/client-secrets-manager', 'pg', 'mysql2'];

async function main() {
  const consumers = require('rotor-consumers');
  assert.deepEqual(lazy.filter(loaded), [], 'nothing loads at require');

  const { generateSigningKey } = require('rotor-consumers/credentials');
  const key = await generateSigningKey('ES256');
  const store = new consumers.InMemorySecretStore();
  const secret = {
    engine: 'jwt-signing-key',
    service: 'smoke',
    registry: 'unused',
    jwks: { maxAge: '5m', cooldown: '30s' },
    tokens: { maxLifetime: '15m' },
    keys: { current: key },
  };
  store.create('smoke/jwt', JSON.stringify(secret));
  const signer = new consumers.JwtSigner({ cache: new consumers.SecretCache({ store }), secretId: 'smoke/jwt' });
  const verifier = new consumers.JwtVerifier({ jwks: { keys: [key.publicJwk] } });
  const verdict = await verifier.verify(await signer.sign({ sub: 'smoke' }));
  assert.equal(verdict.ok, true, 'a token signed with the current key verifies');
  assert.deepEqual(['jose', 'zod'].filter(loaded), ['zod'], 'zod by require; jose by import()');

  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = process.env.AWS_SECRET_ACCESS_KEY = 'smoke';
  const aws = new consumers.AwsSecretsManagerStore({ maxAttempts: 1, requestTimeoutMs: 1000 });
  assert.equal(loaded('@aws-sdk/client-secrets-manager'), false, 'a store loads its SDK with its first request');
  process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = 'http://127.0.0.1:9';
  await assert.rejects(aws.describe('smoke'), (error) => error.type === consumers.ErrorType.Unavailable);
  assert.equal(loaded('@aws-sdk/client-secrets-manager'), true);

  const cache = new consumers.SecretCache({ store });
  consumers.createRotatingPgPool({ cache, secretId: 'smoke/db' });
  assert.deepEqual(['pg', 'mysql2'].filter(loaded), ['pg'], 'pg with the first pg pool');
  let mysql2Installed = true;
  try {
    require.resolve('mysql2');
  } catch {
    mysql2Installed = false;
  }
  if (mysql2Installed) {
    consumers.createRotatingMysqlPool({ cache, secretId: 'smoke/db' });
    assert.equal(loaded('mysql2'), true);
  } else {
    assert.throws(
      () => consumers.createRotatingMysqlPool({ cache, secretId: 'smoke/db' }),
      /createRotatingMysqlPool needs the mysql2 package: npm install mysql2/,
    );
    process.stdout.write('mysql2 is not installed: createRotatingMysqlPool names it\n');
  }
  process.stdout.write(`rotor-consumers' build works on Node ${process.versions.node}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
