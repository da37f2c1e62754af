import { escapeIdentifier, type Client } from 'pg';
import { associatedDataColumns, type KeyringDataTable } from 'rotor-consumers/credentials';
import { InvalidInputError } from 'rotor-consumers/core';

/*
 * The tables a keyring's ciphertexts live in, as SQL: every identifier quoted by pg's escapeIdentifier, every value a
 * bind parameter. A table is one column of ciphertexts, paged by the table's primary key.
 */

const quoted = (name: string) => name.split('.').map(escapeIdentifier).join('.');

/** What a row of a page carries: its key (as text), its ciphertext, and the columns its associated data names. */
export interface DataRow {
  key: string;
  ciphertext: string;
  row: Record<string, unknown>;
}

/** The table's SQL names, and the primary key's type for the array a batch update sends. */
export interface PreparedTable {
  spec: KeyringDataTable;
  table: string;
  primaryKey: string;
  column: string;
  keyType: string;
  adColumns: string[];
}

/** Checks the table and its columns exist and reads the primary key's type. Throws InvalidInputError naming them. */
export async function prepareTable(client: Client, secretId: string, spec: KeyringDataTable): Promise<PreparedTable> {
  const { rows } = await client.query<{ attname: string; nspname: string; typname: string }>(
    `SELECT a.attname, n.nspname, t.typname
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoted(spec.table)],
  );
  const where = `secret ${secretId}: data table ${spec.table}`;
  if (rows.length === 0) throw new InvalidInputError(`${where} does not exist (or this login may not see it)`);
  const columns = new Map(rows.map((r) => [r.attname, r]));
  const adColumns = associatedDataColumns(spec.associatedData);
  for (const name of [spec.primaryKey, spec.column, ...adColumns])
    if (!columns.has(name)) throw new InvalidInputError(`${where} has no column ${name}`);
  const key = columns.get(spec.primaryKey)!;
  return {
    spec,
    table: quoted(spec.table),
    primaryKey: escapeIdentifier(spec.primaryKey),
    column: escapeIdentifier(spec.column),
    keyType: `${escapeIdentifier(key.nspname)}.${escapeIdentifier(key.typname)}`,
    adColumns,
  };
}

/** Rows per key id (the third part of a ciphertext); texts that are not rotor ciphertexts count under ''. */
export async function countByKey(client: Client, t: PreparedTable): Promise<Record<string, number>> {
  const { rows } = await client.query<{ key_id: string; n: string }>(
    `SELECT CASE WHEN ${t.column} LIKE 'rk1.%' THEN split_part(${t.column}, '.', 3) ELSE '' END AS key_id,
            count(*) AS n
       FROM ${t.table} WHERE ${t.column} IS NOT NULL GROUP BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.key_id, Number(r.n)]));
}

/** The next `limit` rows after `afterKey` (by primary key) whose ciphertext is not under `primaryId`. */
export async function pageNotUnder(
  client: Client,
  t: PreparedTable,
  primaryId: string,
  afterKey: string | undefined,
  limit: number,
): Promise<DataRow[]> {
  const ad = t.adColumns.map((c, i) => `${escapeIdentifier(c)}::text AS ${escapeIdentifier(`ad_${i}`)}`);
  const { rows } = await client.query<Record<string, string>>(
    `SELECT ${t.primaryKey}::text AS rotor_key, ${t.column} AS rotor_ciphertext${ad.map((a) => `, ${a}`).join('')}
       FROM ${t.table}
      WHERE ${t.column} IS NOT NULL AND split_part(${t.column}, '.', 3) <> $1
        ${afterKey === undefined ? '' : `AND ${t.primaryKey} > $3`}
      ORDER BY ${t.primaryKey} LIMIT $2`,
    afterKey === undefined ? [primaryId, limit] : [primaryId, limit, afterKey],
  );
  return rows.map((r) => ({
    key: r.rotor_key!,
    ciphertext: r.rotor_ciphertext!,
    row: Object.fromEntries(t.adColumns.map((c, i) => [c, r[`ad_${i}`]])),
  }));
}

/**
 * Writes each row's new ciphertext only where the row still holds the old one (compare-and-swap): a row the
 * application changed meanwhile is left as it is. One statement per batch. Returns the keys written.
 */
export async function swapCiphertexts(
  client: Client,
  t: PreparedTable,
  swaps: { key: string; old: string; next: string }[],
): Promise<string[]> {
  if (swaps.length === 0) return [];
  const { rows } = await client.query<{ rotor_key: string }>(
    `UPDATE ${t.table} AS t SET ${t.column} = v.next
       FROM unnest($1::${t.keyType}[], $2::text[], $3::text[]) AS v(key, old, next)
      WHERE t.${t.primaryKey} = v.key AND t.${t.column} = v.old
      RETURNING t.${t.primaryKey}::text AS rotor_key`,
    [swaps.map((s) => s.key), swaps.map((s) => s.old), swaps.map((s) => s.next)],
  );
  return rows.map((r) => r.rotor_key);
}
