import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { rotators, type RotatorRegistry } from '../../packages/rotor/src/rotators/registry';
import type { Rotator, RotatorContext } from '../../packages/rotor/src/rotators/rotator';
import { TestFailedError } from 'rotor-consumers/core';

/** File-name-safe form of a secret id, for the hold files. */
export function holdSlug(secretId: string): string {
  return secretId.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * Test-only wrappers around the real rotators, driven by the secret id so that one worker serves every scenario:
 * - `fail-test` in the id: testing the value that `set` installed fails (after the real set changed the target);
 *   testing any other value (compensation checking the restored one) works as usual;
 * - `hold-test` in the id: the test step writes `<holdDir>/<slug>.held` and waits for `<slug>.release`, so a
 *   test can freeze the store or kill the worker at a known point; each entry adds a line to `<slug>.entries`
 *   (`heldEntries`), in whichever worker process it runs;
 * - `no-hold` in the id: no wait before finish (`holdBeforeFinish` answers 0), the control that shows what the
 *   JWKS pre-publication wait prevents.
 */
export function faultyRotators(holdDir: string | undefined): RotatorRegistry {
  const installed = new Map<string, string>();
  const wrap = <S>(inner: Rotator<S>): Rotator<S> => ({
    ...inner,
    ...(inner.holdBeforeFinish
      ? {
          holdBeforeFinish: (secretId: string, pending: S, context: RotatorContext) =>
            secretId.includes('no-hold') ? Promise.resolve(0) : inner.holdBeforeFinish!(secretId, pending, context),
        }
      : {}),
    async set(secretId, versions, context) {
      installed.set(secretId, JSON.stringify(versions.pending));
      return inner.set(secretId, versions, context);
    },
    async test(secretId, value, context) {
      if (secretId.includes('fail-test') && installed.get(secretId) === JSON.stringify(value)) {
        throw new TestFailedError(secretId, 'injected by the test rotator');
      }
      if (secretId.includes('hold-test') && holdDir) {
        const slug = holdSlug(secretId);
        writeFileSync(path.join(holdDir, `${slug}.held`), '');
        const info = Context.current().info;
        appendFileSync(
          path.join(holdDir, `${slug}.entries`),
          `${JSON.stringify({ pid: process.pid, local: info.isLocal, attempt: info.attempt, at: Date.now() })}\n`,
        );
        while (!existsSync(path.join(holdDir, `${slug}.release`))) await new Promise((r) => setTimeout(r, 100));
      }
      return inner.test(secretId, value, context);
    },
  });
  return Object.fromEntries(
    Object.entries(rotators).map(([kind, r]) => [kind, wrap(r as Rotator<unknown>)]),
  ) as RotatorRegistry;
}

/** A fresh directory for hold files, one per test file. */
export function holdDirectory(): string {
  return mkdtempSync(path.join(tmpdir(), 'rotor-hold-'));
}

/** Waits until the test rotator holds the test step of `secretId` (set has changed the target by then). */
export async function waitUntilHeld(holdDir: string, secretId: string): Promise<void> {
  const file = path.join(holdDir, `${holdSlug(secretId)}.held`);
  for (let i = 0; i < 600 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(file)) throw new Error(`the test step of ${secretId} was never reached`);
}

/** One entry into a held test step: the worker process, whether it ran as a local activity, when. */
export interface HeldEntry {
  pid: number;
  local: boolean;
  attempt: number;
  at: number;
}

/** The entries into the held test step of `secretId`, in order. */
export function heldEntries(holdDir: string, secretId: string): HeldEntry[] {
  const file = path.join(holdDir, `${holdSlug(secretId)}.entries`);
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as HeldEntry)
    : [];
}

/** Lets the held test step of `secretId` go on. */
export function releaseHold(holdDir: string, secretId: string): void {
  writeFileSync(path.join(holdDir, `${holdSlug(secretId)}.release`), '');
}
