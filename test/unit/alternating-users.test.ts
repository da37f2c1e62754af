import { describe, expect, it } from 'vitest';
import { DEFAULT_PASSWORD_POLICY } from '../../packages/rotor/src/rotators/password-policy';
import {
  parsePostgresAlternatingSecret,
  partnerOf,
  postgresAlternatingUsers,
} from '../../packages/rotor/src/rotators/postgres/alternating-users';
import { parseMysqlAlternatingSecret } from '../../packages/rotor/src/rotators/mysql/alternating-users';
import { selectRotatorKind } from '../../packages/rotor/src/rotators/registry';
import { InvalidSecretError, UnsupportedEngineError } from 'rotor-consumers/core';

const PASSWORD = 'Alt-secret-value-1';
const secret = {
  engine: 'postgres',
  host: 'db',
  port: 5432,
  username: 'app',
  password: PASSWORD,
  dbname: 'app',
  masterarn: 'arn:aws:secretsmanager:us-east-1:1:secret:admin',
};
const raw = (o: object) => JSON.stringify(o);

describe('alternating users', () => {
  it('pairs name and name_clone', () => {
    expect(partnerOf('app')).toBe('app_clone');
    expect(partnerOf('app_clone')).toBe('app');
    expect(partnerOf('x"; --')).toBe('x"; --_clone');
  });

  it('makes the next version the other login with a new password, every other field kept', async () => {
    const next = JSON.parse(
      await postgresAlternatingUsers.nextValue(
        's',
        parsePostgresAlternatingSecret('s', raw(secret)),
        DEFAULT_PASSWORD_POLICY,
      ),
    );
    expect(next.username).toBe('app_clone');
    expect(next.password).not.toBe(PASSWORD);
    expect({ ...next, username: 'app', password: PASSWORD }).toEqual(secret);
  });

  it('checks the clone name fits before anything changes, and requires masterarn', () => {
    expect(() => parsePostgresAlternatingSecret('s', raw({ ...secret, username: 'a'.repeat(58) }))).toThrow(
      /too long to alternate/,
    );
    expect(() =>
      parsePostgresAlternatingSecret('s', raw({ ...secret, username: `${'a'.repeat(57)}_clone` })),
    ).not.toThrow();
    expect(() => parsePostgresAlternatingSecret('s', raw({ ...secret, masterarn: '' }))).toThrow(InvalidSecretError);
    expect(() =>
      parsePostgresAlternatingSecret('s', raw({ ...secret, host: undefined, masterarn: undefined })),
    ).toThrow(/host: is required; masterarn: is required/);
  });
});

describe('MySQL alternating users', () => {
  it('checks the clone name fits in 80 characters before anything changes', async () => {
    const mysql = { ...secret, engine: 'mariadb', port: 3306 };
    expect(() => parseMysqlAlternatingSecret('s', raw({ ...mysql, username: 'a'.repeat(75) }))).toThrow(
      /too long to alternate/,
    );
    expect(parseMysqlAlternatingSecret('s', raw({ ...mysql, username: 'a'.repeat(74) })).username).toHaveLength(74);
  });
});

describe('strategy selection', () => {
  it('follows AWS: masterarn means alternating users, its absence single-user', () => {
    expect(selectRotatorKind('s', raw(secret))).toBe('postgres-alternating-users');
    expect(selectRotatorKind('s', raw({ ...secret, masterarn: undefined }))).toBe('postgres-single-user');
  });

  it('lets the rotor:strategy tag override, and refuses choices that cannot work', () => {
    expect(selectRotatorKind('s', raw(secret), { 'rotor:strategy': 'single-user' })).toBe('postgres-single-user');
    expect(() =>
      selectRotatorKind('s', raw({ ...secret, masterarn: undefined }), { 'rotor:strategy': 'alternating-users' }),
    ).toThrow(/masterarn: is required/);
    expect(() => selectRotatorKind('s', raw(secret), { 'rotor:strategy': 'sometimes' })).toThrow(
      /is not single-user or alternating-users/,
    );
    expect(selectRotatorKind('s', raw({ ...secret, engine: 'mysql' }))).toBe('mysql-alternating-users');
    expect(() => selectRotatorKind('s', raw({ ...secret, engine: 'oracle' }))).toThrow(UnsupportedEngineError);
  });
});
