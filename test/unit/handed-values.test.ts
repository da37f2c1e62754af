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

  it('are those of the step that reads them, and only there', async () => {
    await withHandedValues(async () => noteHanded(JSON.stringify({ password: 'first-step-secret' })));
    await withHandedValues(async () => {
      expect(redactHanded('first-step-secret')).toBe('first-step-secret');
    });
    expect(redactHanded('first-step-secret')).toBe('first-step-secret');
  });
});
