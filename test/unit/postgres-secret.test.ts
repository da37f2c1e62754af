import { describe, expect, it } from 'vitest';
import { parsePostgresSecret, postgresSingleUser } from '../../packages/rotor/src/rotators/postgres/single-user';
import { selectRotatorKind } from '../../packages/rotor/src/rotators/registry';
import { DEFAULT_PASSWORD_POLICY } from '../../packages/rotor/src/rotators/password-policy';
import { InvalidSecretError, UnsupportedEngineError } from 'rotor-consumers/core';

const PASSWORD = 'Sup3r-secret-value';
const valid = {
  engine: 'postgres',
  host: 'db.internal',
  port: 5432,
  username: 'app',
  password: PASSWORD,
  dbname: 'orders',
};
const raw = (o: object) => JSON.stringify(o);

describe('parsePostgresSecret', () => {
  it("reads AWS's JSON shape, with defaults for port and dbname", () => {
    expect(parsePostgresSecret('s', raw(valid))).toMatchObject({
      host: 'db.internal',
      port: 5432,
      username: 'app',
      dbname: 'orders',
      ssl: undefined,
    });
    const minimal = parsePostgresSecret('s', raw({ engine: 'postgres', host: 'h', username: 'u', password: 'p' }));
    expect(minimal).toMatchObject({ port: 5432, dbname: 'postgres' });
    expect(parsePostgresSecret('s', raw({ ...valid, port: '6432', ssl: 'true' }))).toMatchObject({
      port: 6432,
      ssl: true,
    });
    expect(parsePostgresSecret('s', raw({ ...valid, ssl: false }))).toMatchObject({ ssl: false });
  });

  it('accepts host names and IP addresses, and refuses hosts with spaces, slashes or credentials in them', () => {
    for (const host of ['db.internal', '10.0.0.5', 'my-db.cluster-abc.eu-west-1.rds.amazonaws.com', '::1']) {
      expect(parsePostgresSecret('s', raw({ ...valid, host })).host).toBe(host);
    }
    for (const host of ['db .internal', ' db', 'db/x', 'user@db', 'db?x', 'db\tinternal']) {
      expect(() => parsePostgresSecret('s', raw({ ...valid, host }))).toThrow(
        /host: must be a host name or IP address/,
      );
    }
  });

  it('accepts hostile but legal role names as they are', () => {
    for (const username of ['a"b', "o'brien", 'x; DROP ROLE admin; --', 'with space', 'Zoë_ü', '@%`']) {
      expect(parsePostgresSecret('s', raw({ ...valid, username })).username).toBe(username);
    }
  });

  it('reports every problem at once, by field, without quoting the password', () => {
    const attempt = () => parsePostgresSecret('prod/db', raw({ engine: 'postgres', port: 'abc', password: 7 }));
    expect(attempt).toThrow(InvalidSecretError);
    try {
      attempt();
    } catch (error) {
      const e = error as InvalidSecretError;
      expect(e.secretId).toBe('prod/db');
      expect(e.problems.some((p) => p.startsWith('host:'))).toBe(true);
      expect(e.problems.some((p) => p.startsWith('username:'))).toBe(true);
      expect(e.problems.some((p) => p.startsWith('port:'))).toBe(true);
      expect(e.problems.some((p) => p.startsWith('password:'))).toBe(true);
      expect(e.message).toContain('secret prod/db is not valid');
    }
  });

  it('never puts a value in its errors', () => {
    const bad = [
      { ...valid, username: 'x'.repeat(64) },
      { ...valid, host: '' },
      { ...valid, engine: PASSWORD },
      { ...valid, port: PASSWORD },
    ];
    for (const secret of bad) {
      expect(() => parsePostgresSecret('s', raw(secret))).toThrow(InvalidSecretError);
      try {
        parsePostgresSecret('s', raw(secret));
      } catch (error) {
        expect((error as Error).message).not.toContain(PASSWORD);
      }
    }
  });

  it('refuses malformed JSON, non-objects, over-long and NUL role names', () => {
    expect(() => parsePostgresSecret('s', `{"password": "${PASSWORD}"`)).toThrow('the value is not valid JSON');
    expect(() => parsePostgresSecret('s', '[1,2]')).toThrow('not a JSON object');
    expect(() => parsePostgresSecret('s', raw({ ...valid, username: 'é'.repeat(32) }))).toThrow(/at most 63 bytes/);
    expect(() => parsePostgresSecret('s', raw({ ...valid, username: 'a\u0000b' }))).toThrow(/NUL/);
  });
});

describe('selectRotatorKind', () => {
  it('picks the PostgreSQL single-user rotator by engine', () => {
    expect(selectRotatorKind('s', raw(valid))).toBe('postgres-single-user');
    expect(selectRotatorKind('s', raw({ ...valid, engine: 'aurora-postgresql' }))).toBe('postgres-single-user');
  });

  it('refuses unknown and missing engines with typed errors', () => {
    expect(() => selectRotatorKind('s', raw({ ...valid, engine: 'oracle' }))).toThrow(UnsupportedEngineError);
    expect(() => selectRotatorKind('s', raw({ ...valid, engine: undefined }))).toThrow('engine: is required');
  });
});

describe('postgresSingleUser.nextValue', () => {
  it('changes only the password and keeps every other field, known or not', async () => {
    const current = parsePostgresSecret('s', raw({ ...valid, port: '5432', masterarn: 'arn:x', custom: { a: 1 } }));
    const next = JSON.parse(await postgresSingleUser.nextValue('s', current, DEFAULT_PASSWORD_POLICY));
    expect(next.password).not.toBe(PASSWORD);
    expect(next.password).toHaveLength(32);
    expect({ ...next, password: PASSWORD }).toEqual({ ...valid, port: '5432', masterarn: 'arn:x', custom: { a: 1 } });
  });
});
