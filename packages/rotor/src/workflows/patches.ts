import { patched } from '@temporalio/workflow';

/**
 * Every patch id rotor's workflows branch on, in one place, each with why, since when and when it may go. A patch
 * keeps the workflow able to replay histories recorded before a change: new code runs where `patched(id)` is true,
 * old histories take the other branch.
 *
 * Policy (docs/architecture.md, "Versioning workflow code"):
 * - a change that alters the commands a workflow issues (activities, timers, child workflows, search attributes,
 *   their order) in histories already recorded gets an entry here;
 * - `readPatches()` runs once, at the top of the workflow, and the rest of the code reads its answer;
 * - once no workflow started before the change can still be running (the longest grace plus the schedules' retention
 *   after the release that shipped it), the entry turns into `deprecatePatch(id)` for one release, then goes, with
 *   the replay histories recorded before it.
 *
 * Before the first release there are no such workflows anywhere: on 2026-12-06 the six pre-release patches
 * (reporting-v1, audit-batched-v1, local-first-steps-v1, ui-summaries-v1, hold-before-finish-v1,
 * cancelled-ends-failed-v1) were folded into the baseline and every replay history was recorded again.
 */
export const PATCHES = {} as const satisfies Record<string, Patch>;

export interface Patch {
  /** The id given to `patched`: `rotor-<what>-v<n>`, never reused. */
  readonly id: string;
  /** What changed, and what histories recorded before it do instead. */
  readonly why: string;
  /** The release (or date, before releases) that shipped it. */
  readonly since: string;
  /** When it may turn into `deprecatePatch`. */
  readonly removableAfter: string;
}

export type PatchName = keyof typeof PATCHES;

/** Whether this run has each patch: call once, at the top of a workflow (a `patched` call records a marker). */
export function readPatches(): Record<PatchName, boolean> {
  return Object.fromEntries(
    Object.entries(PATCHES).map(([name, patch]) => [name, patched((patch as Patch).id)]),
  ) as Record<PatchName, boolean>;
}
