// One reconcile run as a linear list of steps, stopping at the first error (docs/design.md §5):
//
//   fetch     Source.fetch(): the revision the source points at now
//   (unchanged revision and runtime inputs: an explicit no-op, result "unchanged")
//   validate  read + parse + schema + semantic checks of the revision's config: the one read
//   --- under the instance lock ---
//   compile   recover an interrupted apply, compile the checked config with the runtime inputs,
//   plan      encode for this host and diff against the live maps (one call: engine.prepare)
//   apply     the transaction (inactive generation, one flip, read-back, rollback on failure)
//   verify    read the live maps again: they must hold exactly what was applied
//
// What the outcome does to the status, retries and logs is the Reconciler's business.

import type { RecoveryResult } from '../apply/index.js';
import { ConfigError } from '../core/config/config-error.js';
import { formatDiagnostic } from '../core/config/diagnostics.js';
import { isLbError } from '../core/errors.js';
import type { Logger } from '../log.js';
import type { Source, SourceRevision } from '../source/types.js';
import type { KnownLive } from '../state/known-live.js';
import { applyAndVerify } from './apply-verify.js';
import type { ReconcileEngine } from './engine.js';
import { classifyFailure, step, stepSync, type StepFailure } from './failure.js';
import type { RuntimeProvider } from './runtime.js';
import type { AppliedState, ReconcileOutcome } from './types.js';

/** The stalled attempt: its revision (null when the source failed before naming one) and what failed. */
export interface StalledAttempt {
  revision: string | null;
  key: string;
}

export interface RunContext {
  source: Source;
  engine: ReconcileEngine;
  runtime: RuntimeProvider;
  log: Logger;
  signal: AbortSignal;
  /** Wall-clock now, for the applied state's time. */
  now(): Date;
  stalled: StalledAttempt | null;
  applied: AppliedState | null;
  /** The source named a revision: fetched (with its ref), or named by a refusal (without). */
  named(revision: string, ref?: string): void;
}

export interface RunResult {
  outcome: ReconcileOutcome;
  /** Set when the run applied (or found live) a revision: the new drift reference. */
  applied?: AppliedState;
}

/** Failures with equal keys are the same refusal. */
export function failureKey(f: StepFailure): string {
  return `${f.step}|${f.reason}|${f.message}`;
}

/**
 * What the loop knows of the live state for the next plan: the state it applied and verified last,
 * while no drift check has found drift since (the plan checks the maps still stand where they did).
 */
export function knownOf(applied: AppliedState | null): { known?: KnownLive } {
  if (!applied?.mark) return {};
  return { known: { desired: applied.desired, targetIds: applied.request.targetIds ?? new Map(), mark: applied.mark } };
}

/** One run. Never throws: a failure is an outcome. `force` does not stop at "unchanged". */
export async function runSteps(ctx: RunContext, force: boolean): Promise<RunResult> {
  let rev: SourceRevision | undefined;
  try {
    const fetched = await step('fetch', () => ctx.source.fetch({ signal: ctx.signal }));
    rev = fetched;
    ctx.named(fetched.revision, fetched.ref);
    const current = ctx.runtime.snapshot();
    if (!force && ctx.stalled?.revision === fetched.revision) return { outcome: { result: 'unchanged', revision: fetched.revision, because: 'stalled' } };
    if (!force && ctx.applied?.revision === fetched.revision && ctx.applied.runtimeFingerprint === current.fingerprint) {
      return { outcome: { result: 'unchanged', revision: fetched.revision, because: 'applied' } };
    }

    const validated = await step('validate', () => ctx.engine.check(fetched.configPath));
    ctx.log.debug({ component: 'reconcile', step: 'validate', revision: fetched.revision }, 'config checked');
    // The runtime learns the config first (targets to check, names to resolve), so the inputs
    // compiled with it are its answers for this config, not the previous one's.
    let runtime = current;
    if (ctx.runtime.configure) {
      ctx.runtime.configure(validated.config, fetched.revision);
      runtime = ctx.runtime.snapshot();
    }

    return await step('apply', () => ctx.engine.withLock(async (): Promise<RunResult> => {
      const recovered: RecoveryResult | null = stepSync('apply', () => ctx.engine.recover());
      if (recovered) ctx.log.warn({ component: 'reconcile', outcome: recovered.outcome, warnings: recovered.warnings }, recovered.message);
      const warnings: string[] = [];
      const planned = await step(
        (err) => (err instanceof ConfigError || (isLbError(err) && err.code.startsWith('LB_COMPILE_')) ? 'compile' : 'plan'),
        () => ctx.engine.prepare({ config: validated, revision: fetched.revision, inputs: runtime.inputs, warn: (m) => warnings.push(m), ...knownOf(ctx.applied) }),
      );
      ctx.log.debug({ component: 'reconcile', step: 'plan', revision: fetched.revision, plan: planned.summary, liveFrom: planned.liveFrom }, 'plan made; applying');
      const { result, readBack, mark } = await applyAndVerify(ctx.engine, planned.request, planned.desired);
      return {
        applied: {
          revision: fetched.revision,
          runtimeFingerprint: runtime.fingerprint,
          request: planned.request,
          desired: planned.desired,
          configDigest: planned.configDigest,
          appliedAt: ctx.now().toISOString(),
          ...(mark !== null ? { mark } : {}),
        },
        outcome: {
          result: result.changed ? 'applied' : 'noop',
          revision: fetched.revision,
          ref: fetched.ref,
          plan: planned.summary,
          changes: planned.changes,
          warnings: [...validated.warnings.map(formatDiagnostic), ...planned.warnings.filter((d) => d.stage === 'compile').map(formatDiagnostic), ...warnings, ...result.warnings],
          dataPlane: readBack.dataPlane,
          names: readBack.names,
          recovered,
        },
      };
    }));
  } catch (err) {
    const failure = classifyFailure(err, rev?.rootDir);
    const revision = rev?.revision ?? failure.revision ?? null;
    if (revision !== null && rev === undefined) ctx.named(revision);
    // The same refusal again (the same revision, or the same error before any revision): not a new attempt.
    const stalled = ctx.stalled;
    if (!force && failure.disposition === 'stalling' && stalled
      && (revision !== null ? stalled.revision === revision : stalled.revision === null && stalled.key === failureKey(failure))) {
      return { outcome: { result: 'unchanged', revision, because: 'stalled' } };
    }
    return { outcome: { result: failure.disposition === 'stalling' ? 'stalled' : 'failed', revision, failure } };
  }
}
