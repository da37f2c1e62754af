import { SearchAttribute } from '../../packages/rotor/src/shared/constants';
import type { Client } from '@temporalio/client';

/** Every string and decoded payload in the histories of all workflows on `taskQueue`, as one text. */
export async function historiesText(client: Client, taskQueue: string): Promise<{ text: string; workflows: number }> {
  const parts: string[] = [];
  let workflows = 0;
  for await (const execution of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) {
    workflows++;
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    const walk = (v: unknown): void => {
      if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
      else if (typeof v === 'string') parts.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(history);
  }
  return { text: parts.join('\n'), workflows };
}

/**
 * With ROTOR_RECORD_HISTORIES=<dir>, saves the histories of the workflows on `taskQueue` whose secret id starts
 * with one of `prefixes`, for the replay tests, as `<kind>-<prefix><suffix>.json` (a file there is kept as it is:
 * a new `suffix` records the same paths again beside it). Does nothing otherwise.
 */
export async function recordHistories(
  client: Client,
  taskQueue: string,
  prefixes: string[],
  suffix = '',
): Promise<void> {
  const dir = process.env.ROTOR_RECORD_HISTORIES;
  if (!dir) return;
  const { historyToJSON } = await import('@temporalio/common/lib/proto-utils.js');
  const { existsSync, writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  const written = new Map<string, number>();
  for await (const execution of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) {
    const secretId =
      execution.type === 'dynamicLease'
        ? (execution.typedSearchAttributes.get(SearchAttribute.secretId) ?? '')
        : execution.workflowId.replace(/^rotor\/(rotate|scheduled|rewrap)\//, '');
    const prefix = prefixes.find((p) => secretId.startsWith(p));
    if (!prefix) continue;
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    const kind =
      {
        scheduledRotation: 'scheduled-rotation',
        rollbackSecret: 'rollback-secret',
        dynamicLease: 'dynamic-lease',
        rewrapKeyring: 'rewrap-keyring',
      }[execution.type] ?? 'rotate-secret';
    // Several executions under one prefix (a rotation that continued as new, runs of one test): the latest two.
    const base = `${kind}-${prefix.replace(/^(bao:secret\/)?it\//, '').replace(/[^A-Za-z0-9_-]/g, '-')}${suffix}`;
    const runs = written.get(base) ?? 0;
    if (runs >= 2) continue; // two runs of a prefix are enough (a rotation that continued as new: its last two)
    const file = path.join(dir, `${base}${runs === 0 ? '' : `-run${runs + 1}`}.json`);
    // Histories recorded by earlier versions of the workflow are what replay protects: never overwrite one.
    if (existsSync(file)) continue;
    written.set(base, runs + 1);
    writeFileSync(file, historyToJSON(history));
  }
}

/** A fresh password for a test, added to `seen` for the hygiene checks. */
export function newPassword(seen: Set<string>): string {
  const password = `Init-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
  seen.add(password);
  return password;
}

/**
 * Asserts that no password of `seen` appears in the histories of the workflows on `taskQueue` (which must mention
 * `mustContain`, so the check looked at something), in any worker log line, or in `outputs` (CLI output).
 */
export async function expectNoPasswords(
  client: Client,
  taskQueue: string,
  seen: Set<string>,
  mustContain: string,
  outputs: string[] = [],
): Promise<void> {
  const { expect } = await import('vitest');
  const { WorkerProcess } = await import('./worker-process.js');
  const { text } = await historiesText(client, taskQueue);
  const logs = WorkerProcess.allLogs.join('\n');
  const printed = outputs.join('\n');
  expect(text).toContain(mustContain);
  for (const password of seen) {
    expect(text.includes(password), 'a password in a workflow history').toBe(false);
    expect(logs.includes(password), 'a password in a worker log').toBe(false);
    expect(printed.includes(password), 'a password in CLI output').toBe(false);
  }
}
