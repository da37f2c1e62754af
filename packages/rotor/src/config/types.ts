import type { HookConfig } from '../shared/hooks';
import { InvalidInputError } from 'rotor-consumers/core';
import type { BakePolicy } from '../shared/bake';
import type { PasswordPolicy, RetirementPolicy, WindowConfig } from '../shared/rotation';
import type { Strategy } from '../shared/vocabulary';

export type { Weekday } from '../shared/vocabulary';
export type { WindowConfig } from '../shared/rotation';

/** When a secret rotates: a fixed interval (from the Unix epoch, plus `offsetMs`) or a 5-field cron expression. */
export type ScheduleConfig =
  | { kind: 'every'; everyMs: number; offsetMs?: number; jitterMs?: number; window?: WindowConfig }
  | { kind: 'cron'; cron: string; timezone: string; jitterMs?: number; window?: WindowConfig }
  /**
   * A credential with a lifetime of its own (a certificate): checked every `checkEveryMs`, renewed at `renewAt` of
   * its lifetime (or in its issuer's ARI window), up to `jitterMs` early; `alertBeforeMs` before its end without a
   * renewal, an alert.
   */
  | {
      kind: 'lifetime';
      renewAt: number;
      checkEveryMs: number;
      jitterMs?: number;
      alertBeforeMs?: number;
      window?: WindowConfig;
    };

/** A webhook alerts go to. The URL (or the header's value) may be a credential: only env var names are kept here. */
export interface WebhookRouteConfig {
  name: string;
  url?: string;
  /** Env var holding the URL; the worker reads it. */
  urlFromEnv?: string;
  header?: { name: string; valueFromEnv: string };
}

/** One secret rotor rotates, with the file's defaults merged in. */
export interface ManagedSecret {
  id: string;
  description?: string;
  /** Absent: detected from the secret. */
  strategy?: Strategy;
  schedule: ScheduleConfig;
  graceMs: number;
  catchupWindowMs: number;
  passwordPolicy?: Partial<PasswordPolicy>;
  retirement?: Partial<RetirementPolicy>;
  /** Names of routes in `alerts.webhooks`. */
  alerts: string[];
  maxStepAttempts?: number;
  /** Automatic rollback on consumers' evidence after finish. */
  bake?: BakePolicy;
  /** Absent: `apply` leaves the schedule's pause state alone. */
  paused?: boolean;
  note?: string;
  /** Names `rotor rotate --tag` selects by. */
  tags?: string[];
}

/** rotor.yaml, validated, with defaults filled in. */
export interface RotorConfig {
  secrets: ManagedSecret[];
  alerts: { stuckPhaseBudgetMs: number; webhooks: Record<string, WebhookRouteConfig> };
  /**
   * `storeWritesPerSecond` and `perTargetConcurrency` hold per worker process; `fleetStoreWritesPerSecond`, when
   * set, is a store-write ceiling for the rotations of every worker on the task queue, enforced by the cluster.
   */
  throughput: { storeWritesPerSecond: number; perTargetConcurrency: number; fleetStoreWritesPerSecond?: number };
  /** `port` 0 disables the metrics endpoint. */
  metrics: { port: number; host: string };
  /** The endpoint consumers report logins to (`port` 0, the default, serves none). */
  reports: ReportsConfig;
  /** Where secrets live: AWS Secrets Manager (`aws`) and the OpenBao/Vault stores declared, and the default. */
  stores: StoresConfig;
  /** Programs rotators run by name (ACME challenges), as `hooks.<name>` declares them. */
  hooks: Record<string, HookConfig>;
}

/** The stores: an id starting with `<name>:` lives in that store; any other id (a plain id, an ARN) in `default`. */
export interface StoresConfig {
  default: string;
  openbao: OpenBaoStoreConfig[];
}

/** An OpenBao or Vault KV v2 store. Tokens and secret ids stay in the environment or in files, never in rotor.yaml. */
export interface OpenBaoStoreConfig {
  name: string;
  address: string;
  mounts: string[];
  namespace?: string;
  caFile?: string;
  requestTimeoutMs?: number;
  auth:
    | { method: 'token'; tokenFromEnv: string }
    | { method: 'token'; tokenFile: string }
    | { method: 'approle'; roleId: string; secretIdFromEnv: string; mount?: string }
    | { method: 'approle'; roleId: string; secretIdFile: string; mount?: string }
    | { method: 'kubernetes' | 'jwt'; role: string; jwtFile?: string; mount?: string };
}

/** The report endpoint: where it listens, how it is reached, and who may report on what. */
export interface ReportsConfig {
  port: number;
  /** 127.0.0.1 unless told otherwise. */
  host: string;
  tokens: ReportTokenConfig[];
  /** Serve HTTPS with these PEM files. */
  tls?: { certFile: string; keyFile: string };
  /** Proxies (exact addresses) whose `X-Forwarded-For` names the reporting instance; any other peer is the instance. */
  trustedProxies: string[];
  /**
   * IPv6 reporters are one instance per network of this many bits (default 64: a host's own /64, whatever addresses
   * it uses in it); 128 counts each address. IPv4 reporters are one instance per address.
   */
  ipv6InstancePrefix: number;
  /** How often a secret's counts go to its rotation, at most: each forward is a signal in its history. */
  forwardEveryMs: number;
}

/** A report token: its value stays in the environment; `secrets` are ids, or prefixes ending in `/*` (or `*`: all). */
export interface ReportTokenConfig {
  name: string;
  tokenFromEnv: string;
  secrets: string[];
  /** Requests a second the token's holders may send together, over a burst of twice as many; more get 429. */
  requestsPerSecond: number;
  /** Live leases of short-lived credentials the token's holders may hold through one worker (default 100). */
  maxLeases: number;
}

/** One thing wrong with the file: where (`secrets[0].schedule.cron`, or `line 3, column 5`) and what. */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** Thrown by parseConfig and loadConfig when the file is not valid; `problems` lists all of them, in one message. */
export class ConfigError extends InvalidInputError {
  constructor(
    source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`${source}: ${problems.length} problem(s)\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
  }
}
