import type { ScheduleDescription } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../packages/rotor/src/config/rotor-config';
import {
  diffSettings,
  planEntryFor,
  planSummary,
  rotationInputFor,
  scheduleOptionsFor,
  settingsFor,
  specOf,
} from '../../packages/rotor/src/schedules/plan';

const QUEUE = 'rotor';

function config(secretYaml: string) {
  return parseConfig(`alerts:\n  webhooks:\n    oncall: { url: "https://hooks.example/x" }\nsecrets:\n${secretYaml}`);
}

const base = config('  - id: prod/db/app\n    schedule: { every: 30d }\n    grace: 1h\n    alerts: [oncall]\n');
const secret = base.secrets[0]!;

/** The schedule as Temporal would describe the one `apply` created from `options`, with the state given. */
function described(
  options: ReturnType<typeof scheduleOptionsFor>,
  state: { paused: boolean; note?: string } = { paused: false },
): ScheduleDescription {
  const action = options.action as { workflowType: string; taskQueue: string; args: unknown[]; memo: unknown };
  return {
    scheduleId: options.scheduleId,
    action: {
      type: 'startWorkflow',
      workflowType: action.workflowType,
      taskQueue: action.taskQueue,
      args: action.args,
      memo: action.memo,
    },
    policies: { overlap: options.policies?.overlap, catchupWindow: options.policies?.catchupWindow },
    state,
  } as unknown as ScheduleDescription;
}

describe('schedule planning, without Temporal', () => {
  it('creates a schedule that does not exist, naming its schedule', () => {
    expect(planEntryFor(secret, base, QUEUE, undefined)).toEqual({
      secretId: 'prod/db/app',
      action: 'create',
      changes: ['every 30d'],
    });
  });

  it('leaves a schedule that matches the file unchanged', () => {
    const existing = described(scheduleOptionsFor(secret, base, QUEUE));
    expect(planEntryFor(secret, base, QUEUE, existing)).toEqual({
      secretId: 'prod/db/app',
      action: 'unchanged',
      changes: [],
    });
  });

  it('gives Temporal no offset for an offset of 0s, as for none', () => {
    const zero = config(
      '  - id: prod/db/app\n    schedule: { every: 30d, offset: 0s }\n    grace: 1h\n    alerts: [oncall]\n',
    );
    expect(specOf(zero.secrets[0]!)).toEqual(specOf(secret));
    expect(specOf(secret)).toEqual({ intervals: [{ every: 30 * 86_400_000 }] });
  });

  it('says what changed when the file changed: grace, schedule, alert routes', () => {
    const existing = described(scheduleOptionsFor(secret, base, QUEUE));
    const changed = config('  - id: prod/db/app\n    schedule: { every: 7d }\n    grace: 2h\n    alerts: []\n');
    const entry = planEntryFor(changed.secrets[0]!, changed, QUEUE, existing);
    expect(entry.action).toBe('update');
    expect(entry.changes).toEqual(['schedule every 30d → every 7d', 'grace 1h → 2h', 'alerts [oncall] → []']);
  });

  it('puts back what was edited outside rotor apply', () => {
    const options = scheduleOptionsFor(secret, base, QUEUE);
    const edited = described(options);
    (edited.action as { args: unknown[] }).args = [{ rotation: { ...rotationInputFor(secret, base), graceMs: 0 } }];
    (edited.policies as { overlap: string }).overlap = 'ALLOW_ALL';
    expect(planEntryFor(secret, base, QUEUE, edited).changes).toEqual([
      'rotation settings edited outside rotor apply',
      'policies edited outside rotor apply',
    ]);
  });

  it('pauses and resumes only when the file says so, and follows a changed pause note', () => {
    const paused = config(
      '  - id: prod/db/app\n    schedule: { every: 30d }\n    grace: 1h\n    alerts: [oncall]\n    paused: true\n    note: freeze\n',
    );
    const running = described(scheduleOptionsFor(secret, base, QUEUE));
    expect(planEntryFor(paused.secrets[0]!, paused, QUEUE, running).changes).toContain('pause');
    const pausedByHand = described(scheduleOptionsFor(secret, base, QUEUE), { paused: true, note: 'paused by alice' });
    expect(planEntryFor(secret, base, QUEUE, pausedByHand).action).toBe('unchanged');
    const otherNote = described(scheduleOptionsFor(paused.secrets[0]!, paused, QUEUE), {
      paused: true,
      note: 'old note',
    });
    expect(planEntryFor(paused.secrets[0]!, paused, QUEUE, otherNote).changes).toEqual(['pause note']);
  });

  it('updates schedules recorded by another version of rotor', () => {
    expect(diffSettings(undefined, settingsFor(secret, base, QUEUE))).toEqual([
      'settings recorded by another version of rotor',
    ]);
  });

  it('builds the rotation input once: settings from the file, the schedule as trigger, no undefined fields', () => {
    expect(rotationInputFor(secret, base)).toEqual({
      secretId: 'prod/db/app',
      graceMs: 3_600_000,
      trigger: { kind: 'schedule', by: 'rotor/schedule/prod/db/app' },
      reporting: { alerts: ['oncall'], stuckPhaseBudgetMs: 1_800_000 },
    });
  });

  it('summarises a plan for --json', () => {
    expect(
      planSummary({
        entries: [
          { secretId: 'a', action: 'create', changes: [] },
          { secretId: 'b', action: 'unchanged', changes: [] },
          { secretId: 'c', action: 'delete', changes: [] },
        ],
        kept: [],
      }),
    ).toEqual({ created: ['a'], updated: [], deleted: ['c'], unchanged: ['b'] });
  });
});
