import { describe, expect, it } from 'vitest';
import { noteHanded, redactHanded, withHandedValues } from '../../packages/rotor/src/activities/handed-values';

describe('values handed to a step', () => {
  it('are redacted from any text, in their JSON-escaped form too, while names stay', async () => {
    await withHandedValues(async () => {
      noteHanded(
        JSON.stringify({
          engine: 'postgres',
          host: 'db.internal',
          username: 'orders_app',
          password: 'pa"ss\\word-42',
          apiToken: 'tok-0123456789',
        }),
      );
      noteHanded('a-plain-value-not-json');
      const text =
        `ERR near 'pa"ss\\word-42' for orders_app at db.internal; body {"password":"pa\\"ss\\\\word-42"} ` +
        `token tok-0123456789, raw a-plain-value-not-json`;
      expect(redactHanded(text)).toBe(
        `ERR near '[redacted]' for orders_app at db.internal; body {"password":"[redacted]"} token [redacted], raw [redacted]`,
      );
    });
  });

  it("are redacted when a target echoes part of one, or quotes it for SQL (MySQL's near '...' cut at 80 characters)", async () => {
    await withHandedValues(async () => {
      const password = "It's-a-Long-Pass\\word-0123456789-abcdefghij";
      noteHanded(JSON.stringify({ engine: 'mysql', username: 'billing_app', password }));
      const sql = `ALTER USER 'billing_app'@'%' IDENTIFIED BY '${password.replace(/'/g, "''")}'`;
      const near = `You have an error in your SQL syntax; near '${sql.slice(12, 92)}' at line 1`;
      const backslashed = `near 'IDENTIFIED BY '${password.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
      for (const echoed of [near, backslashed, `cut: ${password.slice(0, 12)}`, `tail: ${password.slice(-9)}`]) {
        const redacted = redactHanded(echoed);
        for (let i = 0; i + 8 <= password.length; i++) expect(redacted).not.toContain(password.slice(i, i + 8));
        expect(redacted).toContain('[redacted]');
      }
      expect(redactHanded(near)).toContain("'billing_app'@'%'"); // names stay
    });
  });

  it('are those of the step that reads them, and only there', async () => {
    await withHandedValues(async () => noteHanded(JSON.stringify({ password: 'first-step-secret' })));
    await withHandedValues(async () => {
      expect(redactHanded('first-step-secret')).toBe('first-step-secret');
    });
    expect(redactHanded('first-step-secret')).toBe('first-step-secret');
  });
});
