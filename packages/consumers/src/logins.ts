/**
 * What a consumer can say of one login: the words the rotating pools report, the report endpoint accepts and the
 * bake window counts, written once. Pure: in `rotor-consumers/core`.
 */
export const LOGIN_OUTCOMES = ['success', 'auth-failure'] as const;
export type LoginOutcome = (typeof LOGIN_OUTCOMES)[number];

/** Whether `value` is one of the words. */
export function isLoginOutcome(value: unknown): value is LoginOutcome {
  return (LOGIN_OUTCOMES as readonly unknown[]).includes(value);
}

/** SQLSTATEs with which PostgreSQL refuses a login: wrong password (28P01), no such role or not allowed (28000). */
export const PG_AUTH_SQLSTATES: readonly string[] = ['28P01', '28000'];

/**
 * Error numbers with which MySQL and MariaDB refuse a login: access denied (1045), account locked (MySQL 3118,
 * MariaDB 4151), account blocked after too many wrong passwords (MariaDB's max_password_errors, 4150).
 */
export const MYSQL_AUTH_ERRNOS: readonly number[] = [1045, 3118, 4150, 4151];

/** Whether a pg error is a refused login (as opposed to a network or server failure). */
export function isPgAuthError(error: unknown): boolean {
  return PG_AUTH_SQLSTATES.includes(String((error as { code?: unknown } | undefined)?.code ?? ''));
}

/** Whether a mysql2 error is a refused login (as opposed to a network or server failure). */
export function isMysqlAuthError(error: unknown): boolean {
  return MYSQL_AUTH_ERRNOS.includes(Number((error as { errno?: unknown } | undefined)?.errno));
}
