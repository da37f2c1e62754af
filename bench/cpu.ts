/**
 * CPU time by process, for the fleet part: which of the machine's cores went to the Temporal server, the store, the
 * databases and the bench's own process (the worker and the client) while a fleet rotated. Read from /proc: each
 * service's process and its live descendants (user + system time), plus the time of children it has reaped
 * (PostgreSQL's backends that logged in and left).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';

const STACK = path.resolve(__dirname, '..', '.rotor-stack');
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The stack's processes by name, from its pid files, and this process. */
export function stackProcesses(): Record<string, number> {
  const pids: Record<string, number> = { 'bench (worker, client)': process.pid };
  const read = (file: string) => (existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : NaN);
  for (const name of ['temporal', 'moto', 'mariadb']) {
    const pid = read(path.join(STACK, 'run', `${name}.pid`));
    if (pid > 0) pids[name] = pid;
  }
  const postgres = read(path.join(STACK, 'postgres', 'data', 'postmaster.pid'));
  if (postgres > 0) pids.postgres = postgres;
  return pids;
}

interface Stat {
  ppid: number;
  own: number;
  reaped: number;
}

function stat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields after it are space-separated.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return {
      ppid: Number(fields[1]),
      own: Number(fields[11]) + Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** CPU seconds used so far by each named process with its descendants. */
export function cpuSeconds(processes: Record<string, number>): Record<string, number> {
  const all = new Map<number, Stat>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s) all.set(Number(entry), s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  const result: Record<string, number> = {};
  for (const [name, root] of Object.entries(processes)) {
    let ticks = all.get(root)?.reaped ?? 0;
    const queue = [root];
    while (queue.length > 0) {
      const pid = queue.pop()!;
      ticks += all.get(pid)?.own ?? 0;
      queue.push(...(children.get(pid) ?? []));
    }
    result[name] = ticks / TICKS_PER_SECOND;
  }
  return result;
}

/**
 * Runs `work` and reports the cores each process used on average during it (CPU seconds / wall seconds), and the
 * share of the machine's cores all of them together took.
 */
export interface CpuUse {
  /** Wall time of the work. */
  ms: number;
  cores: Record<string, number>;
  machineShare: number;
}

export async function measureCpu<T>(work: () => Promise<T>): Promise<{ result: T } & CpuUse> {
  const processes = stackProcesses();
  const before = cpuSeconds(processes);
  const t0 = performance.now();
  const result = await work();
  const seconds = (performance.now() - t0) / 1000;
  const after = cpuSeconds(processes);
  const cores: Record<string, number> = {};
  for (const name of Object.keys(processes))
    cores[name] = Number(((after[name]! - before[name]!) / seconds).toFixed(2));
  const total = Object.values(cores).reduce((a, b) => a + b, 0);
  return { result, ms: Math.round(seconds * 1000), cores, machineShare: Number((total / cpus().length).toFixed(2)) };
}

/** One line for a CpuUse: each process's cores, and the share of the machine. */
export function formatCpu(cpu: Pick<CpuUse, 'cores' | 'machineShare'>): string {
  return `${Object.entries(cpu.cores)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ')} cores (${Math.round(cpu.machineShare * 100)} % of the machine)`;
}
