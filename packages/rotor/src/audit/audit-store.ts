import { createHash } from 'node:crypto';
import { escapeIdentifier, Pool, type PoolClient } from 'pg';
import { InvalidInputError, RotorError, UnavailableError } from 'rotor-consumers/core';
import {
  CHAIN_START,
  chainRecord,
  GENESIS_HASH,
  normaliseEvent,
  verifyLinks,
  type StoredAuditEvent,
  type AuditRecord,
  type ChainProblem,
  type VerifyResult,
} from './hash-chain';

export type { StoredAuditEvent, AuditRecord, VerifyResult } from './hash-chain';

export const DEFAULT_AUDIT_TABLE = 'rotor_audit_events';

export interface AuditStoreOptions {
  /** The table to use (a plain lower-case identifier); tests give each file its own. Default `rotor_audit_events`. */
  table?: string;
  /** Rows per page when verify walks the chain. Default 1000. */
  pageSize?: number;
  /**
   * For readers (`rotor history`, `rotor audit verify`): do not create the schema, only check that the table is
   * there, so a role that may only read the trail can use it.
   */
  readOnly?: boolean;
}

/** First key of every advisory lock rotor's audit store takes ("audi"); the second is derived from the table name. */
const LOCK_NAMESPACE = 0x61756469;
const MAX_PROBLEMS = 1000;
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

/** Columns read back, with `at` spelt as its ISO string (microseconds kept, so a sub-millisecond edit is not hidden). */
const SELECT_COLUMNS = `seq::text AS seq_text, event_id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS recorded_at, secret_id, workflow_id, run_id,
  kind, step, phase, outcome, version_id, duration_ms::text AS duration_text, actor, detail, prev_hash, hash`;

/** bigints read as text (aliased, so ORDER BY seq still sorts the bigint column). */
interface Row {
  seq_text: string;
  event_id: string;
  at: string;
  recorded_at: string;
  secret_id: string;
  workflow_id: string | null;
  run_id: string | null;
  kind: string;
  step: string | null;
  phase: string | null;
  outcome: string | null;
  version_id: string | null;
  duration_text: string | null;
  actor: string | null;
  detail: StoredAuditEvent['detail'] | null;
  prev_hash: string;
  hash: string;
}

/**
 * rotor's audit trail: an append-only, hash-chained table in its own PostgreSQL database. Appends are idempotent on
 * `eventId` (activities retry) and serialised by an advisory lock, so the chain stays linear across workers.
 *
 * @example
 *   const audit = await AuditStore.connect(process.env.ROTOR_AUDIT_URL!);
 *   await audit.append({ eventId: `${workflowId}/${runId}/0`, at, secretId, kind: 'triggered', actor: 'cli:alice' });
 *   const { ok, headHash } = await audit.verify();
 */
export class AuditStore {
  private closed = false;

  private constructor(
    private readonly pool: Pool,
    /** Where the trail lives, for messages: "audit database rotor_audit at 127.0.0.1:55432". Never the password. */
    readonly description: string,
    private readonly table: string,
    private readonly lockKey: number,
    private readonly pageSize: number,
    private readonly password: string,
  ) {}

  /**
   * Connects (a small pool) and creates the table and its index when missing. Throws UnavailableError naming the
   * database when it cannot be reached, InvalidInputError for a malformed URL or option.
   */
  static async connect(url: string, options: AuditStoreOptions = {}): Promise<AuditStore> {
    const table = options.table ?? DEFAULT_AUDIT_TABLE;
    if (!TABLE_NAME.test(table))
      throw new InvalidInputError(
        `audit store: table ${JSON.stringify(table)} must be a lower-case identifier of at most 48 characters`,
      );
    const pageSize = options.pageSize ?? 1000;
    if (!Number.isSafeInteger(pageSize) || pageSize < 1)
      throw new InvalidInputError('audit store: pageSize must be a positive whole number');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      // The URL holds the password: never echo it.
      throw new InvalidInputError('audit store: the audit database URL is not a valid postgres:// URL');
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
      throw new InvalidInputError(
        `audit store: the audit database URL must start with postgres://, not ${parsed.protocol}//`,
      );
    }
    const database =
      decodeURIComponent(parsed.pathname.replace(/^\//, '')) || decodeURIComponent(parsed.username) || 'postgres';
    const description = `audit database ${database} at ${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`;
    const pool = new Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      statement_timeout: 15_000,
      query_timeout: 20_000,
      application_name: 'rotor-audit',
    });
    // An idle connection dropped by the server must not crash the worker; the next query reconnects.
    pool.on('error', () => undefined);
    const lockKey = createHash('sha256').update(table).digest().readInt32BE(0);
    const store = new AuditStore(
      pool,
      description,
      escapeIdentifier(table),
      lockKey,
      pageSize,
      decodeURIComponent(parsed.password),
    );
    let exists = true;
    try {
      if (options.readOnly) exists = (await pool.query('SELECT to_regclass($1) AS t', [table])).rows[0]?.t !== null;
      else await store.createSchema(table);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw store.unavailable('connecting', error);
    }
    if (!exists) {
      await pool.end().catch(() => undefined);
      throw new InvalidInputError(
        `${description} has no table ${table}: no rotor worker has written to it yet — check ROTOR_AUDIT_URL`,
      );
    }
    return store;
  }

  /**
   * Appends `event` to the chain, or does nothing when an event with its `eventId` is already there. Throws
   * InvalidInputError for a malformed event (before touching the database), UnavailableError when the database fails.
   */
  async append(event: StoredAuditEvent): Promise<'appended' | 'duplicate'> {
    const normal = normaliseEvent(event);
    try {
      return await this.transaction(async (client) => {
        await client.query('SELECT pg_advisory_xact_lock($1::int4, $2::int4)', [LOCK_NAMESPACE, this.lockKey]);
        const existing = await client.query(`SELECT 1 FROM ${this.table} WHERE event_id = $1`, [normal.eventId]);
        if ((existing.rowCount ?? 0) > 0) return 'duplicate';
        const last = await client.query<{ last_seq: string; hash: string }>(
          `SELECT seq::text AS last_seq, hash FROM ${this.table} ORDER BY seq DESC LIMIT 1`,
        );
        // seq is last + 1, not the serial's nextval: a failed insert would leave a gap that verify must call a deletion.
        const seq = last.rows[0] ? Number(last.rows[0].last_seq) + 1 : 1;
        const record = chainRecord(normal, seq, last.rows[0]?.hash ?? GENESIS_HASH);
        await client.query(
          `INSERT INTO ${this.table} (seq, event_id, at, secret_id, workflow_id, run_id, kind, step, phase, outcome, version_id,
             duration_ms, actor, detail, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          [
            record.seq,
            record.eventId,
            record.at,
            record.secretId,
            record.workflowId ?? null,
            record.runId ?? null,
            record.kind,
            record.step ?? null,
            record.phase ?? null,
            record.outcome ?? null,
            record.versionId ?? null,
            record.durationMs ?? null,
            record.actor ?? null,
            record.detail === undefined ? null : JSON.stringify(record.detail),
            record.prevHash,
            record.hash,
          ],
        );
        return 'appended';
      });
    } catch (error) {
      throw this.unavailable('appending an event', error, normal.secretId);
    }
  }

  /** The latest `limit` (default 1000) records of `secretId`, oldest first. */
  async history(secretId: string, options: { limit?: number } = {}): Promise<AuditRecord[]> {
    if (typeof secretId !== 'string' || secretId === '')
      throw new InvalidInputError('audit history: secretId is required');
    const limit = options.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new InvalidInputError('audit history: limit must be a positive whole number');
    try {
      const result = await this.pool.query<Row>(
        `SELECT * FROM (SELECT ${SELECT_COLUMNS} FROM ${this.table} WHERE secret_id = $1 ORDER BY seq DESC LIMIT $2) latest
         ORDER BY seq_text::bigint`,
        [secretId, limit],
      );
      return result.rows.map(toRecord);
    } catch (error) {
      throw this.unavailable('reading history', error, secretId);
    }
  }

  /** When `secretId`'s events of `kind` since `since` (ISO time) happened, newest first, at most `limit` (ISO times). */
  async timesOf(secretId: string, kind: string, since: string, limit: number): Promise<string[]> {
    try {
      const result = await this.pool.query<{ at: Date }>(
        `SELECT at FROM ${this.table} WHERE secret_id = $1 AND kind = $2 AND at >= $3 ORDER BY seq DESC LIMIT $4`,
        [secretId, kind, since, limit],
      );
      return result.rows.map((r) => r.at.toISOString());
    } catch (error) {
      throw this.unavailable('reading history', error, secretId);
    }
  }

  /**
   * Walks the whole chain in seq order, a page at a time, recomputing each row's hash and checking its link to the
   * previous row. Reports edited and deleted rows by seq, and the head to anchor outside the database. With
   * `anchor` (a head recorded earlier), also checks that its row is still there with that hash: what the chain alone
   * cannot show, the newest rows deleted or the whole chain rewritten.
   */
  async verify(anchor?: { seq: number; hash: string }): Promise<VerifyResult> {
    let position = CHAIN_START;
    const problems: ChainProblem[] = [];
    let found = 0;
    try {
      for (;;) {
        const page = await this.pool.query<Row>(
          `SELECT ${SELECT_COLUMNS} FROM ${this.table} WHERE seq > $1 ORDER BY seq LIMIT $2`,
          [position.seq, this.pageSize],
        );
        const checked = verifyLinks(page.rows.map(toRecord), position);
        position = checked.position;
        found += checked.problems.length;
        problems.push(...checked.problems.slice(0, Math.max(0, MAX_PROBLEMS - problems.length)));
        if (page.rows.length < this.pageSize) break;
      }
      if (anchor) {
        const row = await this.pool.query<{ hash: string }>(`SELECT hash FROM ${this.table} WHERE seq = $1`, [
          anchor.seq,
        ]);
        const problem = !row.rows[0]
          ? 'the anchored row is gone: the newest rows were deleted'
          : row.rows[0].hash !== anchor.hash
            ? 'the anchored row has another hash: the chain was rewritten'
            : undefined;
        if (problem) {
          found++;
          problems.push({ seq: anchor.seq, problem });
        }
      }
    } catch (error) {
      throw this.unavailable('verifying the chain', error);
    }
    return {
      ok: found === 0,
      rows: position.rows,
      ...(position.seq > 0 ? { headSeq: position.seq, headHash: position.hash } : {}),
      problems,
      ...(found > problems.length ? { omittedProblems: found - problems.length } : {}),
    };
  }

  /** Closes the pool. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** Creates the table and index; the advisory lock keeps two processes starting at once from racing the DDL. */
  private async createSchema(table: string): Promise<void> {
    const index = escapeIdentifier(`${table}_secret_seq_idx`);
    await this.transaction(async (client) => {
      // Transaction-scoped, so it is released even if this connection dies mid-DDL.
      await client.query('SELECT pg_advisory_xact_lock($1::int4, $2::int4)', [LOCK_NAMESPACE, this.lockKey]);
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.table} (
        seq bigserial PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        secret_id text NOT NULL,
        workflow_id text,
        run_id text,
        kind text NOT NULL,
        step text,
        phase text,
        outcome text,
        version_id text,
        duration_ms bigint,
        actor text,
        detail jsonb,
        prev_hash text NOT NULL,
        hash text NOT NULL
      )`);
      await client.query(`CREATE INDEX IF NOT EXISTS ${index} ON ${this.table} (secret_id, seq)`);
    });
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      // Passing the error discards the connection: it may be broken or mid-transaction.
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }

  /** A database failure as UnavailableError (retryable), naming the audit database and never the password. */
  private unavailable(action: string, error: unknown, secretId?: string): RotorError {
    if (error instanceof RotorError) return error;
    const e = error as { code?: string; message?: string };
    let cause = [e.code, e.message].filter(Boolean).join(': ') || String(error);
    if (this.password.length >= 3) cause = cause.split(this.password).join('***');
    return new UnavailableError(secretId, `${this.description}: ${action} failed (${cause})`);
  }
}

function toRecord(row: Row): AuditRecord {
  const record: AuditRecord = {
    seq: Number(row.seq_text),
    eventId: row.event_id,
    // Stored from a millisecond ISO string: drop the three zero microsecond digits to spell it as it was hashed.
    at: row.at.replace(/(\.\d{3})000Z$/, '$1Z'),
    secretId: row.secret_id,
    kind: row.kind,
    recordedAt: row.recorded_at,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
  if (row.workflow_id !== null) record.workflowId = row.workflow_id;
  if (row.run_id !== null) record.runId = row.run_id;
  if (row.step !== null) record.step = row.step;
  if (row.phase !== null) record.phase = row.phase;
  if (row.outcome !== null) record.outcome = row.outcome;
  if (row.version_id !== null) record.versionId = row.version_id;
  if (row.duration_text !== null) record.durationMs = Number(row.duration_text);
  if (row.actor !== null) record.actor = row.actor;
  if (row.detail !== null) record.detail = row.detail;
  return record;
}
