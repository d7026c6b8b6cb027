// StatusReport: what a node tells the world about its reconciling, committed as
// `<node>/status.json` on the status branch (schema documented in docs/gitops.md).

import type { TrafficStatus } from '../observe/observability.js';
import type { RuntimeStatus } from '../runtime/status.js';

export const STATUS_REPORT_SCHEMA = 'lb.status/v1' as const;

/** Degraded: the applied state serves, but part of it cannot (an interface it names is missing). */
export type ConditionType = 'Ready' | 'Reconciling' | 'Stalled' | 'Degraded';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  /** CamelCase, machine-readable: ReconciliationSucceeded, RefNotFound, ConfigInvalid, ... */
  reason: string;
  message: string;
  /** ISO 8601: when `status` last changed. */
  lastTransitionTime: string;
}

/** The outcome of the last attempt. */
export type ReconcileResult = 'applied' | 'unchanged' | 'stalled' | 'failed' | 'progressing';

export interface ReportError {
  /** An error code (LB_CONFIG_SCHEMA, LB_SOURCE_REF_NOT_FOUND, ...). */
  code: string;
  message: string;
  /** Repository-relative file, 1-based line and column, and the JSON pointer, when known. */
  file?: string;
  line?: number;
  column?: number;
  pointer?: string;
}

export interface PlanSummary {
  add: number;
  change: number;
  destroy: number;
}

export interface DataPlaneSummary {
  /** The data paths in use: tc, xdp-native, xdp-generic (joined with +), or none when nothing is attached. */
  mode: string;
  interfaces: string[];
  /** The data path of each attached interface (tc, xdp-native or xdp-generic). */
  paths?: Record<string, string>;
  listeners: number;
  targets: number;
}

export interface DriftSummary {
  /** Entries found different from the last applied state at the last check. */
  entries: number;
  healed: boolean;
  detectedAt: string;
}

export interface StatusReport {
  schema: typeof STATUS_REPORT_SCHEMA;
  node: string;
  instance: string;
  source: { kind: 'git' | 'file'; url: string; ref: string; path: string };
  /** The revision the source points at now. */
  desiredRevision: string | null;
  /** The revision live in the data plane. */
  lastAppliedRevision: string | null;
  /** The revision of the last reconcile attempt (may have failed). */
  lastAttemptedRevision: string | null;
  result: ReconcileResult;
  conditions: Condition[];
  /** The last plan's counts, null when no plan was made. */
  plan: PlanSummary | null;
  errors: ReportError[];
  dataPlane: DataPlaneSummary | null;
  drift?: DriftSummary | null;
  /**
   * The runtime services per target: effective weight, health, circuit, drain; DNS hosts; drains;
   * circuits (src/runtime/status.ts). Absent when the daemon runs no runtime services; null before
   * the first valid config.
   */
  runtime?: RuntimeStatus | null;
  /**
   * Connections through the data plane, from its connection events (src/observe/observability.ts):
   * per proxy and backend (active, opened, closed, bytes, latency percentiles), the access log and
   * settings.metrics endpoint. Written by the daemon; absent from reports of other writers.
   */
  traffic?: TrafficStatus;
  timestamps: {
    lastAttemptedAt: string | null;
    lastAppliedAt: string | null;
    /** When the report was made. Not content: a report differing only here is not committed. */
    generatedAt: string;
  };
  /** lb version that wrote the report. */
  version?: string;
}
