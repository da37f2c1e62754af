import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * What importing rotor-consumers costs an application: the wall time of a fresh `node` that requires it (its build,
 * as installed), beside a bare `node` and one that requires `pg`, each run `runs` times; medians, min and max. The
 * difference to bare node is the package's own cost. `npm run build` (or scripts/node-deps.sh) builds it first.
 */
export function benchImports(runs: number): Record<string, { medianMs: number; minMs: number; maxMs: number }> {
  const cases: Record<string, string> = {
    'bare node': '',
    "require('pg')": "require('pg')",
    "require('rotor-consumers')": "require('rotor-consumers')",
    "require('rotor-consumers') + a pg pool":
      "const c = require('rotor-consumers'); c.createRotatingPgPool({ cache: new c.SecretCache({ store: new c.InMemorySecretStore() }), secretId: 'x' })",
  };
  const root = path.resolve(__dirname, '..');
  const out: Record<string, { medianMs: number; minMs: number; maxMs: number }> = {};
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  // Interleaved, so a busy moment of the machine falls on every case alike.
  for (let i = 0; i < runs; i++) {
    for (const [name, code] of Object.entries(cases)) {
      const t0 = process.hrtime.bigint();
      execFileSync(process.execPath, ['-e', code], { cwd: root, stdio: 'ignore' });
      times[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  for (const [name, list] of Object.entries(times)) {
    const sorted = [...list].sort((a, b) => a - b);
    out[name] = {
      medianMs: Math.round(sorted[Math.floor(sorted.length / 2)]!),
      minMs: Math.round(sorted[0]!),
      maxMs: Math.round(sorted[sorted.length - 1]!),
    };
  }
  return out;
}
