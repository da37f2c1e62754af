import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { RotorMetrics, type MetricsServer, type RotorMetricsOptions } from '../../packages/rotor/src/worker/metrics';

const ROTATORS = ['postgres-single-user', 'mysql-single-user'];
const STEPS = ['create', 'set', 'test'];

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition into samples (label values here contain no escaped quotes). */
function parse(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!match) throw new Error(`unparsable line: ${line}`);
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
}

/** The value of the sample with exactly these labels, or undefined. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted)?.value;
}

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(options: Partial<RotorMetricsOptions> = {}) {
  const metrics = new RotorMetrics({ rotators: ROTATORS, steps: STEPS, ...options });
  const server = await metrics.serve(0, '127.0.0.1');
  servers.push(server);
  const scrape = async () => {
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe(metrics.registry.contentType);
    return parse(await response.text());
  };
  return { metrics, url: server.url, scrape };
}

describe('RotorMetrics', () => {
  it('counts rotations by rotator and outcome, folding unknown rotators into "other"', async () => {
    const { metrics, scrape } = await serve();
    metrics.rotationEnded('postgres-single-user', 'completed', 'prod/a');
    metrics.rotationEnded('postgres-single-user', 'completed', 'prod/b');
    metrics.rotationEnded('postgres-single-user', 'compensated', 'prod/a');
    metrics.rotationEnded('mystery-rotator', 'failed', 'prod/c');
    const samples = await scrape();
    expect(value(samples, 'rotor_rotations_total', { rotator: 'postgres-single-user', outcome: 'completed' })).toBe(2);
    expect(value(samples, 'rotor_rotations_total', { rotator: 'postgres-single-user', outcome: 'compensated' })).toBe(
      1,
    );
    expect(value(samples, 'rotor_rotations_total', { rotator: 'other', outcome: 'failed' })).toBe(1);
    expect(samples.some((s) => s.labels.rotator === 'mystery-rotator')).toBe(false);
  });

  it('counts the rows re-wraps handle, by result', async () => {
    const { metrics, scrape } = await serve();
    metrics.rewrapRows('rewrapped', 500);
    metrics.rewrapRows('rewrapped', 120);
    metrics.rewrapRows('refused', 3);
    metrics.rewrapRows('changed-meanwhile', 0);
    const samples = await scrape();
    expect(value(samples, 'rotor_rewrap_rows_total', { result: 'rewrapped' })).toBe(620);
    expect(value(samples, 'rotor_rewrap_rows_total', { result: 'refused' })).toBe(3);
    expect(value(samples, 'rotor_rewrap_rows_total', { result: 'changed-meanwhile' })).toBeUndefined();
  });

  it('observes step durations in a histogram by step, rotator and result', async () => {
    const { metrics, scrape } = await serve();
    metrics.stepObserved('set', 'mysql-single-user', 0.2, true);
    metrics.stepObserved('set', 'mysql-single-user', 3, true);
    metrics.stepObserved('set', 'mysql-single-user', 200, false);
    metrics.stepObserved('dance', 'mysql-single-user', 1, true);
    const samples = await scrape();
    const ok = { step: 'set', rotator: 'mysql-single-user', result: 'ok' };
    expect(value(samples, 'rotor_step_duration_seconds_bucket', { ...ok, le: '0.05' })).toBe(0);
    expect(value(samples, 'rotor_step_duration_seconds_bucket', { ...ok, le: '0.25' })).toBe(1);
    expect(value(samples, 'rotor_step_duration_seconds_bucket', { ...ok, le: '5' })).toBe(2);
    expect(value(samples, 'rotor_step_duration_seconds_bucket', { ...ok, le: '120' })).toBe(2);
    expect(value(samples, 'rotor_step_duration_seconds_count', ok)).toBe(2);
    expect(value(samples, 'rotor_step_duration_seconds_sum', ok)).toBeCloseTo(3.2);
    expect(value(samples, 'rotor_step_duration_seconds_count', { ...ok, result: 'error' })).toBe(1);
    expect(value(samples, 'rotor_step_duration_seconds_count', { ...ok, step: 'other' })).toBe(1);
  });

  it('reports rotations in grace and the time since each managed secret last rotated', async () => {
    const { metrics, scrape } = await serve({ managedSecrets: ['prod/db/app'] });
    metrics.setInGrace(4);
    const at = new Date(Date.now() - 90_000);
    metrics.rotationEnded('postgres-single-user', 'completed', 'prod/db/app', at);
    metrics.setLastSuccess('prod/db/app', new Date(Date.now() - 500_000));
    const samples = await scrape();
    expect(value(samples, 'rotor_rotations_in_grace')).toBe(4);
    expect(value(samples, 'rotor_last_success_timestamp_seconds', { secret_id: 'prod/db/app' })).toBe(
      at.getTime() / 1000,
    );
    expect(value(samples, 'rotor_seconds_since_last_success', { secret_id: 'prod/db/app' })).toBeGreaterThanOrEqual(90);
    expect(value(samples, 'rotor_seconds_since_last_success', { secret_id: 'prod/db/app' })).toBeLessThan(95);
  });

  it('drops secrets that are not managed and counts them', async () => {
    const { metrics, scrape } = await serve({ managedSecrets: ['prod/db/app'] });
    metrics.rotationEnded('postgres-single-user', 'completed', 'dev/scratch');
    metrics.setLastSuccess('dev/other', new Date());
    const samples = await scrape();
    expect(samples.filter((s) => s.labels.secret_id)).toEqual([]);
    expect(value(samples, 'rotor_unmanaged_secret_observations_total')).toBe(2);
    expect(value(samples, 'rotor_rotations_total', { rotator: 'postgres-single-user', outcome: 'completed' })).toBe(1);
  });

  it('caps secret_id series at 1000 when no managed list is given', async () => {
    const { metrics, scrape } = await serve();
    for (let i = 0; i < 1002; i++) metrics.setLastSuccess(`secret/${i}`, new Date());
    metrics.setLastSuccess('secret/0', new Date());
    const samples = await scrape();
    expect(samples.filter((s) => s.name === 'rotor_seconds_since_last_success')).toHaveLength(1000);
    expect(value(samples, 'rotor_unmanaged_secret_observations_total')).toBe(2);
  });

  it('runs the collector hook before each scrape and counts its errors without failing the scrape', async () => {
    const { metrics, scrape } = await serve();
    let runs = 0;
    metrics.setCollector(async () => metrics.setInGrace(++runs));
    expect(value(await scrape(), 'rotor_rotations_in_grace')).toBe(1);
    expect(value(await scrape(), 'rotor_rotations_in_grace')).toBe(2);
    metrics.setCollector(async () => {
      throw new Error('temporal unreachable');
    });
    const samples = await scrape();
    expect(value(samples, 'rotor_metrics_collect_errors_total')).toBe(1);
    expect(value(samples, 'rotor_rotations_in_grace')).toBe(2);
  });

  it('uses its own registry, with process metrics under rotor_process_', async () => {
    const { scrape } = await serve();
    const samples = await scrape();
    expect(samples.some((s) => s.name === 'rotor_process_process_cpu_user_seconds_total')).toBe(true);
    expect(await globalRegistry.metrics()).not.toContain('rotor_');
  });

  it('answers /healthz, and 404 for anything else', async () => {
    const { url } = await serve();
    const health = await fetch(`${url}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, 'ok']);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(404);
  });
});
