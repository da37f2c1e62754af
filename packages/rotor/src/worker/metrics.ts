import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RotationOutcomeWord } from '../shared/vocabulary';

export interface RotorMetricsOptions {
  /** Rotator names kept as label values; any other becomes "other". */
  rotators: readonly string[];
  /** Step names kept as label values; any other becomes "other". */
  steps: readonly string[];
  /** Secrets that get a `secret_id` series. Without it, the first 1000 secrets seen do. */
  managedSecrets?: readonly string[];
}

/** An HTTP server exposing the metrics; `url` is its base, e.g. "http://127.0.0.1:9464". */
export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

const OTHER = 'other';
const MAX_SECRET_SERIES = 1000;
/** A collector hook that takes longer is counted as an error, so a slow Temporal never stalls a scrape. */
const COLLECT_TIMEOUT_MS = 5000;
const STEP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * The worker's Prometheus metrics, in a registry of their own. Every label takes values from a bounded set:
 * unknown rotators and steps fold into "other", and `secret_id` series exist only for managed secrets (or the
 * first 1000 seen), so a typo or a flood of ids cannot blow up the series count.
 */
export class RotorMetrics {
  readonly registry = new Registry();
  readonly #rotators: ReadonlySet<string>;
  readonly #steps: ReadonlySet<string>;
  readonly #managedSecrets?: ReadonlySet<string>;
  /** Last success per secret, in epoch ms; its keys are the secrets that have a series. */
  readonly #lastSuccessMs = new Map<string, number>();
  readonly #rotations: Counter<'rotator' | 'outcome'>;
  readonly #stepDuration: Histogram<'step' | 'rotator' | 'result'>;
  readonly #inGrace: Gauge;
  readonly #leases: Gauge;
  readonly #leaseLogins: Gauge;
  readonly #lastSuccess: Gauge<'secret_id'>;
  readonly #unmanaged: Counter;
  readonly #collectErrors: Counter;
  readonly #rewrapRows: Counter<'result'>;
  #collector?: () => Promise<void>;

  constructor(options: RotorMetricsOptions) {
    this.#rotators = new Set(options.rotators);
    this.#steps = new Set(options.steps);
    this.#managedSecrets = options.managedSecrets && new Set(options.managedSecrets);
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'rotor_process_' });

    this.#rotations = new Counter({
      name: 'rotor_rotations_total',
      help: 'Rotations that ended, by rotator and outcome.',
      labelNames: ['rotator', 'outcome'],
      registers,
    });
    this.#stepDuration = new Histogram({
      name: 'rotor_step_duration_seconds',
      help: 'Duration of rotation step attempts, by step, rotator and result.',
      labelNames: ['step', 'rotator', 'result'],
      buckets: STEP_BUCKETS,
      registers,
    });
    this.#inGrace = new Gauge({
      name: 'rotor_rotations_in_grace',
      help: 'Rotations waiting out their grace period.',
      registers,
    });
    this.#leases = new Gauge({
      name: 'rotor_leases_live',
      help: 'Live leases of short-lived database credentials.',
      registers,
    });
    this.#leaseLogins = new Gauge({
      name: 'rotor_lease_logins_live',
      help: 'Database logins the live leases hold (a lease holds two while it replaces one).',
      registers,
    });
    this.#lastSuccess = new Gauge({
      name: 'rotor_last_success_timestamp_seconds',
      help: 'When the secret last rotated successfully (Unix seconds).',
      labelNames: ['secret_id'],
      registers,
    });
    const lastSuccessMs = this.#lastSuccessMs;
    new Gauge({
      name: 'rotor_seconds_since_last_success',
      help: 'Seconds since the secret last rotated successfully, as of the scrape.',
      labelNames: ['secret_id'],
      registers,
      collect() {
        const now = Date.now();
        for (const [secretId, at] of lastSuccessMs) this.set({ secret_id: secretId }, (now - at) / 1000);
      },
    });
    this.#unmanaged = new Counter({
      name: 'rotor_unmanaged_secret_observations_total',
      help: 'Observations of secrets given no secret_id series (not managed, or over the series limit).',
      registers,
    });
    this.#rewrapRows = new Counter({
      name: 'rotor_rewrap_rows_total',
      help: 'Rows keyring re-wraps handled: rewrapped, changed-meanwhile (left for the next pass), refused (not decrypted).',
      labelNames: ['result'],
      registers,
    });
    this.#collectErrors = new Counter({
      name: 'rotor_metrics_collect_errors_total',
      help: 'Collector hooks that failed or timed out before a scrape.',
      registers,
    });
  }

  /** Counts a rotation that ended; a completed one also records `at` as the secret's last success. */
  rotationEnded(rotator: string, outcome: RotationOutcomeWord, secretId: string, at: Date = new Date()): void {
    this.#rotations.inc({ rotator: this.#fold(this.#rotators, rotator), outcome });
    if (outcome === 'completed') this.setLastSuccess(secretId, at);
  }

  /** Records how long one attempt of a step took. */
  stepObserved(step: string, rotator: string, seconds: number, ok: boolean): void {
    this.#stepDuration.observe(
      {
        step: this.#fold(this.#steps, step),
        rotator: this.#fold(this.#rotators, rotator),
        result: ok ? 'ok' : 'error',
      },
      seconds,
    );
  }

  /** Counts rows a re-wrap page handled, by what became of them. */
  rewrapRows(result: 'rewrapped' | 'changed-meanwhile' | 'refused', rows: number): void {
    if (rows > 0) this.#rewrapRows.inc({ result }, rows);
  }

  setInGrace(count: number): void {
    this.#inGrace.set(count);
  }

  /** Live leases of short-lived credentials on this worker's task queue, and the logins they hold. */
  setLeases(leases: number, logins: number): void {
    this.#leases.set(leases);
    this.#leaseLogins.set(logins);
  }

  /** Records the secret's last successful rotation; a time older than the one recorded is ignored. */
  setLastSuccess(secretId: string, at: Date): void {
    if (!this.#admitSecret(secretId)) return;
    const ms = at.getTime();
    if ((this.#lastSuccessMs.get(secretId) ?? -Infinity) >= ms) return;
    this.#lastSuccessMs.set(secretId, ms);
    this.#lastSuccess.set({ secret_id: secretId }, ms / 1000);
  }

  /**
   * Sets a hook run before each scrape (the worker refreshes in-grace counts from Temporal with it). Its errors
   * and timeouts are swallowed and counted in `rotor_metrics_collect_errors_total`; the scrape goes on.
   */
  setCollector(fn: () => Promise<void>): void {
    this.#collector = fn;
  }

  /** Serves GET /metrics and GET /healthz on `host:port`; port 0 picks a free port, shown in `url`. */
  async serve(port: number, host: string): Promise<MetricsServer> {
    const server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = (server.address() as AddressInfo).port;
    return {
      url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
      close: () => new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
    };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      try {
        await this.#runCollector();
        const body = await this.registry.metrics();
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
      } catch {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      }
    } else if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  async #runCollector(): Promise<void> {
    const collector = this.#collector;
    if (!collector) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('collector timed out')), COLLECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([Promise.resolve().then(collector), timeout]);
    } catch {
      this.#collectErrors.inc();
    } finally {
      clearTimeout(timer);
    }
  }

  #fold(known: ReadonlySet<string>, value: string): string {
    return known.has(value) ? value : OTHER;
  }

  /** Whether `secretId` may have a series; counts the observation when it may not. */
  #admitSecret(secretId: string): boolean {
    if (this.#lastSuccessMs.has(secretId)) return true;
    const admitted = this.#managedSecrets
      ? this.#managedSecrets.has(secretId)
      : this.#lastSuccessMs.size < MAX_SECRET_SERIES;
    if (!admitted) this.#unmanaged.inc();
    return admitted;
  }
}
