// Helpers for the status the reconciler keeps and reports: revision labels for messages, the data
// plane summary, the plan lines worth logging.

import type { Plan } from '../core/plan/plan.js';
import { planSections } from '../core/plan/render-text.js';
import type { DataPlaneSummary } from '../report/types.js';
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
export function dataPlaneSummary(live: LiveState): DataPlaneSummary {
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
