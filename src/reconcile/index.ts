// The reconcile loop and its parts: the steps and their dispositions, drift, the kernel engine,
// and the seam the runtime services plug into. docs/daemon.md describes the loop.

export { detectDrift, MAX_DIFFERENCE_LINES, type DriftFinding, type ExpectedState } from './drift.js';
export { applyRequestOf, kernelEngine, plannedRevisionOf, validateConfigAt, type PlannedRevision, type PrepareRequest, type ReconcileEngine, type ValidatedConfig } from './engine.js';
export { classifyFailure, IFACE_RETRY_MS, LOCKED_RETRY_MS, StepError, type StepFailure, type StepName } from './failure.js';
export {
  DEFAULT_SETTLE_MS, Reconciler,
  type AppliedState, type DriftCheckResult, type ReconcileMetricsSink, type ReconcileOutcome, type ReconcilerOptions,
} from './reconciler.js';
export { NO_RUNTIME, type RuntimeProvider, type RuntimeSnapshot } from './runtime.js';
export { dataPlaneSummary, planLines, revisionLabel } from './status.js';
