import type { z } from 'zod';
import { InvalidSecretError } from 'rotor-consumers/core';

export { parseJsonObject } from 'rotor-consumers/core';

/**
 * Validates `json` against `schema` and reports every problem at once with its field, never with the field's
 * value (a value may be a password).
 */
export function validateShape<T>(secretId: string, schema: z.ZodType<T>, json: Record<string, unknown>): T {
  const result = schema.safeParse(json);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : '(secret)';
    const missing =
      issue.code === 'invalid_type' && json[String(issue.path[0])] === undefined && issue.path.length === 1;
    return missing ? `${field}: is required` : `${field}: ${issue.message}`;
  });
  throw new InvalidSecretError(secretId, problems);
}
