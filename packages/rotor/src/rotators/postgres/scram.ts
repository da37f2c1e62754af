import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

const ITERATIONS = 4096;

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677; the format of
 * `PQencryptPasswordConn`). Sending the verifier instead of the password keeps the password out of the server's
 * statement log and pg_stat_statements.
 *
 * Returns undefined for a password that SASLprep could change (anything beyond printable ASCII): such a password
 * is sent as a literal and the server derives the verifier itself.
 */
export function scramSha256Verifier(password: string, salt: Buffer = randomBytes(16)): string | undefined {
  if (!/^[\x20-\x7e]*$/.test(password)) return undefined;
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
