/**
 * rotor-consumers/core: the vocabulary both packages share, pure and with no I/O, so that Temporal workflow code
 * may import it: the error types and classes, the staging labels, durations with units, and what a login's outcome
 * is called and how each database refuses one.
 */
export * from './errors';
export { Stage } from './stages';
export { storeNameOf } from './secret-ids';
export { parseJsonObject, validateShape } from './secret-json';
export { DURATION_EXAMPLES, formatDuration, parseDuration } from './duration';
export {
  isLoginOutcome,
  isMysqlAuthError,
  isPgAuthError,
  LOGIN_OUTCOMES,
  MYSQL_AUTH_ERRNOS,
  PG_AUTH_SQLSTATES,
  type LoginOutcome,
} from './logins';
