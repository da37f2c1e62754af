import { createConnection, type Connection } from 'mysql2/promise';
import { stackEnv, uniqueName } from './env';
import { createSecret } from './stack';

function adminUrl(): URL {
  return new URL(stackEnv('ROTOR_MYSQL_ADMIN_URL'));
}

export async function withMysqlAdmin<T>(work: (admin: Connection) => Promise<T>): Promise<T> {
  const url = adminUrl();
  const admin = await createConnection({
    host: url.hostname,
    port: Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  });
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

/** CREATE USER with the driver's escaping; `host` is the account's host part. */
export async function createMysqlUser(name: string, password: string, host = '%'): Promise<void> {
  await withMysqlAdmin((admin) => admin.query('CREATE USER ?@? IDENTIFIED BY ?', [name, host, password]));
}

export async function mysqlUserExists(name: string, host = '%'): Promise<boolean> {
  return withMysqlAdmin(async (admin) => {
    const [rows] = await admin.query<import('mysql2').RowDataPacket[]>(
      'SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?',
      [name, host],
    );
    return rows.length > 0;
  });
}

/** The stored password hash of an account, to see which account a rotation changed. */
export async function mysqlAuthString(name: string, host: string): Promise<string> {
  return withMysqlAdmin(async (admin) => {
    const [rows] = await admin.query<import('mysql2').RowDataPacket[]>(
      'SELECT authentication_string AS a FROM mysql.user WHERE User = ? AND Host = ?',
      [name, host],
    );
    return String(rows[0]?.a ?? '');
  });
}

/** True when `username`/`password` logs in to the stack's MariaDB. */
export async function mysqlLogsIn(username: string, password: string): Promise<boolean> {
  const url = adminUrl();
  try {
    const c = await createConnection({ host: url.hostname, port: Number(url.port), user: username, password });
    await c.query('SELECT 1');
    await c.end();
    return true;
  } catch (error) {
    const { code, errno } = error as { code?: string; errno?: number };
    // Locked accounts: MySQL 3118, MariaDB 4151; blocked after too many wrong passwords: MariaDB 4150.
    if (code === 'ER_ACCESS_DENIED_ERROR' || errno === 3118 || errno === 4150 || errno === 4151) return false;
    throw error;
  }
}

/** A MySQL secret in AWS's JSON shape pointing at the stack's MariaDB. */
export function mysqlSecret(username: string, password: string, extra: object = {}): object {
  const url = adminUrl();
  return { engine: 'mariadb', host: url.hostname, port: Number(url.port), username, password, ...extra };
}

/** A fresh MariaDB account with a known password and its secret; the password is added to `seen`. */
export async function mysqlUserWithSecret(
  marker: string,
  seen: Set<string>,
  username = uniqueName(`rotor_${marker}`).replace(/-/g, '_').slice(0, 60),
  host = '%',
): Promise<{ secretId: string; username: string; password: string; versionId: string }> {
  const password = `Init-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
  seen.add(password);
  await createMysqlUser(username, password, host);
  const secretId = uniqueName(`it/mysql-${marker}`);
  const versionId = await createSecret(secretId, mysqlSecret(username, password));
  return { secretId, username, password, versionId };
}
