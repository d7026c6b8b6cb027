// What a reviewer needs of each node's report, in one row: the revision it runs, the revision it
// should run, Ready, drift, how old the report is, and whether it is stale. Pure: `now` is given.

import { findCondition } from './conditions.js';
import type { StatusReport } from './types.js';

export interface NodeRow {
  node: string;
  applied: string | null;
  desired: string | null;
  /** The Ready condition's status (Unknown when the report has none) and reason. */
  ready: 'True' | 'False' | 'Unknown';
  reason: string;
  /** Stalled=True: the node stopped retrying (a bad config, a missing ref) until a new trigger. */
  stalled: boolean;
  /** Entries found different from the applied state at the last check (0: none or never checked). */
  drift: number;
  driftHealed: boolean;
  /** Seconds since the report was generated. */
  ageSec: number;
  /** Older than the stale limit: the node may be down, or unable to push its reports. */
  stale: boolean;
  /** The node runs another revision than it should (applied differs from desired). */
  behind: boolean;
}

/** Default stale limit: a daemon re-reports at least at every drift check and poll (30 s by default). */
export const DEFAULT_STALE_AFTER_SEC = 15 * 60;

export function nodeRow(r: StatusReport, now: Date, staleAfterSec = DEFAULT_STALE_AFTER_SEC): NodeRow {
  const ready = findCondition(r.conditions, 'Ready');
  const generated = Date.parse(r.timestamps.generatedAt);
  const ageSec = Number.isFinite(generated) ? Math.max(0, Math.floor((now.getTime() - generated) / 1000)) : Number.POSITIVE_INFINITY;
  return {
    node: r.node,
    applied: r.lastAppliedRevision,
    desired: r.desiredRevision,
    ready: ready?.status ?? 'Unknown',
    reason: ready?.reason ?? '',
    stalled: findCondition(r.conditions, 'Stalled')?.status === 'True',
    drift: r.drift?.entries ?? 0,
    driftHealed: r.drift?.healed ?? false,
    ageSec,
    stale: ageSec > staleAfterSec,
    behind: r.lastAppliedRevision !== r.desiredRevision,
  };
}

/** "42s", "5m", "3h", "2d". */
export function formatAge(sec: number): string {
  if (!Number.isFinite(sec)) return 'unknown';
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h`;
  return `${Math.floor(sec / 86400)}d`;
}

/** What the plan against a node's applied revision must say about the node (drift, stall, staleness). */
export function nodeNotes(row: NodeRow): string[] {
  const notes: string[] = [];
  if (row.applied === null) notes.push(`node ${row.node} has not applied any revision yet; the base is an empty data plane`);
  if (row.stalled) notes.push(`node ${row.node} is stalled (${row.reason || 'Stalled'}): it stopped retrying and runs ${short(row.applied)}, not ${short(row.desired)}`);
  else if (row.behind) notes.push(`node ${row.node} runs ${short(row.applied)} but should run ${short(row.desired)} (Ready ${row.ready}${row.reason ? `, ${row.reason}` : ''})`);
  if (row.drift > 0) notes.push(`node ${row.node} found ${row.drift} drifted entr${row.drift === 1 ? 'y' : 'ies'} in its data plane${row.driftHealed ? ' (healed)' : ' (not healed): the live state differs from its applied revision'}`);
  if (row.stale) notes.push(`node ${row.node}'s last report is ${formatAge(row.ageSec)} old: it may be down or unable to report`);
  return notes;
}

function short(rev: string | null): string {
  return rev === null ? 'nothing' : rev.replace(/^sha256:/, '').slice(0, 12);
}

const rev = (r: string | null): string => (r === null ? '-' : r.replace(/^sha256:/, '').slice(0, 12));

/** The flags a row raises: stale (no recent report), stalled, behind (applied is not desired), drift. */
export function rowFlags(row: NodeRow): string[] {
  const flags: string[] = [];
  if (row.stale) flags.push('STALE');
  if (row.stalled) flags.push('STALLED');
  if (row.behind) flags.push('BEHIND');
  if (row.drift > 0 && !row.driftHealed) flags.push('DRIFT');
  return flags;
}

/** The table's cells, in order: node, applied, desired, Ready, drift, last report, flags. */
export const FLEET_COLUMNS = ['NODE', 'APPLIED', 'DESIRED', 'READY', 'DRIFT', 'LAST REPORT', 'FLAGS'] as const;

export function fleetCells(row: NodeRow): string[] {
  const drift = row.drift === 0 ? 'none' : `${row.drift}${row.driftHealed ? ' (healed)' : ''}`;
  return [row.node, rev(row.applied), rev(row.desired), `${row.ready}${row.reason ? ` (${row.reason})` : ''}`, drift, `${formatAge(row.ageSec)} ago`, rowFlags(row).join(',') || '-'];
}

/** The table as Markdown (a PR comment); `|` in a cell is escaped. */
export function renderFleetMarkdown(rows: readonly NodeRow[], title: string): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const out = [`### ${title}`, '', `| ${FLEET_COLUMNS.join(' | ')} |`, `|${FLEET_COLUMNS.map(() => ' --- ').join('|')}|`];
  for (const row of rows) {
    const cells = fleetCells(row);
    cells[1] = row.applied === null ? '-' : `\`${cells[1]}\``;
    cells[2] = row.desired === null ? '-' : `\`${cells[2]}\``;
    cells[6] = cells[6] === '-' ? '' : `**${cells[6]}**`;
    out.push(`| ${cells.map(esc).join(' | ')} |`);
  }
  if (rows.length === 0) out.push('', 'No node has reported yet.');
  return `${out.join('\n')}\n`;
}
