import { log } from '@temporalio/activity';
import { InvalidInputError, InvalidSecretError } from 'rotor-consumers/core';
import { adminLoginOf, dynamicEngine, type RevokeReport } from '../rotators/dynamic/engines';
import {
  isLeaseUsername,
  leasePassword,
  leaseTerms,
  leaseUsername,
  parseDynamicTemplate,
  type DynamicTemplate,
} from '../rotators/dynamic/template';
import type { LeaseTerms } from '../shared/lease';
import type { ActivityDeps } from './ports';
import { notingStore, noteHanded } from './handed-values';
import { createStepContext } from './step-context';
import { LastKnownCurrent } from './last-known';

/** What a lease's steps take: ids and times, never a value (passwords are derived where they are used). */
export interface LeaseCredentialInput {
  secretId: string;
  leaseId: string;
  generation: number;
  expiresAtMs: number;
  maxExpiresAtMs: number;
}

/**
 * The steps of a short-lived credential's lease (workflows/dynamic-lease.ts): the terms from its template, issue,
 * renew and revoke, each idempotent, as the template's admin login.
 */
export function createLeaseSteps(deps: ActivityDeps) {
  // While the store does not answer, a lease goes on with the template and admin login read last (a day at most).
  const reads = deps.leaseReads ?? new LastKnownCurrent();
  // Noted as handed to the step whether the store or the memory gave them: no error quotes them either way.
  const { context, step } = createStepContext({ ...deps, store: notingStore(reads.over(deps.store)) });

  /** The last template that parsed, per secret: a template broken later does not strand the logins made from it. */
  const lastGood = new Map<string, DynamicTemplate>();

  async function templateOf(secretId: string): Promise<DynamicTemplate> {
    try {
      const template = parseDynamicTemplate(secretId, await context.readCurrent(secretId));
      lastGood.set(secretId, template);
      return template;
    } catch (error) {
      const known = lastGood.get(secretId);
      if (error instanceof InvalidSecretError && known) {
        log.warn('lease template no longer valid: its leases go on with the last one that was', { secretId });
        return known;
      }
      throw error;
    }
  }

  async function engineFor(secretId: string) {
    const template = await templateOf(secretId);
    const raw = await context.readCurrent(template.admin);
    const admin = adminLoginOf(template, raw);
    return { template, engine: dynamicEngine(secretId, template, admin) };
  }

  return {
    /** The lease's timings, from its template: checked here, so a bad template fails before anything is made. */
    async leaseTermsOf(input: { secretId: string }): Promise<LeaseTerms> {
      return step('lease-terms', input.secretId, 'dynamic-database', async () => {
        const { template } = await engineFor(input.secretId);
        return leaseTerms(template);
      });
    },

    /** Creates generation `generation`'s login; returns its name (the password stays with the worker). */
    async issueLeaseCredential(input: LeaseCredentialInput): Promise<{ username: string }> {
      return step('lease-issue', input.secretId, 'dynamic-database', async () => {
        const { template, engine } = await engineFor(input.secretId);
        const username = leaseUsername(template.usernamePrefix, input.leaseId, input.generation);
        const password = leasePassword(template.passwordKey, input.leaseId, input.generation);
        // A statement's error that echoes it (a syntax error near the literal) is redacted like any value handed.
        noteHanded(password);
        await engine.create(username, password, new Date(input.expiresAtMs), new Date(input.maxExpiresAtMs));
        return { username };
      });
    },

    /** Moves the login's backstop; `gone` when the login no longer exists (the lease then makes a new one). */
    async renewLeaseCredential(input: {
      secretId: string;
      username: string;
      expiresAtMs: number;
    }): Promise<{ gone: boolean }> {
      return step('lease-renew', input.secretId, 'dynamic-database', async () => {
        const { engine } = await engineFor(input.secretId);
        return { gone: !(await engine.renew(input.username, new Date(input.expiresAtMs))) };
      });
    },

    async revokeLeaseCredential(input: { secretId: string; username: string }): Promise<RevokeReport> {
      return step('lease-revoke', input.secretId, 'dynamic-database', async () => {
        if (!isLeaseUsername(input.username))
          throw new InvalidInputError(`secret ${input.secretId}: ${input.username} is not a lease login`);
        const { engine } = await engineFor(input.secretId);
        return engine.revoke(input.username);
      });
    },
  };
}

export type LeaseSteps = ReturnType<typeof createLeaseSteps>;
