import type { HookRunner } from './hook-runner';
import type { LastKnownCurrent } from './last-known';
import type { RotatorRegistry } from '../rotators/registry';
import type { SecretStore } from 'rotor-consumers/stores';
import type { Alert, AlertDelivery, AuditEvent, RotationEnd } from '../shared/reporting';

/*
 * The ports the activities depend on: what the worker plugs in (the audit store, webhooks, Prometheus, the guards)
 * and what tests replace with fakes of the same type.
 */

/** Where audit events go: the hash-chained audit store. Appending an event id twice writes it once. */
export interface AuditSink {
  readonly description: string;
  append(event: AuditEvent): Promise<'appended' | 'duplicate'>;
  /** When `secretId`'s events of `kind` since `since` (ISO) happened, newest first, at most `limit`. */
  timesOf?(secretId: string, kind: string, since: string, limit: number): Promise<string[]>;
}

/** Delivers an alert to named routes; reports each route's delivery instead of throwing. */
export interface AlertNotifier {
  notify(alert: Alert, routes: string[]): Promise<AlertDelivery[]>;
}

/** What the activities count: the worker's Prometheus metrics. */
export interface ActivityMetrics {
  rotationEnded(rotator: string, outcome: RotationEnd['outcome'], secretId: string): void;
  stepObserved(step: string, rotator: string, seconds: number, ok: boolean): void;
  /** Rows a keyring re-wrap page handled (`rotor_rewrap_rows_total`). */
  rewrapRows?(result: 'rewrapped' | 'changed-meanwhile' | 'refused', rows: number): void;
}

/** Bounds concurrent work per key (the rotator's target), e.g. a KeyedSemaphore; gives up waiting when `signal` aborts. */
export interface TargetLimiter {
  run<T>(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export interface ActivityDeps {
  store: SecretStore;
  rotators: RotatorRegistry;
  audit?: AuditSink;
  alerts?: AlertNotifier;
  metrics?: ActivityMetrics;
  /** Per-target concurrency for every step that talks to the target system. */
  targets?: TargetLimiter;
  /**
   * The task queue prepare sends the rotation's store writes to (`throughput.fleetStoreWritesPerSecond`): the
   * cluster, not the process, then holds the store-write ceiling. Absent: writes run on the rotation's own queue.
   */
  storeWritesTaskQueue?: string;
  /** The hooks of rotor.yaml, which rotators run by name (ACME challenges). */
  hooks?: HookRunner;
  /** What leases read last, shared with the worker's lease endpoint (a store outage cannot lapse their logins). */
  leaseReads?: LastKnownCurrent;
}
