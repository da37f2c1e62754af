import { compact } from '../shared/compact';
import type { Phase, StepName } from '../shared/vocabulary';
import type { StepReport } from '../shared/rotation';
import { causeOf, typeOf } from './failures';
import type { Reporter } from './reporting';
import type { RotationState } from './rotation-state';

/** Runs one step of a rotation or rollback: phase, step timings in the status, and an audit event either way. */
export type StepRunner = <T extends StepReport>(name: StepName, phase: Phase, call: () => Promise<T>) => Promise<T>;

/** `versionIdOf` names the version a step's audit event is about, if any (the new version for create and finish). */
export function createStepRunner(
  state: RotationState,
  reporter: Reporter,
  versionIdOf: (name: StepName) => string | undefined,
): StepRunner {
  const { status } = state;
  return async (name, phase, call) => {
    state.enter(phase);
    const started = Date.now();
    const step: (typeof status.steps)[number] = { step: name, startedAt: new Date(started).toISOString() };
    status.steps.push(step);
    try {
      const stepReport = await call();
      step.attempts = stepReport.attempt;
      if (stepReport.outcome) step.outcome = stepReport.outcome;
      step.endedAt = new Date().toISOString();
      const versionId = versionIdOf(name);
      reporter.audit({
        kind: 'step',
        step: name,
        phase,
        outcome: stepReport.outcome ?? 'done',
        durationMs: Date.now() - started,
        ...compact({ versionId }),
        detail: { attempts: stepReport.attempt },
      });
      return stepReport;
    } catch (error) {
      step.error = causeOf(error);
      step.endedAt = new Date().toISOString();
      status.lastError = `${name}: ${step.error}`;
      reporter.audit({
        kind: 'step-failed',
        step: name,
        phase,
        outcome: typeOf(error) ?? 'error',
        durationMs: Date.now() - started,
        detail: { error: step.error },
      });
      throw error;
    }
  };
}
