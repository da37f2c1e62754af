import { describe, expect, it } from 'vitest';
import { redisAclRotator } from '../../examples/redis-acl/redis-acl-rotator';
import { rotators, selectRotatorKind, withRotators } from '../../packages/rotor/src/rotators';
import { InvalidInputError, InvalidSecretError, UnsupportedEngineError } from 'rotor-consumers/core';

const raw = (value: object) => JSON.stringify(value);
const redisSecret = { engine: 'redis', host: 'h', port: 6379, username: 'app', password: 'x', masterarn: 'm' };

describe("a registry with a team's own rotators", () => {
  it('adds rotators by kind, chosen by the engine they claim or by the rotor:rotator tag', () => {
    const registry = withRotators(redisAclRotator);
    expect(Object.keys(registry)).toEqual([...Object.keys(rotators), 'redis-acl']);
    expect(selectRotatorKind('s', raw(redisSecret), {}, registry)).toBe('redis-acl');
    expect(
      selectRotatorKind(
        's',
        raw({ engine: 'postgres', host: 'h', username: 'u', password: 'p' }),
        { 'rotor:rotator': 'redis-acl' },
        registry,
      ),
    ).toBe('redis-acl');
    expect(
      selectRotatorKind('s', raw({ engine: 'postgres', host: 'h', username: 'u', password: 'p' }), {}, registry),
    ).toBe('postgres-single-user');
  });

  it('refuses an engine no rotator claims, and a tag naming a rotator the worker does not run', () => {
    expect(() => selectRotatorKind('s', raw(redisSecret))).toThrow(UnsupportedEngineError);
    expect(() =>
      selectRotatorKind('s', raw(redisSecret), { 'rotor:rotator': 'memcached' }, withRotators(redisAclRotator)),
    ).toThrow(InvalidSecretError);
    expect(() =>
      selectRotatorKind('s', raw(redisSecret), { 'rotor:rotator': 'memcached' }, withRotators(redisAclRotator)),
    ).toThrow(/is not a rotator this worker runs/);
  });

  it('refuses bad kinds, replaced built-ins and two rotators claiming one engine', () => {
    expect(() => withRotators({ ...redisAclRotator, kind: 'Redis ACL' })).toThrow(InvalidInputError);
    expect(() => withRotators({ ...redisAclRotator, kind: 'postgres-single-user', engines: [] })).toThrow(
      /already registered/,
    );
    expect(() => withRotators({ ...redisAclRotator, engines: ['mysql'] })).toThrow(/belongs to a built-in rotator/);
    expect(() => withRotators(redisAclRotator, { ...redisAclRotator, kind: 'redis-acl-2' })).toThrow(
      /both claim engine redis/,
    );
  });

  it('the example parses its secret and refuses a bad one, naming the fields', () => {
    expect(redisAclRotator.parse('s', raw(redisSecret))).toMatchObject({ username: 'app', port: 6379 });
    expect(() => redisAclRotator.parse('s', raw({ ...redisSecret, username: 'a b', port: 0 }))).toThrow(
      /port: .*username: must be 1 to 64/s,
    );
  });
});
