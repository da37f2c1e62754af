import { patched } from '@temporalio/workflow';

/**
 * Every patch id rotor's workflows branch on, in one place, each with why, since when and when it may go. A patch
 * keeps the workflow able to replay histories recorded before a change: new code runs where `patched(id)` is true,
 * old histories take the other branch.
 *
 * Policy (docs/architecture.md, "Versioning workflow code"):
 * - a change that alters the commands a workflow issues (activities, timers, child workflows, search attributes,
 *   their order) in histories already recorded gets an entry here;
 * - `readPatches(workflow)` runs once, at the top of the workflow, and the rest of the code reads its answer;
 * - once no workflow started before the change can still be running (the longest grace plus the schedules' retention
 *   after the release that shipped it), the entry turns into `deprecatePatch(id)` for one release, then goes, with
 *   the replay histories recorded before it.
 *
 * Before the first release there are no such workflows anywhere: on 2026-12-06 the six pre-release patches
 * (reporting-v1, audit-batched-v1, local-first-steps-v1, ui-summaries-v1, hold-before-finish-v1,
 * cancelled-ends-failed-v1) were folded into the baseline and every replay history was recorded again.
 */
export const PATCHES = {
  leaseRenewLead: {
    id: 'rotor-lease-renew-lead-v1',
    workflow: 'dynamicLease',
    why:
      'a login is renewed when max(TTL/3, min(TTL/2, 30 s)) of it is left, so a short TTL keeps seconds of margin ' +
      'for a busy worker; leases recorded before renew at two thirds of the TTL',
    since: '2026-12-07',
    removableAfter:
      'the first release, once no lease run started before it is open (a run ends when its lease ends or at its ' +
      'continue-as-new, at most 5,000 events)',
  },
} as const satisfies Record<string, Patch>;

/** The workflows that branch on patches. */
export type PatchedWorkflow = 'rotateSecret' | 'dynamicLease';

export interface Patch {
  /** The id given to `patched`: `rotor-<what>-v<n>`, never reused. */
  readonly id: string;
  /** The workflow that branches on it. */
  readonly workflow: PatchedWorkflow;
  /** What changed, and what histories recorded before it do instead. */
  readonly why: string;
  /** The release (or date, before releases) that shipped it. */
  readonly since: string;
  /** When it may turn into `deprecatePatch`. */
  readonly removableAfter: string;
}

/** The patches `W` branches on. */
export type PatchName<W extends PatchedWorkflow = PatchedWorkflow> = {
  [K in keyof typeof PATCHES]: (typeof PATCHES)[K]['workflow'] extends W ? K : never;
}[keyof typeof PATCHES];

/**
 * Whether this run of `workflow` has each of its patches: call once, at the top of the workflow (a `patched` call
 * records a marker).
 */
export function readPatches<W extends PatchedWorkflow>(workflow: W): Record<PatchName<W>, boolean> {
  return Object.fromEntries(
    Object.entries(PATCHES as Record<string, Patch>)
      .filter(([, patch]) => patch.workflow === workflow)
      .map(([name, patch]) => [name, patched(patch.id)]),
  ) as Record<PatchName<W>, boolean>;
}
