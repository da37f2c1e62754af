import type { z } from 'zod';
import { InvalidSecretError } from './errors';

/**
 * Parses a secret's value as a JSON object; throws InvalidSecretError naming the secret (and the version, when
 * given), never quoting the value: JSON.parse's own message quotes the text it choked on, and a secret's text is a
 * password or a key.
 */
export function parseJsonObject(secretId: string, raw: string, versionId?: string): Record<string, unknown> {
  const which = versionId === undefined ? 'the value' : `version ${versionId}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidSecretError(secretId, [`${which} is not valid JSON`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new InvalidSecretError(secretId, [`${which} is not a JSON object`]);
  return parsed as Record<string, unknown>;
}

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
