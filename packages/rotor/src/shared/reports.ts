/** What `rotor check` and `rotor setup` answer: names, outcomes and SQL with identifiers only, never a value. */

/** One statement of `rotor setup`'s plan: its SQL (names only, never a value) and whether it is already in place. */
export interface SetupStatement {
  sql: string;
  done: boolean;
}

/** `rotor setup`'s plan for a pair, and how many statements it ran (0 on a dry run or when all were in place). */
export interface SetupPlan {
  owner: string;
  statements: SetupStatement[];
  applied: number;
}

/** The checks `rotor check` runs on a secret, in order. */
export const CHECK_NAMES = ['store', 'shape', 'policies', 'login', 'pending'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** One check of a secret: what was found, and what to do when it failed. Never a value. */
export interface SecretCheck {
  name: CheckName;
  ok: boolean;
  detail: string;
  hint?: string;
}

/** `rotor check`'s answer for one secret. */
export interface SecretCheckReport {
  secretId: string;
  rotator?: string;
  ok: boolean;
  checks: SecretCheck[];
}
