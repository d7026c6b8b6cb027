// Drift: the live data plane differing from the state the reconciler last applied (the desired
// state of the applied revision, compiled with the runtime inputs of that apply). Pure: the live
// state is read by the caller; this compares bytes, then explains the difference in plan terms.
//
// The same comparison is the reconcile loop's verify step: right after an apply, drift must be
// none. Runtime-driven weight changes are not drift because the runtime changes weights through a
// reconcile, which moves the applied state with them (src/reconcile/runtime.ts).

import { describeOp, diffGeneration } from '../core/ops.js';
import { encodeGeneration, type GenerationConfig } from '../dataplane/index.js';
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
  const attachmentIssues: string[] = [];
  const byName = new Map(live.attachments.map((a) => [a.ifname, a]));
  for (const name of [...expected.interfaces].sort()) {
    const a = byName.get(name);
    const chosen = expected.desired.paths?.[name]?.path;
    if (!a || a.path === null) attachmentIssues.push(`interface ${name}: lb's programs are not attached`);
    else if (chosen !== undefined && chosen !== 'auto' && a.path !== chosen) attachmentIssues.push(`interface ${name}: runs the ${a.path} data path, ${chosen} was chosen`);
    else if (expected.desired.paths?.[name]?.routeLocalnet && !live.state.paths?.[name]?.routeLocalnet) {
      attachmentIssues.push(`interface ${name}: route_localnet is off, and its loopback targets need it`);
    }
    else if (a.stale) attachmentIssues.push(`interface ${name}: an older version of lb's programs is attached`);
  }
  for (const a of live.attachments) {
    if (!expected.interfaces.includes(a.ifname)) attachmentIssues.push(`interface ${a.ifname}: lb's programs are attached but the applied state does not use it`);
  }
  if (ops.length === 0 && attachmentIssues.length === 0) return null;

  const lines: string[] = [];
  if (!live.exists) lines.push('the instance has no pinned data plane any more (taken down behind the daemon\'s back)');
  for (const section of planSections(diffStates(expected.desired, live.state))) {
    for (const line of section.lines) if (line.change) lines.push(`${line.sign} ${section.title}: ${line.text}`);
  }
  // Bytes can differ where the operator's view does not (e.g. a target id): show the raw writes.
  if (lines.length === 0) lines.push(...ops.map(describeOp));
  lines.push(...attachmentIssues);
  return {
    entries: ops.length + attachmentIssues.length,
    differences: lines.length > MAX_DIFFERENCE_LINES
      ? [...lines.slice(0, MAX_DIFFERENCE_LINES), `... and ${lines.length - MAX_DIFFERENCE_LINES} more`]
      : lines,
  };
}
