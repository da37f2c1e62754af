/**
 * rotor-consumers/core: the vocabulary both packages share, pure and with no I/O, so that Temporal workflow code
 * may import it: the error types and classes, the staging labels, and durations with units.
 */
export * from './errors';
export { Stage } from './stages';
export { DURATION_EXAMPLES, formatDuration, parseDuration } from './duration';
