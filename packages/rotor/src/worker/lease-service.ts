import { randomUUID } from 'node:crypto';
import { Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { Stage, UnavailableError } from 'rotor-consumers/core';
import type { LeaseCredential, SecretStore } from 'rotor-consumers/stores';
import { adminLoginOf, dynamicEngine, type DynamicEngine } from '../rotators/dynamic/engines';
import {
  leasePassword,
  leaseTerms,
  leaseUsername,
  parseDynamicTemplate,
  type DynamicTemplate,
} from '../rotators/dynamic/template';
import { LastKnownCurrent } from '../activities/last-known';
import { SearchAttribute } from '../shared/constants';
import { LEASE_NAMES, leaseWorkflowId, type LeaseInput, type LeaseView } from '../shared/lease';

export type { LeaseCredential };

/** The report endpoint's lease routes, over the lease workflows. `owner` is the token's name. */
export interface LeaseService {
  open(secretId: string, owner: string): Promise<LeaseCredential>;
  /** The lease's credential now; undefined when the lease has ended or is not this owner's. */
  renew(leaseId: string, owner: string): Promise<LeaseCredential | undefined>;
  release(leaseId: string, owner: string): Promise<void>;
  /** Releases the leases this endpoint holds ready (their logins are revoked). */
  close(): Promise<void>;
}

/** Where a template's logins go, read once a minute at most per secret (no value kept but the template's key). */
interface Terms {
  engineName: 'postgres' | 'mysql';
  host: string;
  port: number;
  dbname?: string;
  key: Buffer;
  readAt: number;
  template: DynamicTemplate;
  /** The template's logins are made and revoked through this (the admin login, read with the template). */
  engine: DynamicEngine;
}
const TERMS_FOR_MS = 60_000;

/**
 * Leases as lease workflows on `taskQueue`: `open` starts one (`rotor/lease/<leaseId>`) and waits for its first
 * login; `renew` is the workflow's renew Update (the instance is alive); `release` its release signal. The password
 * is derived here from the template's key, the lease and the generation: it is in no workflow's history.
 */
export function temporalLeases(
  client: Client,
  given: SecretStore,
  taskQueue: string,
  reads: LastKnownCurrent = new LastKnownCurrent(),
): LeaseService {
  // The store away: renewals go on with what was read last (a day at most), shared with the lease's steps.
  const store = reads.over(given);
  const terms = new Map<string, Terms>();
  /** The template's terms, read at most once a minute; `fresh`: read again unless read since `fresh` (ms). */
  const termsOf = async (secretId: string, fresh?: number): Promise<Terms> => {
    const known = terms.get(secretId);
    if (known && Date.now() - known.readAt < TERMS_FOR_MS && (fresh === undefined || known.readAt >= fresh))
      return known;
    return readTerms(secretId);
  };
  const readTerms = async (secretId: string): Promise<Terms> => {
    const raw = (await store.getByStage(secretId, Stage.current))?.value;
    if (raw === undefined) throw new Error(`secret ${secretId} has no ${Stage.current} version`);
    const template = parseDynamicTemplate(secretId, raw);
    const adminRaw = (await store.getByStage(template.admin, Stage.current))?.value;
    if (adminRaw === undefined) throw new Error(`admin secret ${template.admin} has no ${Stage.current} version`);
    const admin = adminLoginOf(template, adminRaw);
    const now = Date.now();
    const fresh: Terms = {
      engineName: template.engine,
      host: admin.host,
      port: admin.port,
      ...((template.dbname ?? admin.dbname) ? { dbname: template.dbname ?? admin.dbname } : {}),
      key: template.passwordKey,
      // When the store said so: earlier than now when the store is away and the worker's memory answered, so the
      // first renewal after it is back reads again.
      readAt: Math.min(reads.readAt(secretId) ?? now, reads.readAt(template.admin) ?? now),
      template,
      engine: dynamicEngine(secretId, template, admin),
    };
    terms.set(secretId, fresh);
    return fresh;
  };
  const credential = async (view: LeaseView): Promise<LeaseCredential | undefined> => {
    if (view.ended || view.generation === undefined || !view.username || view.expiresAtMs === undefined)
      return undefined;
    // A login made after the terms were read may come from a template whose key changed since: read it again.
    const t = await termsOf(view.secretId, view.issuedAtMs);
    return {
      leaseId: view.leaseId,
      secretId: view.secretId,
      generation: view.generation,
      engine: t.engineName,
      host: t.host,
      port: t.port,
      ...(t.dbname ? { dbname: t.dbname } : {}),
      username: view.username,
      password: leasePassword(t.key, view.leaseId, view.generation),
      expiresAtMs: view.expiresAtMs,
      renewEveryMs: view.renewEveryMs,
    };
  };
  const renewView = async (leaseId: string, owner: string): Promise<LeaseView | undefined> => {
    try {
      return await client.workflow
        .getHandle(leaseWorkflowId(leaseId))
        .executeUpdate<LeaseView, [{ owner: string }]>(LEASE_NAMES.renew, { args: [{ owner }] });
    } catch (error) {
      // Ended, unknown, or another token's: the application opens a new lease.
      if (error instanceof WorkflowNotFoundError || error instanceof WorkflowUpdateFailedError) return undefined;
      if ((error as Error).name === 'WorkflowNotFoundError') return undefined;
      throw error;
    }
  };
  /** Makes a lease and its first login for `owner`; see `open`. */
  const issue = async (secretId: string, owner: string): Promise<LeaseCredential> => {
    const t = await termsOf(secretId);
    const leaseId = randomUUID();
    const now = Date.now();
    const first = {
      username: leaseUsername(t.template.usernamePrefix, leaseId, 0),
      issuedAtMs: now,
      expiresAtMs: now + t.template.ttlMs,
      maxExpiresAtMs: now + t.template.maxTtlMs,
    };
    const password = leasePassword(t.key, leaseId, 0);
    const input: LeaseInput = { secretId, leaseId, owner, first, terms: leaseTerms(t.template) };
    // The workflow starts while the login is made, and the login exists only once the workflow does (PostgreSQL
    // commits it after the start; MySQL makes it after): a worker dying at any line leaves no login without a
    // workflow that will revoke it.
    const starting = client.workflow.start('dynamicLease', {
      workflowId: leaseWorkflowId(leaseId),
      taskQueue,
      args: [input],
      typedSearchAttributes: [
        { key: SearchAttribute.secretId, value: secretId },
        { key: SearchAttribute.phase, value: 'leased' },
      ],
      // Its first login counts from the start (`rotor status`), not from the workflow's first task.
      memo: { liveLogins: 1 },
    });
    const [started, created] = await Promise.allSettled([
      starting,
      createWithRetries(() =>
        t.engine.create(
          first.username,
          password,
          new Date(first.expiresAtMs),
          new Date(first.maxExpiresAtMs),
          () => starting,
        ),
      ),
    ]);
    if (started.status === 'rejected') throw started.reason; // no login was made (or committed)
    if (created.status === 'rejected') {
      // The workflow revokes whatever of the login was made.
      await started.value.signal(LEASE_NAMES.release, { owner }).catch(() => undefined);
      throw redacted(created.reason, password);
    }
    return {
      leaseId,
      secretId,
      generation: 0,
      engine: t.engineName,
      host: t.host,
      port: t.port,
      ...(t.dbname ? { dbname: t.dbname } : {}),
      username: first.username,
      password,
      expiresAtMs: first.expiresAtMs,
      renewEveryMs: leaseTerms(t.template).renewEveryMs,
    };
  };

  /*
   * Standby leases (a template's `standby`): leases this endpoint holds ready, renewed by it under an owner no token
   * can be (`standby:<random>`), handed over at once on a request. They end like any lease when this process stops
   * renewing them.
   */
  const standbyOwner = `standby:${randomUUID()}`;
  interface Standby {
    credential: LeaseCredential;
    timer: NodeJS.Timeout;
    /** When its last renewal went through, and when its login will be replaced. */
    renewedAt: number;
    replaceAtMs: number;
  }
  const ready = new Map<string, Standby[]>();
  /** Ends a standby lease this endpoint no longer holds ready. */
  const releaseStandby = (entry: Standby) => {
    clearInterval(entry.timer);
    void client.workflow
      .getHandle(leaseWorkflowId(entry.credential.leaseId))
      .signal(LEASE_NAMES.release, { owner: standbyOwner })
      .catch(() => undefined);
  };
  /**
   * A standby lease fit to hand over: renewed within the last two periods (so it has not ended) and not about to be
   * replaced (its new holder renews, and learns of a new login, before the old one is revoked). Unfit ones are
   * released.
   */
  const takeStandby = (secretId: string): Standby | undefined => {
    const list = ready.get(secretId) ?? [];
    for (let entry = list.shift(); entry; entry = list.shift()) {
      const now = Date.now();
      const period = entry.credential.renewEveryMs;
      if (now - entry.renewedAt < period * 2 && now < entry.replaceAtMs - period) return entry;
      releaseStandby(entry);
    }
    return undefined;
  };
  const refilling = new Set<string>();
  const refill = async (secretId: string): Promise<void> => {
    if (refilling.has(secretId)) return;
    refilling.add(secretId);
    try {
      const wanted = (await termsOf(secretId)).template.standby;
      const list = ready.get(secretId) ?? [];
      ready.set(secretId, list);
      const add = async () => {
        const issued = await issue(secretId, standbyOwner);
        const t = await termsOf(secretId);
        const entry: Standby = {
          credential: issued,
          renewedAt: Date.now(),
          replaceAtMs: Date.now() + t.template.maxTtlMs - leaseTerms(t.template).replaceLeadMs,
          timer: setInterval(() => {
            void renewView(issued.leaseId, standbyOwner)
              .then(async (view) => {
                // Renewed: its login may have been replaced meanwhile; ended: it leaves the ready list.
                const now = view && (await credential(view));
                if (now && view) {
                  entry.credential = now;
                  entry.renewedAt = Date.now();
                  if (view.replaceAtMs !== undefined) entry.replaceAtMs = view.replaceAtMs;
                  return;
                }
                clearInterval(entry.timer);
                const i = list.indexOf(entry);
                if (i >= 0) list.splice(i, 1);
              })
              .catch(() => undefined); // Temporal away: the next tick tries again
          }, issued.renewEveryMs),
        };
        entry.timer.unref();
        list.push(entry);
      };
      // All at once: a burst of requests finds them ready sooner.
      await Promise.all(Array.from({ length: Math.max(0, wanted - list.length) }, add));
    } finally {
      refilling.delete(secretId);
    }
  };

  return {
    /**
     * A standby lease when one is ready (handed over by a signal, answered at once), else a new lease whose first
     * login is made here while its workflow starts (both awaited): an application waits for one login and one
     * workflow start, not for the workflow's first steps. A failure of either undoes the other.
     */
    async open(secretId, owner) {
      const entry = takeStandby(secretId);
      if (entry) {
        clearInterval(entry.timer);
        // Not awaited: if the hand-over is lost, this process no longer renews the lease, the application's renewal
        // is refused (410) and it opens another; the lease ends and its logins are revoked.
        void client.workflow
          .getHandle(leaseWorkflowId(entry.credential.leaseId))
          .signal(LEASE_NAMES.claim, { from: standbyOwner, owner })
          .catch(() => undefined);
        void refill(secretId).catch(() => undefined);
        return entry.credential;
      }
      const issued = await issue(secretId, owner);
      void refill(secretId).catch(() => undefined);
      return issued;
    },
    async renew(leaseId, owner) {
      const view = await renewView(leaseId, owner);
      return view && credential(view);
    },
    async release(leaseId, owner) {
      try {
        await client.workflow.getHandle(leaseWorkflowId(leaseId)).signal(LEASE_NAMES.release, { owner });
      } catch (error) {
        if (!(error instanceof WorkflowNotFoundError)) throw error;
      }
    },
    async close() {
      const entries = [...ready.values()].flat();
      ready.clear();
      await Promise.all(
        entries.map(async (entry) => {
          clearInterval(entry.timer);
          await client.workflow
            .getHandle(leaseWorkflowId(entry.credential.leaseId))
            .signal(LEASE_NAMES.release, { owner: standbyOwner })
            .catch(() => undefined);
        }),
      );
    },
  };
}

/** Three attempts, 100 ms apart, while the database answers with a failure that passes (UnavailableError). */
async function createWithRetries(create: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (error) {
      if (!(error instanceof UnavailableError) || attempt >= 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** An error of the first login's creation, with the password taken out of its message (a statement's echo). */
function redacted(error: unknown, password: string): Error {
  if (!(error instanceof Error)) return new Error('creating the login failed');
  if (error.message.includes(password)) error.message = error.message.split(password).join('[redacted]');
  return error;
}
