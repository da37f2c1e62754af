import { describe, expect, it } from 'vitest';
import { hookRunner } from '../../packages/rotor/src/activities/hook-runner';

const node = (script: string) => [process.execPath, '-e', script];

describe('hookRunner', () => {
  const hooks = hookRunner({
    echo: {
      command: node('process.stdout.write(process.argv.at(-1) + " " + process.env.ROTOR_ACME_TOKEN)'),
      timeoutMs: 10_000,
    },
    fails: { command: node('process.stderr.write("zone Z123 not found"); process.exit(3)'), timeoutMs: 10_000 },
    hangs: { command: node('setInterval(() => {}, 1000)'), timeoutMs: 1000 },
  });

  it('runs a declared hook with the action as its last argument and the variables in its environment', async () => {
    expect(hooks.has('echo')).toBe(true);
    expect(await hooks.run('echo', 'present', { ROTOR_ACME_TOKEN: 'tok-1' })).toEqual({ output: 'present tok-1' });
  });

  it('names the hook, the action and the exit code; the output stays out of the error', async () => {
    const error = (await hooks.run('fails', 'cleanup', {}).then(
      () => undefined,
      (e: unknown) => e,
    )) as (Error & { hookOutput?: string }) | undefined;
    expect(error).toMatchObject({ type: 'RotorUnavailable' });
    expect(error!.message).toBe('hook fails cleanup exited with 3');
    expect(error!.hookOutput).toBe('zone Z123 not found');
  });

  it('stops a hook that outruns its timeout', async () => {
    await expect(hooks.run('hangs', 'present', {})).rejects.toThrow('hook hangs present was stopped after 1s');
  });

  it('refuses a hook rotor.yaml does not declare, running nothing', () => {
    expect(hooks.has('sh')).toBe(false);
    expect(() => hooks.run('sh', 'present', {})).toThrow(
      'hook "sh" is not declared in rotor.yaml (echo, fails or hangs)',
    );
  });
});
