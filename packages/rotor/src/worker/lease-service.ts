import { randomUUID } from 'node:crypto';
import { Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { Stage, UnavailableError } from 'rotor-consumers/core';
import type { SecretStore } from 'rotor-consumers/stores';
import { parseMysqlSecret } from '../rotators/mysql/single-user';
import { parsePostgresSecret } from '../rotators/postgres/single-user';
import { leasePassword, parseDynamicTemplate } from '../rotators/dynamic/template';
import { SearchAttribute } from '../shared/constants';
import { LEASE_NAMES, leaseWorkflowId, type LeaseInput, type LeaseView } from '../shared/lease';

/** What an application gets for a lease: where to log in, as whom, until when. Sent to it only, never logged. */
export interface LeaseCredential {
  leaseId: string;
  secretId: string;
  generation: number;
  engine: 'postgres' | 'mysql';
  host: string;
  port: number;
  dbname?: string;
  username: string;
  password: string;
  expiresAtMs: number;
  renewEveryMs: number;
}

/** The report endpoint's lease routes, over the lease workflows. `owner` is the token's name. */
export interface LeaseService {
  open(secretId: string, owner: string): Promise<LeaseCredential>;
  /** The lease's credential now; undefined when the lease has ended or is not this owner's. */
  renew(leaseId: string, owner: string): Promise<LeaseCredential | undefined>;
  release(leaseId: string, owner: string): Promise<void>;
}

/** Where a template's logins go, read once a minute at most per secret (no value kept but the template's key). */
interface Terms {
  engine: 'postgres' | 'mysql';
  host: string;
  port: number;
  dbname?: string;
  key: Buffer;
  readAt: number;
}
const TERMS_FOR_MS = 60_000;
const STALE_FOR_MS = 24 * 3_600_000;

/**
 * Leases as lease workflows on `taskQueue`: `open` starts one (`rotor/lease/<leaseId>`) and waits for its first
 * login; `renew` is the workflow's renew Update (the instance is alive); `release` its release signal. The password
 * is derived here from the template's key, the lease and the generation: it is in no workflow's history.
 */
export function temporalLeases(client: Client, store: SecretStore, taskQueue: string): LeaseService {
  const terms = new Map<string, Terms>();
  const termsOf = async (secretId: string): Promise<Terms> => {
    const known = terms.get(secretId);
    if (known && Date.now() - known.readAt < TERMS_FOR_MS) return known;
    try {
      return await readTerms(secretId);
    } catch (error) {
      // The store away: renewals go on with what was read last (a day at most), as the lease's steps do.
      if (error instanceof UnavailableError && known && Date.now() - known.readAt < STALE_FOR_MS) return known;
      throw error;
    }
  };
  const readTerms = async (secretId: string): Promise<Terms> => {
    const raw = (await store.getByStage(secretId, Stage.current))?.value;
    if (raw === undefined) throw new Error(`secret ${secretId} has no ${Stage.current} version`);
    const template = parseDynamicTemplate(secretId, raw);
    const adminRaw = (await store.getByStage(template.admin, Stage.current))?.value;
    if (adminRaw === undefined) throw new Error(`admin secret ${template.admin} has no ${Stage.current} version`);
    const admin =
      template.engine === 'postgres'
        ? parsePostgresSecret(template.admin, adminRaw)
        : parseMysqlSecret(template.admin, adminRaw);
    const fresh: Terms = {
      engine: template.engine,
      host: admin.host,
      port: admin.port,
      ...((template.dbname ?? admin.dbname) ? { dbname: template.dbname ?? admin.dbname } : {}),
      key: template.passwordKey,
      readAt: Date.now(),
    };
    terms.set(secretId, fresh);
    return fresh;
  };
  const credential = async (view: LeaseView): Promise<LeaseCredential | undefined> => {
    if (view.ended || view.generation === undefined || !view.username || view.expiresAtMs === undefined)
      return undefined;
    const t = await termsOf(view.secretId);
    return {
      leaseId: view.leaseId,
      secretId: view.secretId,
      generation: view.generation,
      engine: t.engine,
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
  return {
    async open(secretId, owner) {
      await termsOf(secretId);
      const leaseId = randomUUID();
      const input: LeaseInput = { secretId, leaseId, owner };
      await client.workflow.start('dynamicLease', {
        workflowId: leaseWorkflowId(leaseId),
        taskQueue,
        args: [input],
        typedSearchAttributes: [
          { key: SearchAttribute.secretId, value: secretId },
          { key: SearchAttribute.phase, value: 'leased' },
        ],
      });
      const view = await renewView(leaseId, owner);
      const issued = view && (await credential(view));
      if (!issued) throw new Error(`lease ${leaseId} of ${secretId} ended before its first login`);
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
  };
}
