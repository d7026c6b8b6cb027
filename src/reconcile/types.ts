// The reconcile loop's public types: what it was applied last, what a run ended with, what a
// drift check found, and the metrics it feeds.

import type { ApplyRequest, RecoveryResult } from '../apply/index.js';
import type { PlanSummary } from '../core/plan/plan.js';
import type { LogicalState } from '../core/state.js';
import type { LiveMark } from '../state/known-live.js';
import type { ReconcileResultLabel } from '../observe/metrics.js';
import type { TriggerKind } from '../source/triggers.js';
import type { ListenerNameTable } from '../observe/events/listener-names.js';
import type { DataPlaneSummary } from '../report/types.js';
import type { DriftFinding } from './drift.js';
import type { StepFailure } from './failure.js';

export interface ReconcileMetricsSink {
  reconcile(result: ReconcileResultLabel, seconds: number): void;
  /** Arrivals of one kind, once decided: they started a run, or named what was already applied. */
  triggers?(kind: TriggerKind, outcome: 'run' | 'skipped', count: number): void;
  appliedRevision(revision: string | null): void;
  driftDetected(): void;
}

/** What the loop applied last: the drift reference and the heal request. */
export interface AppliedState {
  revision: string;
  runtimeFingerprint: string;
  request: ApplyRequest;
  desired: LogicalState;
  configDigest: string;
  appliedAt: string;
  /**
   * Where the maps stood once this state was applied and verified: while they still stand there,
   * the next plan diffs against this state instead of reading the maps (src/state/known-live.ts).
   * Absent while not known, or since a drift check found drift.
   */
  mark?: LiveMark;
}

export type ReconcileOutcome =
  | { result: 'applied' | 'noop'; revision: string; ref: string; plan: PlanSummary; changes: string[]; warnings: string[];
    /** The data plane as the verify step read it, summarized for the status. */
    dataPlane: DataPlaneSummary;
    /** The listener names of the generation read back, for the connection events (null: nothing pinned). */
    names: ListenerNameTable | null;
    recovered: RecoveryResult | null }
  | { result: 'unchanged'; revision: string | null; because: 'applied' | 'stalled' }
  | { result: 'stalled' | 'failed'; revision: string | null; failure: StepFailure };

export interface DriftCheckResult {
  finding: DriftFinding | null;
  healed: boolean;
  /** Why no check was made, or why healing failed. */
  note?: string;
}
