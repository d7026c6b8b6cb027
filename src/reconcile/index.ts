// The reconcile loop and its parts: the steps and their dispositions, drift, the kernel engine,
// the status reducer, the clock, and the seam the runtime services plug into. docs/daemon.md
// describes the loop.

export { afterApplyMessage, applyAndVerify, expectedOf, type AppliedAndVerified, type ApplyAndVerifyOptions } from './apply-verify.js';
export { REAL_CLOCK, type Clock, type TimerHandle } from './clock.js';
export { detectDrift, MAX_DIFFERENCE_LINES, type DriftFinding, type ExpectedState } from './drift.js';
export { applyRequestOf, kernelEngine, plannedRevisionOf, type KernelEngineOptions, type PlannedRevision, type PrepareRequest, type ReconcileEngine } from './engine.js';
export { DEFAULT_PREPARE_HEAP_MB, DEFAULT_PREPARE_TIMEOUT_MS, PrepareWorker, type PrepareWorkerOptions } from './prepare-worker.js';
export { classifyFailure, IFACE_RETRY_MS, LOCKED_RETRY_MS, StepError, type StepFailure, type StepName } from './failure.js';
export { Reconciler, type ReconcilerOptions } from './reconciler.js';
export { NO_RUNTIME, type RuntimeProvider, type RuntimeSnapshot } from './runtime.js';
export { dataPlaneSummary, planLines, revisionLabel } from './status.js';
export { initialStatus, reduceStatus, type InitialStatus, type StatusEvent, type StatusState } from './status-reducer.js';
export { DEFAULT_SETTLE_MS } from './trigger-gate.js';
export type { AppliedState, DriftCheckResult, ReconcileMetricsSink, ReconcileOutcome } from './types.js';
