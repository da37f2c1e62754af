import { createHash, createHmac } from 'node:crypto';
import type { Client } from 'pg';
import { describe, expect, it } from 'vitest';
import { setRolePassword } from '../../packages/rotor/src/rotators/postgres/connection';
import { scramSha256Verifier } from '../../packages/rotor/src/rotators/postgres/scram';

/** A stand-in for pg's Client that records the SQL it is given. */
function recordingClient(): { client: Client; sql: string[] } {
  const sql: string[] = [];
  const client = { query: async (text: string) => (sql.push(text), { rows: [] }) } as unknown as Client;
  return { client, sql };
}

describe('setRolePassword', () => {
  it('quotes hostile role names with the driver and never sends an ASCII password itself', async () => {
    const { client, sql } = recordingClient();
    await setRolePassword(client, 'x"; DROP ROLE admin; --', "pa'ss;word");
    expect(sql).toHaveLength(1);
    expect(sql[0]).toMatch(/^ALTER ROLE "x""; DROP ROLE admin; --" WITH PASSWORD 'SCRAM-SHA-256\$4096:[^']+'$/);
    expect(sql[0]).not.toContain("pa'ss;word");
  });

  it('sends a password SASLprep could change as an escaped literal', async () => {
    const { client, sql } = recordingClient();
    await setRolePassword(client, 'app', "naïve'\\pass");
    // escapeLiteral doubles quotes and, with a backslash present, uses the E'' form.
    expect(sql[0]).toBe(`ALTER ROLE "app" WITH PASSWORD  E'naïve''\\\\pass'`);
  });
});

describe('scramSha256Verifier', () => {
  it('matches the RFC 7677 example exchange', () => {
    // RFC 7677 section 3: user "user", password "pencil".
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const verifier = scramSha256Verifier('pencil', salt)!;
    const [, rest] = verifier.split('$4096:');
    const [, keys] = rest!.split('$');
    const [storedKey, serverKey] = keys!.split(':').map((k) => Buffer.from(k, 'base64'));
    const authMessage =
      'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const serverSignature = createHmac('sha256', serverKey!).update(authMessage).digest('base64');
    expect(serverSignature).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    const proof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
    const clientSignature = createHmac('sha256', storedKey!).update(authMessage).digest();
    const clientKey = Buffer.from(proof.map((b, i) => b ^ clientSignature[i]!));
    expect(createHash('sha256').update(clientKey).digest().equals(storedKey!)).toBe(true);
  });

  it('leaves non-ASCII passwords to the server', () => {
    expect(scramSha256Verifier('pässword')).toBeUndefined();
    expect(scramSha256Verifier('tab\there')).toBeUndefined();
  });
});
