// Helpers for the status the reconciler keeps and reports: revision labels for messages, the data
// plane summary, the plan lines worth logging, the report built from the kept status, readiness,
// and what of a report is worth a status-branch commit.

import type { Plan } from '../core/plan/plan.js';
import { planSections } from '../core/plan/render-text.js';
import type { Readiness } from '../observe/ops-server.js';
import { STATUS_REPORT_SCHEMA, type DataPlaneSummary, type StatusReport } from '../report/types.js';
import type { RuntimeStatus } from '../runtime/status.js';
import type { StatusState } from './status-reducer.js';

export type { DataPlaneSummary } from '../report/types.js';
import type { Attachment } from '../dataplane/index.js';
import type { LiveState } from '../state/live.js';
import { targetLabel } from '../core/state.js';

/** "main@0123456789ab" for a commit on a branch, "sha256:0123456789ab" for a file revision. */
export function revisionLabel(revision: string | null | undefined, ref?: string): string {
  if (!revision) return '(none)';
  if (revision.startsWith('sha256:')) return revision.slice(0, 19);
  const short = revision.slice(0, 12);
  if (!ref || ref === revision) return short;
  return `${ref.replace(/^refs\/(heads|tags)\//, '')}@${short}`;
}

/** The data path of an attachment as reported: tc, xdp-native, xdp-generic, or null. */
export function pathLabel(a: Attachment): string | null {
  if (a.path === 'tc') return 'tc';
  return a.path === 'xdp' ? `xdp-${a.xdp}` : null;
}

/** Data paths, interfaces and sizes of what is live. */
export function dataPlaneSummary(live: Pick<LiveState, 'attachments' | 'interfaces' | 'state'>): DataPlaneSummary {
  const paths: Record<string, string> = {};
  for (const a of live.attachments) {
    const label = pathLabel(a);
    if (label !== null) paths[a.ifname] = label;
  }
  const modes = [...new Set(Object.values(paths))].sort();
  const targets = new Set<string>();
  for (const l of live.state.listeners) {
    for (const t of l.defaultTargets) targets.add(targetLabel(t));
    for (const r of l.sourceRoutes) for (const t of r.targets) targets.add(targetLabel(t));
  }
  return {
    mode: modes.length === 0 ? 'none' : modes.join('+'),
    interfaces: [...live.interfaces],
    paths,
    listeners: live.state.listeners.length,
    targets: targets.size,
  };
}

/** The plan's change lines, e.g. `~ Proxy "web": default-target 10.0.0.1:80  weight: 1 -> 0`. */
export function planLines(plan: Plan, max = 50): string[] {
  const lines: string[] = [];
  for (const section of planSections(plan)) {
    for (const line of section.lines) if (line.change) lines.push(`${line.sign} ${section.title}: ${line.text}`);
  }
  return lines.length > max ? [...lines.slice(0, max), `... and ${lines.length - max} more`] : lines;
}

/** Who reports, and what is reported beside the kept status. */
export interface ReportContext {
  node: string;
  instance: string;
  source: StatusReport['source'];
  version: string | undefined;
  /** The runtime section; undefined when there are no runtime services. */
  runtime: RuntimeStatus | null | undefined;
  generatedAt: Date;
}

/** The status report of the kept status. */
export function buildReport(st: StatusState, ctx: ReportContext): StatusReport {
  return {
    schema: STATUS_REPORT_SCHEMA,
    node: ctx.node,
    instance: ctx.instance,
    source: ctx.source,
    desiredRevision: st.desiredRevision,
    lastAppliedRevision: st.lastAppliedRevision,
    lastAttemptedRevision: st.lastAttemptedRevision,
    result: st.result,
    conditions: st.conditions.map((c) => ({ ...c })),
    plan: st.plan,
    errors: st.errors,
    dataPlane: st.dataPlane,
    drift: st.drift,
    ...(ctx.runtime !== undefined ? { runtime: ctx.runtime } : {}),
    timestamps: { lastAttemptedAt: st.lastAttemptedAt, lastAppliedAt: st.lastAppliedAt, generatedAt: ctx.generatedAt.toISOString() },
    ...(ctx.version !== undefined ? { version: ctx.version } : {}),
  };
}

/**
 * /readyz: ready once a state matching the desired one was applied or adopted. `live`: the label
 * of the applied revision (null before any); `attempted`: of the last attempted one.
 */
export function readinessOf(st: StatusState, facts: { live: string | null; attempted: string; completedARun: boolean }): Readiness {
  const stalled = st.conditions.find((c) => c.type === 'Stalled' && c.status === 'True');
  if (facts.live !== null) {
    if (stalled) return { ready: true, reason: `revision ${facts.live} is live; revision ${facts.attempted} is stalled (${stalled.reason})` };
    return { ready: true, reason: `revision ${facts.live} is live` };
  }
  if (!facts.completedARun) return { ready: false, reason: 'the first reconcile has not completed' };
  if (stalled) return { ready: false, reason: `stalled (${stalled.reason}): ${stalled.message}` };
  const ready = st.conditions.find((c) => c.type === 'Ready' && c.status === 'False');
  if (ready) return { ready: false, reason: `failed (${ready.reason}): ${ready.message}` };
  return { ready: false, reason: 'no revision has been applied yet' };
}

/** What of a report is worth a status-branch commit: not times, not messages (a retry's countdown). */
export function significanceKey(report: StatusReport, runtimeKey: string | null): string {
  return JSON.stringify([report.desiredRevision, report.lastAppliedRevision, report.lastAttemptedRevision, report.result,
    report.conditions.map((c) => [c.type, c.status, c.reason]), report.plan, report.errors, report.drift, report.dataPlane, runtimeKey]);
}
