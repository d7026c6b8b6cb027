// Drift: the live data plane differing from the state the reconciler last applied (the desired
// state of the applied revision, compiled with the runtime inputs of that apply). Pure: the live
// state is read by the caller; this compares bytes, then explains the difference in plan terms.
//
// The same comparison is the reconcile loop's verify step: right after an apply, drift must be
// none. Runtime-driven weight changes are not drift because the runtime changes weights through a
// reconcile, which moves the applied state with them (src/reconcile/runtime.ts).

import { describeOp, diffGeneration, type RawOp } from '../core/ops.js';
import { encodeGeneration, type Attachment, type GenerationConfig } from '../dataplane/index.js';
import { diffStates } from '../core/plan/plan.js';
import { planSections } from '../core/plan/render-text.js';
import type { LiveState } from '../state/live.js';
import type { LogicalState } from '../core/state.js';

/** What must be live: the generation content and attachments an apply installed. */
export interface ExpectedState {
  generation: GenerationConfig;
  interfaces: readonly string[];
  desired: LogicalState;
}

export interface DriftFinding {
  /** Map entries and interface attachments that differ. */
  entries: number;
  /** What re-applying would change, in plan lines (at most MAX_DIFFERENCE_LINES). */
  differences: string[];
}

export const MAX_DIFFERENCE_LINES = 20;

export function detectDrift(expected: ExpectedState, live: LiveState): DriftFinding | null {
  const gen = live.ctl.activeGen;
  const ops = diffGeneration(gen, live.raw, encodeGeneration(gen, expected.generation));
  const attachmentIssues = attachmentDrift(expected, live.attachments, live.state.paths);
  if (ops.length === 0 && attachmentIssues.length === 0) return null;
  // Bytes can differ where the operator's view does not (e.g. a target id): then the raw writes are shown.
  return explainDrift(expected.desired, live.state, live.exists, ops, attachmentIssues);
}

/** A finding in plan terms: what re-applying would change, then the raw writes (when the plan shows none) and the attachments. */
export function explainDrift(desired: LogicalState, liveState: LogicalState, exists: boolean, rawWrites: readonly RawOp[], attachmentIssues: string[]): DriftFinding {
  const lines: string[] = [];
  if (!exists) lines.push('the instance has no pinned data plane any more (taken down behind the daemon\'s back)');
  for (const section of planSections(diffStates(desired, liveState))) {
    for (const line of section.lines) if (line.change) lines.push(`${line.sign} ${section.title}: ${line.text}`);
  }
  if (lines.length === 0) lines.push(...rawWrites.map(describeOp));
  lines.push(...attachmentIssues);
  return findingOf(rawWrites.length + attachmentIssues.length, lines);
}

/** What differs in the interfaces' attachments (programs, data path, route_localnet) from what was applied. */
export function attachmentDrift(expected: ExpectedState, attachments: readonly Attachment[], livePaths: LogicalState['paths']): string[] {
  const issues: string[] = [];
  const byName = new Map(attachments.map((a) => [a.ifname, a]));
  for (const name of [...expected.interfaces].sort()) {
    const a = byName.get(name);
    const chosen = expected.desired.paths?.[name]?.path;
    if (!a || a.path === null) issues.push(`interface ${name}: lb's programs are not attached`);
    else if (chosen !== undefined && chosen !== 'auto' && a.path !== chosen) issues.push(`interface ${name}: runs the ${a.path} data path, ${chosen} was chosen`);
    else if (expected.desired.paths?.[name]?.routeLocalnet && !livePaths?.[name]?.routeLocalnet) {
      issues.push(`interface ${name}: route_localnet is off, and its loopback targets need it`);
    }
    else if (a.stale) issues.push(`interface ${name}: an older version of lb's programs is attached`);
  }
  for (const a of attachments) {
    if (!expected.interfaces.includes(a.ifname)) issues.push(`interface ${a.ifname}: lb's programs are attached but the applied state does not use it`);
  }
  return issues;
}

/** A finding of `entries` differences, its lines bounded. */
export function findingOf(entries: number, lines: string[]): DriftFinding {
  return {
    entries,
    differences: lines.length > MAX_DIFFERENCE_LINES
      ? [...lines.slice(0, MAX_DIFFERENCE_LINES), `... and ${lines.length - MAX_DIFFERENCE_LINES} more`]
      : lines,
  };
}
