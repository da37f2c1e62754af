/**
 * AWS Secrets Manager staging labels; rotor keeps the same protocol in every store. Imports nothing, so the
 * consumer library (rotor-consumers) can use it without loading Temporal.
 */
export const Stage = {
  current: 'AWSCURRENT',
  pending: 'AWSPENDING',
  previous: 'AWSPREVIOUS',
} as const;
export type Stage = (typeof Stage)[keyof typeof Stage];
