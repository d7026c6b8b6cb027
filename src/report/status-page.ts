// A bounded view of a status report for `lb status` and the control socket's `status`: the
// per-target and per-backend lists are what grows with the config (10,000 proxies made a 5.7 MB
// answer that took ~1 s to build, send and parse), so they come one page at a time, optionally
// of one proxy, with the totals and a summary of the whole. Everything else is small and whole.
// Pure.

import { LbError } from '../core/errors.js';
import type { RuntimeStatus, TargetStatus } from '../runtime/status.js';
import type { StatusReport } from './types.js';

/** Rows of each list in one answer unless asked otherwise; the most one answer holds. */
export const STATUS_DEFAULT_LIMIT = 100;
export const STATUS_MAX_LIMIT = 10_000;

export interface StatusSelection {
  /** Only this proxy's targets and traffic rows (null: every proxy). */
  proxy: string | null;
  /** Rows skipped of each list, then at most `limit` shown. */
  offset: number;
  limit: number;
}

export const DEFAULT_SELECTION: StatusSelection = { proxy: null, offset: 0, limit: STATUS_DEFAULT_LIMIT };

/** Counts over every target of the selection (all pages), so a page never hides trouble. */
export interface RuntimeSummary {
  targets: number;
  draining: number;
  failOpen: number;
  /** Backends by health: healthy, unhealthy, unknown, unchecked (no check configured). */
  health: Record<string, number>;
  /** Backends whose circuit is not closed (open or half-open). */
  circuitsNotClosed: number;
}

export interface StatusPage {
  proxy: string | null;
  offset: number;
  limit: number;
  /** Per list: rows of the selection, and rows in this answer. */
  lists: Record<'targets' | 'circuits' | 'dns' | 'traffic', { total: number; shown: number }>;
  runtime: RuntimeSummary | null;
}

function bad(message: string): never {
  throw new LbError('LB_DAEMON_CONTROL', message, { reason: 'arguments' });
}

/** The selection from a control request's args ({proxy?, offset?, limit?}); refuses anything else. */
export function statusSelection(args: Record<string, unknown>): StatusSelection {
  for (const k of Object.keys(args)) if (k !== 'proxy' && k !== 'offset' && k !== 'limit') bad(`status: unknown argument ${JSON.stringify(k.slice(0, 64))}; known: proxy, offset, limit`);
  const { proxy, offset = 0, limit = STATUS_DEFAULT_LIMIT } = args;
  if (proxy !== undefined && proxy !== null && (typeof proxy !== 'string' || proxy.length > 256)) bad('status: proxy must be a proxy name');
  if (!Number.isInteger(offset) || (offset as number) < 0) bad('status: offset must be an integer >= 0');
  if (!Number.isInteger(limit) || (limit as number) < 0 || (limit as number) > STATUS_MAX_LIMIT) bad(`status: limit must be an integer 0..${STATUS_MAX_LIMIT}`);
  return { proxy: typeof proxy === 'string' ? proxy : null, offset: offset as number, limit: limit as number };
}

function page<T>(rows: readonly T[], sel: StatusSelection): { rows: T[]; total: number; shown: number } {
  const out = rows.slice(sel.offset, sel.offset + sel.limit);
  return { rows: out, total: rows.length, shown: out.length };
}

export function runtimeSummary(targets: readonly TargetStatus[]): RuntimeSummary {
  const s: RuntimeSummary = { targets: targets.length, draining: 0, failOpen: 0, health: {}, circuitsNotClosed: 0 };
  for (const t of targets) {
    if (t.draining) s.draining++;
    if (t.failOpen) s.failOpen++;
    for (const b of t.backends) {
      s.health[b.health] = (s.health[b.health] ?? 0) + 1;
      if (b.circuit !== 'closed' && b.circuit !== 'disabled') s.circuitsNotClosed++;
    }
  }
  return s;
}

function ofProxy<T extends { proxy: string }>(rows: readonly T[], sel: StatusSelection): readonly T[] {
  return sel.proxy === null ? rows : rows.filter((r) => r.proxy === sel.proxy);
}

/** The runtime section cut to the selection's page; drains are whole (an operator makes each one, they stay few). */
export function pageRuntime(runtime: RuntimeStatus, sel: StatusSelection): { runtime: RuntimeStatus; summary: RuntimeSummary; lists: Pick<StatusPage['lists'], 'targets' | 'circuits' | 'dns'> } {
  const selected = ofProxy(runtime.targets, sel);
  const targets = page(selected, sel);
  const circuits = page(runtime.circuits, sel);
  const dns = page(runtime.dns, sel);
  return {
    runtime: { ...runtime, targets: targets.rows, circuits: circuits.rows, dns: dns.rows, drains: [...ofProxy(runtime.drains, sel)] },
    summary: runtimeSummary(selected),
    lists: { targets: { total: targets.total, shown: targets.shown }, circuits: { total: circuits.total, shown: circuits.shown }, dns: { total: dns.total, shown: dns.shown } },
  };
}

/** The report with its growing lists cut to the selection's page (of one proxy when it names one), and what was cut. */
export function pageReport(report: StatusReport, sel: StatusSelection): { report: StatusReport; page: StatusPage } {
  let runtime: RuntimeStatus | null | undefined = report.runtime;
  let summary: RuntimeSummary | null = null;
  const none = { total: 0, shown: 0 };
  let lists: StatusPage['lists'] = { targets: none, circuits: none, dns: none, traffic: none };
  if (runtime) {
    const paged = pageRuntime(runtime, sel);
    runtime = paged.runtime;
    summary = paged.summary;
    lists = { ...lists, ...paged.lists };
  }
  let traffic = report.traffic;
  if (traffic) {
    const backends = page(ofProxy(traffic.backends, sel), sel);
    lists.traffic = { total: backends.total, shown: backends.shown };
    traffic = { ...traffic, backends: backends.rows, recentCloses: [...ofProxy(traffic.recentCloses, sel)] };
  }
  return {
    report: { ...report, ...(runtime !== undefined ? { runtime } : {}), ...(traffic ? { traffic } : {}) },
    page: { proxy: sel.proxy, offset: sel.offset, limit: sel.limit, lists, runtime: summary },
  };
}

/** "showing 101-200 of 20000" lines for what a page left out (none when every row is shown). */
export function pageNotes(p: StatusPage): string[] {
  const notes: string[] = [];
  for (const [name, l] of Object.entries(p.lists)) {
    if (l.shown === l.total) continue;
    const range = l.shown === 0 ? 'none' : `${p.offset + 1}-${p.offset + l.shown}`;
    notes.push(`${name}: showing ${range} of ${l.total}`);
  }
  return notes;
}
