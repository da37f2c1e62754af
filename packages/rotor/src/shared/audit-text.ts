/**
 * Text in the audit trail, written once for the workflow that writes events and the store that checks them: the
 * store keeps each string byte for byte in PostgreSQL and hashes it, so no NUL (text columns refuse it) and no lone
 * surrogate (it would be stored as U+FFFD and the hash would no longer match). Pure; safe in workflow code.
 */

/** Longest text rotor puts in an audit event: a reason is not an essay. */
export const MAX_AUDIT_TEXT = 1000;

/** Longest string the audit store accepts in a field (more than rotor writes, for events from elsewhere). */
export const MAX_STORED_TEXT = 2048;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `value` as the audit store keeps it byte for byte: NULs dropped, lone surrogates replaced, at most `max` long. */
export function storableText(value: string, max = MAX_AUDIT_TEXT): string {
  return value.split('\u0000').join('').slice(0, max).replace(LONE_SURROGATE, '\uFFFD');
}

/** Whether the audit store keeps `value` byte for byte (no NUL, no lone surrogate). */
export function isStorableText(value: string): boolean {
  return !value.includes('\u0000') && value.replace(LONE_SURROGATE, '') === value;
}
