/** What a short-lived credential's lease takes, keeps and shows (workflows/dynamic-lease.ts): ids, names and times. */

/** When a lease renews, replaces and ends, from its template: numbers only, safe in workflow code. */
export interface LeaseTerms {
  ttlMs: number;
  maxTtlMs: number;
  /** How often the instance renews (a third of the TTL, at most 30 s). */
  renewEveryMs: number;
  /** A lease whose instance has not renewed for this long ends (four missed renewals, at most the TTL). */
  instanceTimeoutMs: number;
  /** A credential is replaced this long before its maximum lifetime ends: the pool has moved by then. */
  replaceLeadMs: number;
}

/** The lease workflow's names, as the Temporal UI shows them. */
export const LEASE_NAMES = {
  renew: 'renewLease',
  release: 'releaseLease',
  /** A standby lease handed to an application: `{ from, owner }`, taken only from its current holder. */
  claim: 'claimLease',
  query: 'lease',
} as const;

/** One lease per workflow: `rotor/lease/<leaseId>`. */
export function leaseWorkflowId(leaseId: string): string {
  return `rotor/lease/${leaseId}`;
}

export interface LeaseInput {
  secretId: string;
  leaseId: string;
  /** Who holds it: the report token's name. */
  owner: string;
  /** The first login, made by the endpoint while the workflow started (its name and times; never its password). */
  first?: { username: string; issuedAtMs: number; expiresAtMs: number; maxExpiresAtMs: number };
  /** The terms, read by the endpoint from the template it made the first login with. */
  terms?: LeaseTerms;
}

/** One login of a lease. */
export interface LeaseGeneration {
  n: number;
  username: string;
  issuedAtMs: number;
  renewedAtMs: number;
  expiresAtMs: number;
  maxExpiresAtMs: number;
  revoked: boolean;
}

/** What a lease carries across continue-as-new. */
export interface LeaseState {
  terms: LeaseTerms;
  /** Who holds it now (a standby lease changes hands once). */
  owner: string;
  generations: LeaseGeneration[];
  lastRenewAt: number;
  /** Whether its holder has renewed it since it changed hands. */
  renewed?: boolean;
  released: boolean;
  ended?: 'released' | 'instance-gone';
}

/** What the lease answers: the current login's name and expiry, never its password. */
export interface LeaseView {
  leaseId: string;
  secretId: string;
  ended: boolean;
  renewEveryMs: number;
  generation?: number;
  username?: string;
  /** When the current login was made, and when it will be replaced by a new one. */
  issuedAtMs?: number;
  replaceAtMs?: number;
  expiresAtMs?: number;
  liveLogins: number;
}
