import { spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `rotor` CLI as `npm run rotor -- ...` does, on `taskQueue`, and returns its exit code and output.
 * Every output is also pushed to `outputs`, for the secret-hygiene checks.
 */
export function runCli(
  taskQueue: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  outputs?: string[],
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', path.join(ROOT, 'packages/rotor/src/cli/main.ts'), ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ROTOR_TASK_QUEUE: taskQueue, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      outputs?.push(stdout, stderr);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
