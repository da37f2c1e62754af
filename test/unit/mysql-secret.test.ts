import { describe, expect, it } from 'vitest';
import { mysqlSingleUser, parseMysqlSecret } from '../../packages/rotor/src/rotators/mysql/single-user';
import { DEFAULT_PASSWORD_POLICY } from '../../packages/rotor/src/rotators/password-policy';
import { selectRotatorKind } from '../../packages/rotor/src/rotators/registry';
import { InvalidSecretError } from 'rotor-consumers/core';

const PASSWORD = 'My-secret-value-1';
const valid = { engine: 'mysql', host: 'db.internal', port: 3306, username: 'app', password: PASSWORD, dbname: 'shop' };
const raw = (o: object) => JSON.stringify(o);

describe('parseMysqlSecret', () => {
  it("reads AWS's JSON shape for MySQL and MariaDB", () => {
    expect(parseMysqlSecret('s', raw(valid))).toMatchObject({
      host: 'db.internal',
      port: 3306,
      username: 'app',
      dbname: 'shop',
      ssl: undefined,
    });
    expect(parseMysqlSecret('s', raw({ engine: 'mariadb', host: 'h', username: 'u', password: 'p' }))).toMatchObject({
      port: 3306,
      dbname: undefined,
    });
    expect(parseMysqlSecret('s', raw({ ...valid, port: '3307', ssl: true }))).toMatchObject({ port: 3307, ssl: true });
  });

  it('reports every problem at once, by field, never with a value', () => {
    try {
      parseMysqlSecret(
        'prod/mysql',
        raw({ engine: 'mysql', port: PASSWORD, password: PASSWORD, username: 'u'.repeat(81) }),
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidSecretError);
      const e = error as InvalidSecretError;
      expect(e.problems.map((p) => p.split(':')[0]).sort()).toEqual(['host', 'port', 'username']);
      expect(e.message).toMatch(/username: must be at most 80 characters/);
      expect(e.message).not.toContain(PASSWORD);
    }
  });

  it('counts characters, not bytes, for the 80-character limit', () => {
    expect(parseMysqlSecret('s', raw({ ...valid, username: 'ü'.repeat(80) })).username).toHaveLength(80);
  });
});

describe('MySQL rotator selection and next value', () => {
  it('picks mysql-single-user for every MySQL-family engine', () => {
    for (const engine of ['mysql', 'mariadb', 'aurora-mysql', 'aurora'])
      expect(selectRotatorKind('s', raw({ ...valid, engine }))).toBe('mysql-single-user');
  });

  it('changes only the password', async () => {
    const next = JSON.parse(
      await mysqlSingleUser.nextValue('s', parseMysqlSecret('s', raw({ ...valid, extra: 1 })), DEFAULT_PASSWORD_POLICY),
    );
    expect(next.password).not.toBe(PASSWORD);
    expect({ ...next, password: PASSWORD }).toEqual({ ...valid, extra: 1 });
  });
});
