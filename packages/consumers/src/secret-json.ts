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
