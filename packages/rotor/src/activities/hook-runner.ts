import { execFile } from 'node:child_process';
import { InvalidInputError, UnavailableError } from 'rotor-consumers/core';
import { listOr } from '../shared/vocabulary';

import type { HookConfig } from '../shared/hooks';

export type { HookConfig } from '../shared/hooks';

/** How much of a hook's output the worker keeps for its log (the end of it). */
const OUTPUT_KEPT = 2000;

export interface HookRunner {
  has(name: string): boolean;
  run(name: string, action: string, vars: Record<string, string>): Promise<{ output: string }>;
}

/**
 * Runs the hooks rotor.yaml declares. Only those: a secret names a hook, never a command, so whoever may write a
 * secret cannot make the worker run a program. The program gets `action` as its last argument and `vars` in its
 * environment (beside the worker's); exit 0 is success. A failure names the hook, the action and the exit code or
 * signal; its output goes to the worker's log only, never into the error (which Temporal keeps).
 */
export function hookRunner(hooks: Record<string, HookConfig>): HookRunner {
  return {
    has: (name) => Object.hasOwn(hooks, name),
    run(name, action, vars) {
      const hook = Object.hasOwn(hooks, name) ? hooks[name] : undefined;
      if (!hook)
        throw new InvalidInputError(
          `hook ${JSON.stringify(name)} is not declared in rotor.yaml (${listOr(Object.keys(hooks)) || 'no hooks'})`,
        );
      const [program, ...args] = hook.command;
      return new Promise((resolve, reject) => {
        execFile(
          program!,
          [...args, action],
          { env: { ...process.env, ...vars }, timeout: hook.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 },
          (error, stdout, stderr) => {
            const output = `${stdout}${stderr}`.slice(-OUTPUT_KEPT);
            if (!error) return resolve({ output });
            const how = error.killed
              ? `was stopped after ${hook.timeoutMs / 1000}s`
              : typeof error.code === 'number'
                ? `exited with ${error.code}`
                : `failed (${String(error.code ?? error.signal ?? 'no code')})`;
            reject(
              Object.assign(new UnavailableError(undefined, `hook ${name} ${action} ${how}`), { hookOutput: output }),
            );
          },
        );
      });
    },
  };
}
