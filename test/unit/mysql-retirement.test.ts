import type { Connection } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { killSessions } from '../../packages/rotor/src/rotators/mysql/alternating-users';

/** An admin connection whose KILL answers as a server would: done, refused, or the thread already gone. */
function adminThat(answers: Record<number, 'killed' | 'refused' | 'gone'>): Pick<Connection, 'query'> {
  const query = async (_sql: string, [id]: [number]) => {
    const answer = answers[id];
    if (answer === 'refused') throw Object.assign(new Error('You are not owner of thread'), { errno: 1095 });
    if (answer === 'gone') throw Object.assign(new Error('Unknown thread id'), { errno: 1094 });
    return [[], []];
  };
  return { query } as unknown as Pick<Connection, 'query'>;
}

describe('MySQL retirement ending live sessions', () => {
  it('counts a session whose KILL was refused as failed, not as terminated', async () => {
    expect(await killSessions(adminThat({ 1: 'killed', 2: 'refused', 3: 'killed' }), [1, 2, 3])).toEqual({
      terminated: 2,
      failed: 1,
    });
  });

  it('counts a session that ended by itself meanwhile as neither', async () => {
    expect(await killSessions(adminThat({ 1: 'gone', 2: 'killed' }), [1, 2])).toEqual({ terminated: 1, failed: 0 });
  });
});
