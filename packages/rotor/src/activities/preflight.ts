import { redactHanded, withHandedValues } from './handed-values';
import { compact } from '../shared/compact';
import { selectRotatorKind, STRATEGY_TAG } from '../rotators/registry';
import { retirementFromTags } from '../rotators/retirement';
import { versionWithStage } from 'rotor-consumers/stores';
import { Stage } from '../shared/constants';
import { ErrorType, InvalidInputError, RotorError } from 'rotor-consumers/core';
import type { CheckName, SecretCheck, SecretCheckReport, SetupPlan } from '../shared/reports';
import type { PrepareInput } from '../shared/rotation';
import type { ActivityDeps } from './ports';
import { createStepContext } from './step-context';

/** What to do about a failed check, by check and error type: the line `rotor check` prints under it. */
function hintFor(name: CheckName, error: unknown): string {
  const type = error instanceof RotorError ? error.type : undefined;
  if (name === 'store')
    return "check the secret id, AWS_REGION and the worker's secretsmanager:GetSecretValue and DescribeSecret permissions";
  if (name === 'shape') return 'fix the secret value (docs/reference/secret-formats.md)';
  if (name === 'policies') return 'fix the tag on the secret, or the secret in rotor.yaml';
  if (type === ErrorType.Unavailable)
    return 'check the host, the port and the network path from the worker to the database';
  if (type === ErrorType.InvalidSecret) return 'fix the field of the secret it names';
  if (type === ErrorType.SecretNotFound) return 'masterarn must name an existing admin secret the worker may read';
  if (type === ErrorType.StoreConflict) return 'the admin secret must name the same host and port as the secret';
  if (type === ErrorType.InvalidInput) return 'fix what it names (the secret, the target, or the grace in rotor.yaml)';
  return 'make AWSCURRENT hold the password the database accepts, or give the admin secret the privilege it names';
}

/**
 * `rotor check`'s activity: everything a rotation will need, checked without changing anything, each check
 * reported on its own (a failure does not hide the next one where it can still run). Runs on the worker, which has
 * the network path and permissions rotations use.
 */
export function createPreflightActivities(deps: ActivityDeps) {
  const { store } = deps;
  const { context, onTarget, rotatorFor, parsedVersions, step } = createStepContext(deps);

  const activities = {
    /** `rotor setup`: the rotator's one-time setup plan for the secret, applied unless `dryRun`. */
    async setupSecret({ secretId, dryRun }: { secretId: string; dryRun: boolean }): Promise<SetupPlan> {
      return step('setup', secretId, undefined, async () => {
        const current = await store.getByStage(secretId, Stage.current);
        if (!current) throw new InvalidInputError(`secret ${secretId} has no ${Stage.current} version`);
        const kind = selectRotatorKind(secretId, current.value, (await store.describe(secretId)).tags, deps.rotators);
        const rotator = rotatorFor(secretId, kind);
        if (!rotator.setup)
          throw new InvalidInputError(
            `secret ${secretId} rotates with ${kind}, which needs no setup (rotor setup applies to PostgreSQL alternating users)`,
          );
        const value = rotator.parse(secretId, current.value);
        const setup = rotator.setup.bind(rotator);
        return onTarget(rotator, value, () => setup(secretId, value, context, { dryRun }));
      });
    },

    async checkSecret(input: PrepareInput): Promise<SecretCheckReport> {
      // As a step's: no value the check was handed leaves it in a detail, whatever the target answered.
      return withHandedValues(() => checkOne(input));
    },
  };

  async function checkOne({ secretId, overrides, graceMs }: PrepareInput): Promise<SecretCheckReport> {
    const checks: SecretCheck[] = [];
    const run = async <T>(
      name: CheckName,
      work: () => Promise<T> | T,
      detail: (value: T) => string,
    ): Promise<T | undefined> => {
      try {
        const value = await work();
        checks.push({ name, ok: true, detail: detail(value) });
        return value;
      } catch (error) {
        checks.push({
          name,
          ok: false,
          detail: redactHanded(error instanceof Error ? error.message : String(error)),
          hint: hintFor(name, error),
        });
        return undefined;
      }
    };
    const report = (rotator?: string): SecretCheckReport => ({
      secretId,
      ...compact({ rotator }),
      ok: checks.every((c) => c.ok),
      checks,
    });

    const read = await run(
      'store',
      async () => {
        const description = await store.describe(secretId);
        const current = await store.getByStage(secretId, Stage.current);
        if (!current) throw new InvalidInputError(`secret ${secretId} has no ${Stage.current} version`);
        return { description, current };
      },
      ({ description }) => `readable in ${store.description}, ${description.versions.length} versions`,
    );
    if (!read) return report();
    const { description, current } = read;

    const tags = overrides?.strategy ? { ...description.tags, [STRATEGY_TAG]: overrides.strategy } : description.tags;
    const parsed = await run(
      'shape',
      () => {
        const kind = selectRotatorKind(secretId, current.value, tags, deps.rotators);
        const rotator = rotatorFor(secretId, kind);
        return { kind, rotator, value: rotator.parse(secretId, current.value) };
      },
      ({ kind }) => `valid for ${kind}`,
    );

    await run(
      'policies',
      () => {
        const policy = retirementFromTags(secretId, description.tags);
        if (overrides?.retirement && parsed && !parsed.rotator.countLiveSessions) {
          throw new InvalidInputError(
            `secret ${secretId}: retirement applies to alternating users only, and this secret rotates with ${parsed.kind}`,
          );
        }
        return { ...policy, ...overrides?.retirement };
      },
      (p) => (parsed?.rotator.countLiveSessions ? `retire ${p.retire}, live sessions ${p.liveSessions}` : 'valid'),
    );
    if (!parsed) return report();

    // AWSCURRENT itself must log in: a rotation could fall back to AWSPREVIOUS, but then AWSCURRENT is wrong today.
    await run(
      'login',
      () =>
        onTarget(parsed.rotator, parsed.value, () =>
          parsed.rotator.check(
            secretId,
            { current: parsed.value, fallbacks: [] },
            context,
            graceMs === undefined ? undefined : { graceMs },
          ),
        ),
      (o) => o,
    );

    const pending = versionWithStage(description, Stage.pending);
    await run(
      'pending',
      async () => {
        if (!pending || pending === current.versionId) return 'no stray AWSPENDING';
        const [stray] = await parsedVersions(secretId, parsed.rotator, [pending]);
        const holds = stray
          ? await parsed.rotator.test(secretId, stray, context).then(
              () => true,
              () => false,
            )
          : false;
        throw new InvalidInputError(
          `version ${pending} is AWSPENDING but not AWSCURRENT: a rotation that did not finish left it${holds ? ', and the database accepts its password' : ''}. ` +
            'The next rotation takes the label over' +
            (holds ? ' after setting the database back to AWSCURRENT' : '') +
            `; to clear it now: aws secretsmanager update-secret-version-stage --secret-id ${secretId} --version-stage AWSPENDING --remove-from-version-id ${pending}`,
        );
      },
      (o) => o,
    );
    return report(parsed.kind);
  }

  return activities;
}
