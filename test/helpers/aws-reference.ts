import { randomBytes, randomUUID } from 'node:crypto';
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { createConnection } from 'mysql2/promise';
import { Client as PgClient, escapeIdentifier, escapeLiteral } from 'pg';

/**
 * One rotation as AWS's reference rotation functions (SecretsManagerRDSPostgreSQLRotation{Single,Multi}User,
 * SecretsManagerRDSMySQLRotation{Single,Multi}User) perform it: the same four steps, the same SQL and the same label
 * moves, written from their documented behaviour for tests of the hand-over between AWS and rotor.
 *
 * - createSecret: a new version labelled AWSPENDING, the password replaced; multi-user toggles `name` ↔ `name_clone`.
 * - setSecret: single-user logs in as the user (AWSPENDING, else AWSCURRENT, else AWSPREVIOUS) and changes its own
 *   password; multi-user logs in with the secret `masterarn` names: PostgreSQL creates a missing clone
 *   `WITH LOGIN PASSWORD` and grants it the current role, MySQL creates it and replays each `SHOW GRANTS` row of the
 *   current user (its privileges, before ` TO `) to the clone; an existing user only gets the new password.
 * - testSecret: logs in with AWSPENDING.
 * - finishSecret: moves AWSCURRENT to the new version (Secrets Manager gives AWSPREVIOUS to the old one) and, as the
 *   functions do, leaves AWSPENDING on it: the service removes it only when it drives the rotation itself.
 *
 * Returns the new version's id. Throws when a step fails, leaving the state as AWS's function would.
 */
export async function awsRotates(
  secretId: string,
  kind: 'postgres' | 'mysql',
  mode: 'single' | 'multi',
): Promise<string> {
  const sm = new SecretsManagerClient({});
  const token = randomUUID();
  const current = JSON.parse(
    (await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }))).SecretString!,
  );
  const pending = { ...current, password: randomBytes(24).toString('base64url') };
  if (mode === 'multi') {
    pending.username = current.username.endsWith('_clone')
      ? current.username.slice(0, -'_clone'.length)
      : `${current.username}_clone`;
  }
  await sm.send(
    new PutSecretValueCommand({
      SecretId: secretId,
      ClientRequestToken: token,
      SecretString: JSON.stringify(pending),
      VersionStages: ['AWSPENDING'],
    }),
  );

  if (mode === 'single') {
    const previous = await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSPREVIOUS' })).then(
      (v) => JSON.parse(v.SecretString!),
      () => undefined,
    );
    await asFirstThatLogsIn(kind, [pending, current, previous].filter(Boolean), async (run) => {
      if (kind === 'postgres')
        await run(`ALTER USER ${escapeIdentifier(current.username)} WITH PASSWORD ${escapeLiteral(pending.password)}`);
      else await run('SET PASSWORD = PASSWORD(?)', [pending.password]);
    });
  } else if (!(await logsIn(kind, pending))) {
    const master = JSON.parse(
      (await sm.send(new GetSecretValueCommand({ SecretId: current.masterarn }))).SecretString!,
    );
    await asFirstThatLogsIn(kind, [{ ...master, dbname: current.dbname }], async (run) => {
      if (kind === 'postgres') {
        const exists =
          ((await run('SELECT 1 FROM pg_roles WHERE rolname = $1', [pending.username])) as unknown[]).length > 0;
        if (!exists) {
          await run(
            `CREATE ROLE ${escapeIdentifier(pending.username)} WITH LOGIN PASSWORD ${escapeLiteral(pending.password)}`,
          );
          await run(`GRANT ${escapeIdentifier(current.username)} TO ${escapeIdentifier(pending.username)}`);
        } else {
          await run(
            `ALTER USER ${escapeIdentifier(pending.username)} WITH PASSWORD ${escapeLiteral(pending.password)}`,
          );
        }
      } else {
        const exists =
          ((await run("SELECT 1 FROM mysql.user WHERE User = ? AND Host = '%'", [pending.username])) as unknown[])
            .length > 0;
        if (!exists) {
          await run("CREATE USER ?@'%' IDENTIFIED BY ?", [pending.username, pending.password]);
          const grants = (await run("SHOW GRANTS FOR ?@'%'", [current.username])) as Record<string, string>[];
          // The privileges of each grant, before its ` TO `, given to the clone (host part '%').
          for (const row of grants) await run(`${Object.values(row)[0]!.split(' TO ')[0]} TO ?`, [pending.username]);
        } else {
          await run("SET PASSWORD FOR ?@'%' = PASSWORD(?)", [pending.username, pending.password]);
        }
      }
    });
  }

  if (!(await logsIn(kind, pending))) throw new Error(`testSecret: AWSPENDING of ${secretId} does not log in`);

  const described = await sm.send(new DescribeSecretCommand({ SecretId: secretId }));
  const holder = Object.entries(described.VersionIdsToStages ?? {}).find(([, stages]) =>
    stages.includes('AWSCURRENT'),
  )?.[0];
  await sm.send(
    new UpdateSecretVersionStageCommand({
      SecretId: secretId,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: token,
      RemoveFromVersionId: holder,
    }),
  );
  return token;
}

type Login = { host: string; port: number; username: string; password: string; dbname?: string };
type Run = (sql: string, params?: unknown[]) => Promise<unknown>;

async function logsIn(kind: 'postgres' | 'mysql', login: Login): Promise<boolean> {
  try {
    await asFirstThatLogsIn(kind, [login], async (run) => {
      await run('SELECT NOW()');
    });
    return true;
  } catch {
    return false;
  }
}

async function asFirstThatLogsIn(
  kind: 'postgres' | 'mysql',
  logins: Login[],
  work: (run: Run) => Promise<void>,
): Promise<void> {
  for (const login of logins) {
    if (kind === 'postgres') {
      const c = new PgClient({
        host: login.host,
        port: login.port,
        user: login.username,
        password: login.password,
        database: login.dbname ?? 'postgres',
      });
      c.on('error', () => undefined);
      try {
        await c.connect();
      } catch {
        await c.end().catch(() => undefined);
        continue;
      }
      try {
        return await work(async (sql, params) => (await c.query(sql, params as unknown[])).rows);
      } finally {
        await c.end();
      }
    }
    const c = await createConnection({
      host: login.host,
      port: login.port,
      user: login.username,
      password: login.password,
    }).catch(() => undefined);
    if (!c) continue;
    try {
      return await work(async (sql, params) => (await c.query(sql, params))[0]);
    } finally {
      await c.end();
    }
  }
  throw new Error('setSecret: no version of the secret logs in');
}
