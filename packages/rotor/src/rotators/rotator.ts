import type { SetupPlan } from '../shared/reports';
import type { PasswordPolicy, RetirementPolicy } from '../shared/rotation';

/** What a rotator may ask of the engine while it works: other secrets it depends on (an admin secret, say). */
export interface RotatorContext {
  /** The AWSCURRENT value of another secret, by id or ARN. Throws SecretNotFoundError when there is none. */
  readCurrent(secretIdOrArn: string): Promise<string>;
  /**
   * Runs a hook rotor.yaml declares (`hooks.<name>`), with `action` as its last argument and `vars` in its
   * environment: how a rotator reaches systems only the team knows (an ACME challenge's DNS record). Throws
   * InvalidInputError for a hook the file does not declare, UnavailableError when it fails or times out.
   */
  runHook?(name: string, action: string, vars: Record<string, string>): Promise<void>;
  /**
   * Makes `value` the AWSCURRENT version of another secret rotor keeps for this one (a CA's trust bundle), as a
   * version whose id is derived from the secret and the value: writing the same value again changes nothing, and a
   * value written before becomes current again. Returns whether AWSCURRENT moved.
   */
  writeCurrent?(secretIdOrArn: string, value: string): Promise<boolean>;
  /** Whether rotor.yaml declares the hook `name` (for `check`). */
  hasHook?(name: string): boolean;
  /**
   * What this step noted (`note`) in an earlier attempt that was cut short (a crash, a timeout), or undefined: lets
   * a step with an outside side effect (an ACME order) resume it rather than make a second. Notes are kept in
   * Temporal: ids and URLs only, never a value.
   */
  recall?(): unknown;
  note?(details: unknown): void;
}

/** When a credential with a lifetime is due for renewal, and why then. */
export interface RenewalDue {
  dueAt: Date;
  /** Absent: no credential yet. */
  notAfter?: Date;
  notBefore?: Date;
  /** `lifetime`: at renewAt of notBefore..notAfter; `ari`: in the issuer's suggested window; `none-yet`: now. */
  basis: 'lifetime' | 'ari' | 'none-yet';
}

/** What `prepare` knows of the rotation about to run, for rotators whose safety depends on it (`check`). */
export interface RotationPlan {
  /** How long the previous version stays valid after finish. */
  graceMs: number;
}

/**
 * The contract every credential strategy implements. Plain Node: no Temporal imports.
 *
 * The engine (activities + workflow) owns the step dispatcher, the staging labels and finish. A rotator owns only
 * what differs between credential kinds. Each method is idempotent: it first checks whether its work is already
 * done and returns early (`already-...` outcomes), so a step retried after a crash converges.
 *
 * Values (`S`) never leave the rotator and the activity that called it; methods return short outcome words.
 */
export interface Rotator<S = unknown> {
  /** The rotator's name, as status, metrics and audit rows show it: 1 to 63 of a-z, 0-9 and -. */
  readonly kind: string;

  /**
   * The secret JSON `engine` values this rotator handles, for rotators a team registers (`withRotators`): a secret
   * with such an engine gets this rotator without a `rotor:rotator` tag.
   */
  readonly engines?: readonly string[];

  /** Validates a secret's JSON. Throws InvalidSecretError naming each problem, or UnsupportedEngineError. */
  parse(secretId: string, raw: string): S;

  /**
   * The system the credential opens, e.g. `postgres://db.internal:5432`: rotations of one target share the
   * worker's per-target concurrency limit. Never contains a credential.
   */
  target(secret: S): string;

  /**
   * Preflight, changing nothing, run by `prepare` before any version is written and by `rotor check`: the target is
   * reachable and a version logs in (`current`, or one of `fallbacks` where the strategy can fall back); for pairs,
   * the admin secret exists, names the same server, logs in and may manage logins. Returns a short outcome; throws
   * the error the rotation would otherwise meet later (non-retryable when a retry cannot help).
   */
  check(
    secretId: string,
    versions: { current: S; fallbacks: S[] },
    context: RotatorContext,
    rotation?: RotationPlan,
  ): Promise<string>;

  /**
   * The serialized value of the next version, made from the current one (every other field kept as it is).
   * `context` reads the secrets it is made from (a TLS certificate's CA).
   */
  nextValue(secretId: string, current: S, policy: PasswordPolicy, context?: RotatorContext): string | Promise<string>;

  /**
   * For a `nextValue` that waits on an outside service (an ACME order): create then runs as an ordinary activity
   * (never a local attempt) that may take `timeoutMs`, heartbeats, and reads what an attempt cut short noted
   * (`RotatorContext.recall`). Without it, create is a few store calls like any step.
   */
  remoteCreate?(secret: S): { timeoutMs: number } | undefined;

  /**
   * Makes the target accept `pending`, logging in with `current`, or with one of `fallbacks` (AWSPREVIOUS, a stray
   * AWSPENDING) when the target still holds that one.
   */
  set(secretId: string, versions: { pending: S; current: S; fallbacks: S[] }, context: RotatorContext): Promise<string>;

  /** Proves `value` works against the target. Throws TestFailedError when it does not. */
  test(secretId: string, value: S, context: RotatorContext): Promise<void>;

  /**
   * For credentials that verifiers learn ahead of use (a JWT signing key, published in a JWKS that verifiers
   * cache): how long from now, in ms, `pending` must wait before it becomes AWSCURRENT. After `test`, the workflow
   * waits that long on a durable timer (phase `publishing`); a rollback asked meanwhile compensates. Without this
   * method, finish follows test at once.
   */
  holdBeforeFinish?(secretId: string, pending: S, context: RotatorContext): Promise<number>;

  /**
   * For credentials with a lifetime of their own (a certificate), for `renewAt` schedules: when the next rotation is
   * due (at `renewAt` of the current version's lifetime, or at a random time in the window its issuer suggests, ACME
   * ARI) and when the current version stops working. Without a current credential yet, due now.
   */
  /** For credentials with a lifetime of their own: when `value` starts and stops working (`rotor status`). */
  lifetimeOf?(secretId: string, value: S): { notBefore: Date; notAfter: Date } | undefined;

  renewalDue?(secretId: string, current: S, options: { renewAt: number }, context: RotatorContext): Promise<RenewalDue>;

  /**
   * For credentials whose readers must keep what the versions given up added (a keyring's keys, which rows may be
   * encrypted with): the value a rollback makes current in place of `want` itself. AWSCURRENT moves straight to it (a
   * version rotor writes, its id derived from its content), so no reader ever reads a version without those parts.
   * Undefined: `want` as it is.
   */
  reinstatedValue?(secretId: string, versions: { want: S; via: S[] }): string | undefined;

  /** Compensation and rollback: makes the target accept `want` again, logging in with any of `via`. */
  restore(secretId: string, versions: { want: S; via: S[] }, context: RotatorContext): Promise<string>;

  /**
   * After grace: revokes what the previous version still grants, if the strategy leaves anything, per `policy`
   * (strategies without a previous login ignore it). With `terminateSessions`, ends its live sessions first.
   */
  retire(
    secretId: string,
    versions: { previous?: S; current: S; policy?: RetirementPolicy; terminateSessions?: boolean },
    context: RotatorContext,
  ): Promise<string>;

  /**
   * `rotor setup`, for strategies with a one-time setup (PostgreSQL alternating users: the owner-role model): the
   * plan, statement by statement, applied idempotently through the admin secret unless `dryRun`.
   */
  setup?(secretId: string, current: S, context: RotatorContext, options: { dryRun: boolean }): Promise<SetupPlan>;

  /** Live sessions of the previous version's login, for strategies that retire one. */
  countLiveSessions?(secretId: string, versions: { previous: S; current: S }, context: RotatorContext): Promise<number>;
}
