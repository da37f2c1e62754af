/**
 * The audit trail's hash chain, without I/O: validating events, canonical hashing, and verifying records in seq
 * order. AuditStore does the database part and calls these page by page.
 */
import { isStorableText, MAX_STORED_TEXT } from '../shared/audit-text';
import { createHash } from 'node:crypto';
import { InvalidInputError } from 'rotor-consumers/core';
import { canonicalJson } from '../shared/canonical-json';
import type { AuditEvent as RotationAuditEvent } from '../shared/reporting';

/**
 * An audit event as stored: the rotation's events (`AuditEvent` in shared/reporting.ts), with `kind` left open so rows
 * written by a newer rotor still read and verify.
 */
export type StoredAuditEvent = Omit<RotationAuditEvent, 'kind'> & { kind: string };

/** An event as stored: its place in the chain (`seq`, `prevHash`, `hash`) and the database's insert time. */
export interface AuditRecord extends StoredAuditEvent {
  seq: number;
  /** The database's clock at insert; informational, not covered by the hash. */
  recordedAt: string;
  prevHash: string;
  hash: string;
}

/** What the chain covers: a record without its insert time. */
export type ChainedRecord = Omit<AuditRecord, 'recordedAt'>;

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** The last row's seq and hash: record them outside the database to detect later deletion of the newest rows. */
  headSeq?: number;
  headHash?: string;
  problems: { seq: number; problem: string }[];
  /** How many problems were found beyond those listed (the list is capped). */
  omittedProblems?: number;
}

export type ChainProblem = VerifyResult['problems'][number];

/** The prevHash of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

const OPTIONAL_STRINGS = ['workflowId', 'runId', 'step', 'phase', 'outcome', 'versionId', 'actor'] as const;
const REQUIRED_STRINGS = ['eventId', 'secretId', 'kind'] as const;
const KNOWN_FIELDS = new Set<string>(['at', 'durationMs', 'detail', ...REQUIRED_STRINGS, ...OPTIONAL_STRINGS]);
const MAX_DETAIL_KEYS = 64;
const MAX_DETAIL_CHARS = 8192;
/** What PostgreSQL's timestamptz and Date.toISOString both spell the same way. */
const ISO_MS = /^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function invalid(field: string, problem: string): InvalidInputError {
  return new InvalidInputError(`audit event: ${field} ${problem}`);
}

/** Strings PostgreSQL stores byte for byte: no NUL (text refuses it), no lone surrogate (it would become U+FFFD). */
function checkString(field: string, value: unknown, max = MAX_STORED_TEXT): string {
  if (typeof value !== 'string')
    throw invalid(field, `must be a string, not ${value === null ? 'null' : typeof value}`);
  if (value.length > max) throw invalid(field, `is longer than ${max} characters`);
  if (!isStorableText(value))
    throw invalid(field, 'contains a character that cannot be stored (NUL or a lone surrogate)');
  return value;
}

/**
 * Checks an event and returns it in the form that is stored and hashed: known fields only, absent (undefined or
 * null) optional fields dropped, `at` as `new Date(at).toISOString()`. Throws InvalidInputError naming the field.
 */
export function normaliseEvent(input: unknown): StoredAuditEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new InvalidInputError('audit event must be an object');
  const raw = input as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(key) && raw[key] !== undefined)
      throw invalid(JSON.stringify(key), 'is not an audit event field');
  }
  for (const field of REQUIRED_STRINGS) {
    if (raw[field] === undefined || raw[field] === null || raw[field] === '') throw invalid(field, 'is required');
    checkString(field, raw[field]);
  }
  const event: StoredAuditEvent = {
    eventId: raw.eventId as string,
    at: normaliseAt(raw.at),
    secretId: raw.secretId as string,
    kind: raw.kind as string,
  };
  for (const field of OPTIONAL_STRINGS) {
    if (raw[field] !== undefined && raw[field] !== null) event[field] = checkString(field, raw[field]);
  }
  if (raw.durationMs !== undefined && raw.durationMs !== null) {
    const d = raw.durationMs;
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw invalid('durationMs', 'must be a whole number of milliseconds, 0 or more');
    event.durationMs = d;
  }
  if (raw.detail !== undefined && raw.detail !== null) event.detail = normaliseDetail(raw.detail);
  return event;
}

function normaliseAt(at: unknown): string {
  if (at === undefined || at === null || at === '') throw invalid('at', 'is required');
  if (typeof at !== 'string') throw invalid('at', 'must be an ISO 8601 time string');
  const time = new Date(at);
  const iso = Number.isNaN(time.getTime()) ? '' : time.toISOString();
  if (!ISO_MS.test(iso))
    throw invalid('at', `is not an ISO 8601 time between the years 1000 and 9999: ${JSON.stringify(at.slice(0, 64))}`);
  return iso;
}

function normaliseDetail(detail: unknown): NonNullable<StoredAuditEvent['detail']> {
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail))
    throw invalid('detail', 'must be an object of strings, numbers, booleans and nulls');
  const entries = Object.entries(detail).filter(([, v]) => v !== undefined);
  if (entries.length > MAX_DETAIL_KEYS) throw invalid('detail', `has more than ${MAX_DETAIL_KEYS} keys`);
  for (const [key, value] of entries) {
    checkString(`detail key ${JSON.stringify(key.slice(0, 64))}`, key, 128);
    const field = `detail.${key}`;
    if (typeof value === 'string') checkString(field, value);
    else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw invalid(field, 'must be a finite number');
    } else if (value !== null && typeof value !== 'boolean') {
      throw invalid(
        field,
        `must be a string, number, boolean or null, not ${Array.isArray(value) ? 'an array' : typeof value}`,
      );
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays data.
  const out = Object.fromEntries(entries) as NonNullable<StoredAuditEvent['detail']>;
  if (canonicalJson(out).length > MAX_DETAIL_CHARS)
    throw invalid('detail', `is larger than ${MAX_DETAIL_CHARS} characters of JSON`);
  return out;
}

/** The fields a record's hash covers: the event's fields and its seq (not prevHash, hash or recordedAt). */
function hashedFields(record: StoredAuditEvent & { seq: number }): Record<string, unknown> {
  const {
    seq,
    eventId,
    at,
    secretId,
    workflowId,
    runId,
    kind,
    step,
    phase,
    outcome,
    versionId,
    durationMs,
    actor,
    detail,
  } = record;
  return {
    seq,
    eventId,
    at,
    secretId,
    workflowId,
    runId,
    kind,
    step,
    phase,
    outcome,
    versionId,
    durationMs,
    actor,
    detail,
  };
}

/** sha256 hex of `prevHash + '\n' + canonicalJson(event fields + seq)`. */
export function hashRecord(prevHash: string, record: StoredAuditEvent & { seq: number }): string {
  return createHash('sha256')
    .update(`${prevHash}\n${canonicalJson(hashedFields(record))}`, 'utf8')
    .digest('hex');
}

/** The next link: `event` (already normalised) at `seq`, chained to `prevHash`. */
export function chainRecord(event: StoredAuditEvent, seq: number, prevHash: string): ChainedRecord {
  return { ...event, seq, prevHash, hash: hashRecord(prevHash, { ...event, seq }) };
}

/** Where a verification walk is: rows seen, and the seq and stored hash of the last row in order (0/genesis at the start). */
export interface ChainPosition {
  rows: number;
  seq: number;
  hash: string;
}

export const CHAIN_START: ChainPosition = { rows: 0, seq: 0, hash: GENESIS_HASH };

/**
 * Checks `records` (expected in ascending seq order, continuing from `from`) and returns the problems and the
 * position to continue from with the next page. Seqs are gap-free by construction (AuditStore assigns last + 1
 * under its lock), so:
 * - a hash that does not match the record's own fields → the record was edited;
 * - a seq gap → the rows in between were deleted (reported at the first missing seq);
 * - a prevHash that is not the previous record's hash, without a gap → a link was edited;
 * - a seq not above the previous one → the records are out of order (or duplicated).
 * Deleting the newest rows leaves a valid, shorter chain: only a head hash kept elsewhere reveals that.
 */
export function verifyLinks(
  records: readonly ChainedRecord[],
  from: ChainPosition = CHAIN_START,
): { position: ChainPosition; problems: ChainProblem[] } {
  const problems: ChainProblem[] = [];
  let position = from;
  for (const record of records) {
    const rows = position.rows + 1;
    if (hashRecord(record.prevHash, record) !== record.hash) {
      problems.push({ seq: record.seq, problem: "hash does not match the row's contents: the row was edited" });
    }
    const previous = position.seq === 0 ? 'the genesis hash' : `the hash of seq ${position.seq}`;
    if (record.seq <= position.seq) {
      problems.push({ seq: record.seq, problem: `out of order: seq ${record.seq} comes after seq ${position.seq}` });
      // Keep checking the next rows against the highest seq seen.
      position = { ...position, rows };
      continue;
    }
    const expected = position.seq + 1;
    const linked = record.prevHash === position.hash;
    if (record.seq > expected) {
      const missing = record.seq - 1 === expected ? `seq ${expected} is` : `seqs ${expected}..${record.seq - 1} are`;
      const link = linked
        ? `, though seq ${record.seq}'s prev_hash matches ${previous}`
        : `: seq ${record.seq}'s prev_hash does not match ${previous}`;
      problems.push({ seq: expected, problem: `${missing} missing: deleted${link}` });
    } else if (!linked) {
      problems.push({ seq: record.seq, problem: `prev_hash does not match ${previous}: the link was edited` });
    }
    position = { rows, seq: record.seq, hash: record.hash };
  }
  return { position, problems };
}

/** Verifies a whole chain held in memory. */
export function verifyRecords(records: readonly ChainedRecord[]): VerifyResult {
  const { position, problems } = verifyLinks(records);
  return {
    ok: problems.length === 0,
    rows: position.rows,
    ...(position.seq > 0 ? { headHash: position.hash } : {}),
    problems,
  };
}
