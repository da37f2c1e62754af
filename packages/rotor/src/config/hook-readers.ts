import type { HookConfig } from '../shared/hooks';
import { describe, type Checker, type Node } from './checker';

/* rotor.yaml's `hooks`: programs a rotator runs by name (an ACME challenge's DNS record or web root). Secrets name a
 * hook, never a command: only this file, which the team controls, says what runs on the worker. */

const HOOK_KEYS = ['command', 'timeout'];
const HOOK_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DEFAULT_HOOK_TIMEOUT_MS = 60_000;

export function readHooks(c: Checker, node: Node): Record<string, HookConfig> {
  const hooks: Record<string, HookConfig> = {};
  for (const [name, item] of c.entries(node) ?? []) {
    if (!HOOK_NAME.test(name)) {
      c.add(item.path, `${describe(name)} is not a hook name (1 to 63 of a-z, 0-9 and -)`);
      continue;
    }
    const hook = c.section(item, HOOK_KEYS);
    if (!hook) continue;
    c.present(hook.at('command'), ' (the program and its arguments, as a list: [node, hooks/dns.mjs])');
    const command: string[] = [];
    for (const part of c.list(hook.at('command')) ?? []) {
      const text = c.string(part);
      if (text !== undefined && text.length === 0) c.add(part.path, 'must not be empty');
      else if (text !== undefined) command.push(text);
    }
    // At most 5 minutes: an ACME order (its hooks included) has 10.
    const timeoutMs = c.duration(hook.at('timeout'), 1000, { text: '5m', ms: 300_000 }) ?? DEFAULT_HOOK_TIMEOUT_MS;
    if (command.length > 0) hooks[name] = { command, timeoutMs };
  }
  return hooks;
}
