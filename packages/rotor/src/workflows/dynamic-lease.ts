import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  ContinueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { RotorActivities } from '../activities';
import { SearchAttribute } from '../shared/constants';
import { LEASE_NAMES, type LeaseInput, type LeaseState, type LeaseView } from '../shared/lease';
import type { AuditEvent } from '../shared/reporting';
import { LEASE_OPTIONS } from './activity-options';
import { readPatches } from './patches';
import { workflowAuditor } from './reporting';

/*
 * A short-lived database credential's lease, one workflow per lease (`rotor/lease/<leaseId>`): issue a login, renew
 * it when a third of its lifetime is left (more for a short TTL, `renewLeadMs`) while the application renews the
 * lease, replace it with a new login before its maximum lifetime (the application's pool moves at its next renewal,
 * before the old login ends), and revoke every login when the application releases the lease or stops renewing it.
 * Passwords never enter this workflow: each is derived from the template's key where it is used.
 */

export const renewLeaseUpdate = defineUpdate<LeaseView, [{ owner: string }]>(LEASE_NAMES.renew);
export const releaseLeaseSignal = defineSignal<[{ owner: string }]>(LEASE_NAMES.release);
export const claimLeaseSignal = defineSignal<[{ from: string; owner: string }]>(LEASE_NAMES.claim);
export const leaseQuery = defineQuery<LeaseView>(LEASE_NAMES.query);

/** Events after which a lease continues as new, unless Temporal suggests it earlier. */
const HISTORY_CEILING = 5000;

/** The most of a login's lifetime a renewal leaves for a worker's delays beyond the third it always leaves. */
const RENEW_MARGIN_CAP_MS = 30_000;

/**
 * How long before its backstop a login is renewed: a third of the TTL, and for a short TTL up to half of it (at most
 * 30 s), so a busy worker or a slow activity dispatch cannot let a 6 s login lapse before its renewal runs.
 */
export function renewLeadMs(ttlMs: number): number {
  return Math.max(ttlMs / 3, Math.min(ttlMs / 2, RENEW_MARGIN_CAP_MS));
}

function isContinueAsNew(error: unknown): boolean {
  return error instanceof ContinueAsNew;
}

export async function dynamicLease(input: LeaseInput, carried?: LeaseState): Promise<LeaseView> {
  const patches = readPatches('dynamicLease');
  const { leaseTermsOf } = proxyActivities<RotorActivities>(LEASE_OPTIONS.terms);
  const { issueLeaseCredential, renewLeaseCredential, revokeLeaseCredential } = proxyActivities<RotorActivities>(
    LEASE_OPTIONS.step,
  );
  const appending: Promise<unknown>[] = [];
  const append = workflowAuditor(input.secretId, 'lease');
  /** Appends an audit event (names, generations and counts: never a password); awaited before the run ends. */
  const audit = (kind: AuditEvent['kind'], fields: Pick<AuditEvent, 'outcome' | 'actor' | 'detail'>) =>
    appending.push(append(kind, fields));
  // Handlers first: an application's first renewal may arrive with the workflow's first task.
  const state: Omit<LeaseState, 'terms'> & { terms?: LeaseState['terms'] } = carried ?? {
    generations: input.first ? [{ n: 0, ...input.first, renewedAtMs: input.first.issuedAtMs, revoked: false }] : [],
    owner: input.owner,
    lastRenewAt: Date.now(),
    released: false,
  };
  const view = (): LeaseView => {
    const current = state.generations.at(-1);
    return {
      leaseId: input.leaseId,
      secretId: input.secretId,
      ended: state.ended !== undefined,
      renewEveryMs: state.terms?.renewEveryMs ?? 0,
      ...(current
        ? {
            generation: current.n,
            username: current.username,
            issuedAtMs: current.issuedAtMs,
            expiresAtMs: current.expiresAtMs,
            ...(state.terms ? { replaceAtMs: current.maxExpiresAtMs - state.terms.replaceLeadMs } : {}),
          }
        : {}),
      liveLogins: state.generations.filter((g) => !g.revoked).length,
    };
  };
  const fromOwner = (owner: string) => {
    if (owner !== state.owner) throw ApplicationFailure.nonRetryable("not this lease's holder", 'RotorRequestRefused');
  };
  setHandler(leaseQuery, view);
  setHandler(
    renewLeaseUpdate,
    async () => {
      state.lastRenewAt = Date.now();
      state.renewed = true;
      await condition(() => state.generations.length > 0 || state.ended !== undefined);
      return view();
    },
    {
      validator: ({ owner }) => {
        fromOwner(owner);
        if (state.ended) throw ApplicationFailure.nonRetryable('the lease has ended', 'RotorRequestRefused');
      },
    },
  );
  setHandler(releaseLeaseSignal, ({ owner }) => {
    if (owner === state.owner) state.released = true;
  });
  setHandler(claimLeaseSignal, ({ from, owner }) => {
    if (from !== state.owner || state.ended) return;
    state.owner = owner;
    state.lastRenewAt = Date.now();
    state.renewed = false;
  });
  // The endpoint gives the terms with the first login it made: nothing the store says later can fail the lease then.
  state.terms ??= input.terms ?? (await leaseTermsOf({ secretId: input.secretId }));
  const terms = state.terms;
  /**
   * How long the instance may stay silent: four renewal periods (at most the TTL) once it has renewed; two before it
   * ever has (an application that asked and vanished, a restart loop, is taken for gone sooner).
   */
  const instanceTimeout = () =>
    state.renewed ? terms.instanceTimeoutMs : Math.min(terms.instanceTimeoutMs, terms.renewEveryMs * 2);

  const issue = async (n: number) => {
    const now = Date.now();
    const generation = {
      n,
      issuedAtMs: now,
      expiresAtMs: now + terms.ttlMs,
      maxExpiresAtMs: now + terms.maxTtlMs,
      renewedAtMs: now,
      username: '',
      revoked: false,
    };
    const { username } = await issueLeaseCredential({
      secretId: input.secretId,
      leaseId: input.leaseId,
      generation: n,
      expiresAtMs: generation.expiresAtMs,
      maxExpiresAtMs: generation.maxExpiresAtMs,
    });
    state.generations.push({ ...generation, username });
    publish();
    audit('lease-issued', { outcome: username, detail: { leaseId: input.leaseId, generation: n } });
  };
  const publish = () => upsertMemo({ liveLogins: state.generations.filter((g) => !g.revoked).length });
  const revoke = async (g: LeaseState['generations'][number]) => {
    const report = await revokeLeaseCredential({ secretId: input.secretId, username: g.username });
    g.revoked = true;
    publish();
    audit('lease-revoked', {
      outcome: report.existed ? 'revoked' : 'already-gone',
      detail: { leaseId: input.leaseId, generation: g.n, login: g.username, sessionsEnded: report.sessionsEnded },
    });
  };

  try {
    if (state.generations.length === 0 && !state.released) await issue(0);
    else if (!carried) {
      publish();
      const first = state.generations[0]!;
      audit('lease-issued', {
        outcome: first.username,
        actor: `token:${input.owner}`,
        detail: { leaseId: input.leaseId, generation: 0 },
      });
    }

    for (;;) {
      const now = Date.now();
      const current = state.generations.at(-1)!;
      const instanceGone = now - state.lastRenewAt >= instanceTimeout();
      if (state.released || instanceGone || state.ended) {
        state.ended = state.released ? 'released' : 'instance-gone';
        for (const g of state.generations) if (!g.revoked) await revoke(g);
        upsertSearchAttributes([{ key: SearchAttribute.phase, value: 'ended' }]);
        audit('lease-ended', { outcome: state.ended, detail: { leaseId: input.leaseId } });
        await Promise.all(appending);
        await condition(allHandlersFinished);
        return view();
      }
      // Older generations end at their own maximum lifetime: the pool left them at a renewal since.
      for (const g of state.generations.slice(0, -1))
        if (!g.revoked && now >= g.maxExpiresAtMs - terms.renewEveryMs) await revoke(g);
      const replaceAt = current.maxExpiresAtMs - terms.replaceLeadMs;
      const renewAt =
        current.renewedAtMs + terms.ttlMs - (patches.leaseRenewLead ? renewLeadMs(terms.ttlMs) : terms.ttlMs / 3);
      if (now >= replaceAt) {
        // The login being replaced keeps working until it is revoked: its backstop moves to its maximum lifetime.
        if (current.expiresAtMs < current.maxExpiresAtMs) {
          await renewLeaseCredential({
            secretId: input.secretId,
            username: current.username,
            expiresAtMs: current.maxExpiresAtMs,
          });
          current.expiresAtMs = current.maxExpiresAtMs;
        }
        await issue(current.n + 1);
        continue;
      }
      if (now >= renewAt && current.expiresAtMs < current.maxExpiresAtMs) {
        const expiresAtMs = Math.min(now + terms.ttlMs, current.maxExpiresAtMs);
        const renewed = await renewLeaseCredential({
          secretId: input.secretId,
          username: current.username,
          expiresAtMs,
        });
        if (renewed.gone) {
          // Dropped behind rotor's back: a new login now, the holder moves to it at its next renewal.
          current.revoked = true;
          await issue(current.n + 1);
          continue;
        }
        current.expiresAtMs = expiresAtMs;
        current.renewedAtMs = now;
        continue;
      }
      const info = workflowInfo();
      if (info.continueAsNewSuggested || info.historyLength >= HISTORY_CEILING) {
        await Promise.all(appending);
        await condition(allHandlersFinished);
        // Revoked logins stay behind: the state carried is the live ones (and the current).
        const generations = state.generations.filter((g, i, all) => !g.revoked || i === all.length - 1);
        await continueAsNew<typeof dynamicLease>(input, { ...state, terms, generations });
      }
      const older = state.generations
        .slice(0, -1)
        .filter((g) => !g.revoked)
        .map((g) => g.maxExpiresAtMs - terms.renewEveryMs);
      const wakeAt = Math.min(
        replaceAt,
        current.expiresAtMs < current.maxExpiresAtMs ? renewAt : Infinity,
        state.lastRenewAt + instanceTimeout(),
        ...older,
      );
      // Woken early by a release; a renewal only moves the instance's deadline, read at the next wake.
      await condition(() => state.released, Math.max(wakeAt - Date.now(), 1));
    }
  } catch (error) {
    // A lease that fails (a template broken for good, a step refused) takes its logins with it: every one still live
    // is revoked before the failure is reported. Continue-as-new is not a failure.
    if (isContinueAsNew(error)) throw error;
    // A cancelled lease revokes too: outside the cancelled scope.
    await CancellationScope.nonCancellable(async () => {
      for (const g of state.generations) if (!g.revoked) await revoke(g).catch(() => undefined);
      await Promise.allSettled(appending);
    });
    throw error;
  }
}
