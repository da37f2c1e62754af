import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { releaseHold, waitUntilHeld } from './faulty-rotators';

const ROOT = path.resolve(__dirname, '../..');

/** A `rotor worker` child process (with test faults) whose output is kept for secret-hygiene checks. */
export class WorkerProcess {
  /** Everything every worker process wrote, across restarts in a test file. */
  static readonly allLogs: string[] = [];
  private output = '';

  private constructor(private readonly child: ChildProcess) {}

  /** `main` is the program the process runs (default: rotor's worker with the test faults). */
  static async start(
    taskQueue: string,
    holdDir?: string,
    env: NodeJS.ProcessEnv = {},
    main = 'test/helpers/worker-main.ts',
  ): Promise<WorkerProcess> {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, main)], {
      cwd: ROOT,
      env: {
        ...process.env,
        ROTOR_TASK_QUEUE: taskQueue,
        ROTOR_LOG_LEVEL: 'debug',
        // No metrics endpoint unless a test asks for one: workers of one file would fight over the port.
        ROTOR_METRICS_PORT: '0',
        ...(holdDir ? { ROTOR_TEST_HOLD_DIR: holdDir } : {}),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child);
    const index = WorkerProcess.allLogs.push('') - 1;
    const append = (chunk: Buffer) => {
      worker.output += chunk.toString('utf8');
      WorkerProcess.allLogs[index] = worker.output;
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (worker.output.includes('rotor worker started')) {
          clearInterval(timer);
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`worker exited with ${child.exitCode}:\n${worker.output}`));
        }
      }, 100);
    });
    return worker;
  }

  /** The worker's process id (the process that runs the steps). */
  get pid(): number {
    return this.child.pid!;
  }

  get logs(): string {
    return this.output;
  }

  /**
   * SIGKILLs this worker while the test step of `secretId` is held (mid-rotation, after set), lets the step go on
   * and starts a new worker on the same queue, which must finish the rotation. Returns the new worker.
   */
  async killWhileHeld(taskQueue: string, holdDir: string, secretId: string): Promise<WorkerProcess> {
    await waitUntilHeld(holdDir, secretId);
    await this.kill();
    if (this.exitInfo.signal !== 'SIGKILL')
      throw new Error(`worker ended with ${JSON.stringify(this.exitInfo)}, not SIGKILL`);
    releaseHold(holdDir, secretId);
    return WorkerProcess.start(taskQueue, holdDir);
  }

  /** SIGKILL: the process dies mid-step with no chance to finish or report. */
  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  /** SIGTERM: graceful shutdown, as an orchestrator stops a worker. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill(signal);
    await exited;
  }

  get exitInfo(): { code: number | null; signal: NodeJS.Signals | null } {
    return { code: this.child.exitCode, signal: this.child.signalCode };
  }
}
