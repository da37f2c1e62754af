/**
 * The store name an id starts with (`bao:secret/prod/db` names `bao`), or undefined for a plain id or an ARN. Store
 * names are lower-case letters, digits and -, starting with a letter; `arn` is never one.
 */
export function storeNameOf(secretId: string): string | undefined {
  const match = /^([a-z][a-z0-9-]*):/.exec(secretId);
  return match && match[1] !== 'arn' ? match[1] : undefined;
}
