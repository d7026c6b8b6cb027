// Status reporting (docs/design.md §5): the report model, its Markdown rendering, and the status branch.

export { findCondition, removeCondition, setCondition } from './conditions.js';
export { renderStatusMarkdown } from './markdown.js';
export { reportErrorsFrom } from './report-errors.js';
export { StatusBranchReporter, compareAndSwapRef, type PublishOutcome, type StatusBranchReporterOptions } from './status-branch.js';
export {
  STATUS_REPORT_SCHEMA,
  type Condition,
  type ConditionStatus,
  type ConditionType,
  type DataPlaneSummary,
  type DriftSummary,
  type PlanSummary,
  type ReconcileResult,
  type ReportError,
  type StatusReport,
} from './types.js';
