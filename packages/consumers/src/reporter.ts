import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { LoginOutcome } from './logins';

/** What a consumer saw when it logged in with one version of a secret. Never a value: ids and outcome words. */
export interface LoginEvent {
  secretId: string;
  versionId: string;
  outcome: LoginOutcome;
  /** The driver's code for a refused login (28P01, 28000, 1045...). */
  errorClass?: string;
}

/** Where the rotating pools send their logins and refused logins. */
export interface LoginReporter {
  record(event: LoginEvent): void;
}

/** One line of a report: how many times `outcome` happened for one version, from one instance. */
export interface ReportEntry extends LoginEvent {
  count: number;
}

/** The body `POST /v1/reports` takes. */
export interface ReportBatch {
  instanceId: string;
  reports: ReportEntry[];
}

/** The most distinct lines kept between flushes when the worker asks to wait. */
const MAX_KEPT = 1000;

export interface ConsumerReporterOptions {
  /** The rotor worker's report endpoint, e.g. `http://rotor-worker:9466` (`reports.listen` in rotor.yaml). */
  url: string;
  /** A token from `reports.tokens` in rotor.yaml, scoped to the secrets this application may report on. */
  token: string;
  /**
   * The instance's name in the worker's logs (default: host name and a random suffix). It is not a vote: the worker
   * tells instances apart by the address they report from (docs/consumers.md, "What a token can do").
   */
  instanceId?: string;
  /** How often counts are sent (default 1 s). */
  flushIntervalMs?: number;
  fetch?: typeof fetch;
}

/**
 * Counts logins and refused logins per secret version and sends them to rotor's report endpoint, where they are the
 * evidence of a rotation's bake window (see docs/consumers.md). Sending never blocks or fails the application: a
 * batch that cannot be sent is dropped and counted in `dropped`.
 *
 * @example
 *   const reporter = new ConsumerReporter({ url: 'http://rotor-worker:9466', token: process.env.ROTOR_REPORT_TOKEN! });
 *   const pool = createRotatingPgPool({ cache, secretId: 'prod/db/app', reporter });
 */
export class ConsumerReporter implements LoginReporter {
  readonly instanceId: string;
  /** Report lines that could not be sent. */
  dropped = 0;
  readonly #options: ConsumerReporterOptions;
  readonly #counts = new Map<string, ReportEntry>();
  readonly #timer: NodeJS.Timeout;
  #sending?: Promise<void>;

  constructor(options: ConsumerReporterOptions) {
    this.#options = options;
    this.instanceId = options.instanceId ?? `${hostname()}-${randomUUID().slice(0, 8)}`;
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1000);
    this.#timer.unref();
  }

  record(event: LoginEvent): void {
    const key = keyOf(event);
    const entry = this.#counts.get(key);
    if (entry) entry.count++;
    else this.#counts.set(key, { ...event, count: 1 });
  }

  /** Sends what was counted since the last flush (one request in flight at a time). */
  async flush(): Promise<void> {
    await this.#sending;
    if (this.#counts.size === 0) return;
    const reports = [...this.#counts.values()];
    this.#counts.clear();
    this.#sending = this.#send({ instanceId: this.instanceId, reports }).finally(() => (this.#sending = undefined));
    await this.#sending;
  }

  /** Sends what is left and stops. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  async #send(batch: ReportBatch): Promise<void> {
    const fetchImpl = this.#options.fetch ?? fetch;
    try {
      const response = await fetchImpl(new URL('/v1/reports', this.#options.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#options.token}` },
        body: JSON.stringify(batch),
        signal: AbortSignal.timeout(5000),
      });
      await response.body?.cancel();
      // Too many requests (the token's rate) or the worker busy: the counts wait for the next flush, bounded.
      if (response.status === 429 || response.status === 503) this.#keep(batch.reports);
      else if (!response.ok) this.dropped += batch.reports.length;
    } catch {
      this.dropped += batch.reports.length;
    }
  }

  /** Puts counts back for the next flush; past MAX_KEPT lines, the rest is dropped. */
  #keep(reports: ReportEntry[]): void {
    for (const entry of reports) {
      const key = keyOf(entry);
      const known = this.#counts.get(key);
      if (known) known.count += entry.count;
      else if (this.#counts.size < MAX_KEPT) this.#counts.set(key, { ...entry });
      else this.dropped++;
    }
  }
}

/** The line an event is counted on: secret, version, outcome and error class. */
function keyOf(event: LoginEvent): string {
  return [event.secretId, event.versionId, event.outcome, event.errorClass ?? ''].join('\0');
}
