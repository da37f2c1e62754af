import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { escapeIdentifier as q, escapeLiteral } from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../packages/rotor/src/activities';
import { rotators } from '../../packages/rotor/src/rotators/registry';
import type { PreparedRotation } from '../../packages/rotor/src/shared/rotation';
import { stackEnv, uniqueName } from '../helpers/env';
import { createMysqlUser, mysqlLogsIn, mysqlSecret } from '../helpers/mysql';
import { createSecret, labels, logsIn, pgSecret, store, withAdmin } from '../helpers/stack';

/**
 * Every step of every strategy, run twice as a retry after a crash would: the second run finds its work done,
 * says so, and changes nothing. The logins carry hostile names, quoted by the drivers.
 */
const activities = createActivities({ store, rotators });
const run = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
  new MockActivityEnvironment().run(fn, ...args) as Promise<R>;

let pgMaster: string;
let mysqlMaster: string;

beforeAll(async () => {
  const pg = new URL(stackEnv('ROTOR_PG_ADMIN_URL'));
  pgMaster = uniqueName('it/rr-pg-master');
  await createSecret(pgMaster, pgSecret(decodeURIComponent(pg.username), decodeURIComponent(pg.password)));
  const my = new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
  mysqlMaster = uniqueName('it/rr-mysql-master');
  await createSecret(mysqlMaster, mysqlSecret(decodeURIComponent(my.username), decodeURIComponent(my.password)));
});

const hostile = () => `rr "q' ;\`x@%ü ${Math.random().toString(36).slice(2, 6)}`;

const strategies = [
  {
    kind: 'postgres-single-user',
    async setup(name: string, password: string) {
      await withAdmin((a) => a.query(`CREATE ROLE ${q(name)} LOGIN PASSWORD ${escapeLiteral(password)}`));
      return pgSecret(name, password);
    },
    logsIn,
    setOutcomes: ['changed', 'already-set'],
    previousKeepsWorking: false,
  },
  {
    kind: 'mysql-single-user',
    async setup(name: string, password: string) {
      await createMysqlUser(name, password);
      return mysqlSecret(name, password);
    },
    logsIn: mysqlLogsIn,
    setOutcomes: ['changed', 'already-set'],
    previousKeepsWorking: false,
  },
  {
    kind: 'postgres-alternating-users',
    async setup(name: string, password: string) {
      await withAdmin((a) => a.query(`CREATE ROLE ${q(name)} LOGIN PASSWORD ${escapeLiteral(password)}`));
      return pgSecret(name, password, { masterarn: pgMaster });
    },
    logsIn,
    setOutcomes: ['set', 'already-set'],
    previousKeepsWorking: true,
  },
  {
    kind: 'mysql-alternating-users',
    async setup(name: string, password: string) {
      await createMysqlUser(name, password);
      return mysqlSecret(name, password, { masterarn: mysqlMaster });
    },
    logsIn: mysqlLogsIn,
    setOutcomes: ['set', 'already-set'],
    previousKeepsWorking: true,
  },
] as const;

describe.each(strategies)('$kind: each step re-run after it succeeded changes nothing', (strategy) => {
  it('prepare, create, set, test, finish and retire, twice each', async () => {
    const name = hostile();
    const password = `Init-${Math.random().toString(36).slice(2)}`;
    const secretId = uniqueName(`it/rr-${strategy.kind}`);
    const originalId = await createSecret(secretId, await strategy.setup(name, password));

    const prepared = (await run(activities.prepareRotation, { secretId })) as PreparedRotation;
    expect(prepared.rotator).toBe(strategy.kind);
    expect(await run(activities.prepareRotation, { secretId })).toEqual(prepared);

    const input = { secretId, token: randomUUID(), prepared };
    expect((await run(activities.createPending, input)).outcome).toBe('created');
    const afterCreate = await labels(secretId);
    expect((await run(activities.createPending, input)).outcome).toBe('already-created');
    expect(await labels(secretId)).toEqual(afterCreate);
    expect(afterCreate).toEqual({ current: originalId, pending: input.token, versions: 2 });
    const pending = JSON.parse((await store.getByVersion(secretId, input.token))!.value);

    expect((await run(activities.setPending, input)).outcome).toBe(strategy.setOutcomes[0]);
    expect((await run(activities.setPending, input)).outcome).toBe(strategy.setOutcomes[1]);
    expect(await strategy.logsIn(pending.username, pending.password)).toBe(true);

    for (let i = 0; i < 2; i++) expect((await run(activities.testPending, input)).outcome).toBe('passed');

    expect((await run(activities.finishRotation, input)).outcome).toBe('finished');
    expect((await run(activities.finishRotation, input)).outcome).toBe('already-finished');
    expect(await labels(secretId)).toEqual({ current: input.token, previous: originalId, versions: 2 });

    const retired = (await run(activities.retirePrevious, input)).outcome;
    expect((await run(activities.retirePrevious, input)).outcome).toBe(retired);

    expect(await strategy.logsIn(pending.username, pending.password)).toBe(true);
    expect(await strategy.logsIn(name, password)).toBe(strategy.previousKeepsWorking);
  });
});
