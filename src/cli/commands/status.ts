// `lb status [--format text|json] [--proxy NAME] [--offset N] [--limit N]`: the reconcile status of an instance. Asks the running daemon
// over its control socket; without a daemon, reads the last report it wrote
// (/run/lb/<instance>/status.json) and the live data plane directly (read-only, no lock).
// The runtime part (per target: effective/configured weight, health, circuit, drain; DNS hosts)
// is the report's `runtime` section: live from a running daemon, as last written otherwise.

import { controlRequest, controlSocketPath } from '../../daemon/control-socket.js';
import type { DaemonStatus } from '../../daemon/daemon.js';
import { readStatusFile, statusFilePath } from '../../daemon/status-file.js';
import { isLbError } from '../../core/errors.js';
import { dataPlaneSummary, revisionLabel } from '../../reconcile/status.js';
import type { StatusReport } from '../../report/types.js';
import { pageNotes, pageReport, STATUS_DEFAULT_LIMIT, type StatusPage, type StatusSelection } from '../../report/status-page.js';
import { DNS_COLUMNS, TARGET_COLUMNS, alignRows, dnsRows, targetRows } from '../../runtime/status-text.js';
import { readLive } from '../../state/live.js';
import { DataPlane, instanceComplete } from '../../dataplane/index.js';
import { rateLimitLines, rateLimitSummary, type RateLimitSummary } from '../../dataplane/rate-limits.js';
import { TRAFFIC_COLUMNS, trafficRows, trafficSummary } from '../../observe/traffic-text.js';
import { stdio, type CliIo } from '../output.js';

export const STATUS_FORMAT_VERSION = '1.0';

export interface StatusOptions {
  instance: string;
  format: 'text' | 'json';
  /** Only this proxy's targets and traffic rows. */
  proxy?: string;
  /** Rows of each per-target or per-backend list (default STATUS_DEFAULT_LIMIT), from `offset`. */
  limit?: number;
  offset?: number;
}

interface LiveSummary {
  exists: boolean;
  activeGen?: number;
  serial?: number;
  lastApply?: { revision: string | null; appliedAt: string; serial: number } | null;
  dataPlane?: ReturnType<typeof dataPlaneSummary>;
  error?: string;
}

/**
 * The rate limiter's counters, read from the pinned maps whether or not a daemon runs (the
 * daemon's report is as old as its last reconcile; counters are read now). Null without a data plane.
 */
function readRateLimits(instance: string): RateLimitSummary | null {
  if (!instanceComplete(instance)) return null;
  try {
    const dp = DataPlane.open({ instance });
    try {
      return rateLimitSummary(dp, readLive(instance, { dp }).generation.settings);
    } finally {
      dp.close();
    }
  } catch {
    return null; // being loaded or taken down right now: the rest of the status still reports
  }
}

export async function runStatus(options: StatusOptions, io: CliIo = stdio()): Promise<number> {
  const selection: StatusSelection = { proxy: options.proxy ?? null, offset: options.offset ?? 0, limit: options.limit ?? STATUS_DEFAULT_LIMIT };
  let daemon: DaemonStatus | null = null;
  try {
    daemon = (await controlRequest(controlSocketPath(options.instance), 'status', {
      ...(selection.proxy !== null ? { proxy: selection.proxy } : {}), offset: selection.offset, limit: selection.limit,
    }, { timeoutMs: 5000 })) as DaemonStatus;
  } catch (err) {
    if (!(isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason'] === 'unreachable')) throw err;
  }
  // The status file holds every row: the same page is cut from it.
  const file = daemon ? null : readStatusFile(options.instance);
  const paged = daemon ? { report: daemon.report, page: daemon.page } : file ? pageReport(file, selection) : null;
  const report = paged?.report ?? null;
  const live = daemon ? null : readLiveSummary(options.instance);
  const rateLimits = readRateLimits(options.instance);

  if (options.format === 'json') {
    io.out(JSON.stringify({
      format_version: STATUS_FORMAT_VERSION,
      instance: options.instance,
      daemon: daemon ? { running: true, ...daemon.daemon } : { running: false },
      status: report,
      ...(paged ? { page: paged.page } : {}),
      ...(live ? { live } : {}),
      ...(rateLimits ? { rate_limits: rateLimits } : {}),
    }, null, 2));
    return 0;
  }

  const lines: string[] = [];
  if (daemon) {
    const d = daemon.daemon;
    lines.push(`lb daemon: running (pid ${d.pid}, node ${d.node}, lb ${d.version}, since ${d.startedAt})`);
    lines.push(`Ready:            ${d.ready ? 'yes' : 'no'} (${d.readyReason})`);
  } else {
    lines.push(`lb daemon: not running for instance ${options.instance}`);
    lines.push(report ? `Last report:      ${statusFilePath(options.instance)} (${report.timestamps.generatedAt})` : 'Last report:      none (no daemon has run for this instance since boot)');
  }
  if (report) lines.push(...reportLines(report));
  if (paged) lines.push(...pageLines(paged.page));
  if (live) {
    if (live.error) lines.push(`Data plane:       cannot read it: ${live.error}`);
    else if (!live.exists) lines.push('Data plane:       none (nothing applied, or taken down with `lb down`)');
    else {
      const dp = live.dataPlane!;
      lines.push(`Data plane:       generation ${live.activeGen} serial ${live.serial}; ${dp.listeners} listener(s), ${dp.targets} target(s); ` +
        `${dp.interfaces.length > 0 ? `data path ${describePaths(dp)}` : 'no attachment visible from this network namespace'}`);
      if (live.lastApply) lines.push(`Last apply:       revision ${revisionLabel(live.lastApply.revision)} at ${live.lastApply.appliedAt}`);
    }
  }
  if (rateLimits) lines.push(...rateLimitLines(rateLimits));
  io.out(lines.join('\n'));
  return 0;
}

function reportLines(r: StatusReport): string[] {
  const out: string[] = [];
  const src = r.source.kind === 'git' ? `git ${r.source.url} ref ${r.source.ref}${r.source.path ? ` path ${r.source.path}` : ''}` : `file ${r.source.url}`;
  out.push(`Source:           ${src}`);
  out.push(`Result:           ${r.result}`);
  out.push(`Desired:          ${r.desiredRevision ?? '(unknown)'}`);
  out.push(`Last applied:     ${r.lastAppliedRevision ?? '(none)'}${r.timestamps.lastAppliedAt ? ` at ${r.timestamps.lastAppliedAt}` : ''}`);
  out.push(`Last attempted:   ${r.lastAttemptedRevision ?? '(none)'}${r.timestamps.lastAttemptedAt ? ` at ${r.timestamps.lastAttemptedAt}` : ''}`);
  if (r.plan) out.push(`Plan:             ${r.plan.add} to add, ${r.plan.change} to change, ${r.plan.destroy} to destroy`);
  if (r.conditions.length > 0) {
    out.push('Conditions:');
    const w = Math.max(...r.conditions.map((c) => c.reason.length));
    for (const c of r.conditions) out.push(`  ${c.type.padEnd(12)} ${c.status.padEnd(8)} ${c.reason.padEnd(w)}  ${c.message}`);
  }
  if (r.errors.length > 0) {
    out.push('Errors:');
    for (const e of r.errors) {
      const where = e.file ? `${e.file}${e.line !== undefined ? `:${e.line}:${e.column ?? 0}` : ''}: ` : '';
      out.push(`  ${where}${e.pointer ? `${e.pointer}: ` : ''}${e.message.split('\n')[0]} [${e.code}]`);
    }
  }
  if (r.drift) out.push(`Drift:            ${r.drift.entries} entr${r.drift.entries === 1 ? 'y' : 'ies'} at ${r.drift.detectedAt}, ${r.drift.healed ? 'healed' : 'not healed'}`);
  if (r.dataPlane) {
    const dp = r.dataPlane;
    out.push(`Data plane:       ${dp.listeners} listener(s), ${dp.targets} target(s); data path ${describePaths(dp)}`);
  }
  if (r.runtime) {
    const now = Date.parse(r.timestamps.generatedAt);
    out.push(`Algorithm:        ${r.runtime.algorithm}`);
    out.push('Targets:');
    out.push(...alignRows([[...TARGET_COLUMNS], ...targetRows(r.runtime, Number.isNaN(now) ? Date.now() : now)]).map((l) => `  ${l}`));
    if (r.runtime.dns.length > 0) {
      out.push('DNS:');
      out.push(...alignRows([[...DNS_COLUMNS], ...dnsRows(r.runtime)]).map((l) => `  ${l}`));
    }
  }
  if (r.traffic) {
    out.push(`Traffic:          ${trafficSummary(r.traffic)}`);
    if (r.traffic.backends.length > 0) out.push(...alignRows([[...TRAFFIC_COLUMNS], ...trafficRows(r.traffic)]).map((l) => `  ${l}`));
  }
  return out;
}

/** The summary of every target of the selection, and which rows a list left out and how to see them. */
function pageLines(p: StatusPage): string[] {
  const out: string[] = [];
  const r = p.runtime;
  if (r && (p.proxy !== null || p.lists.targets.shown < p.lists.targets.total)) {
    const health = Object.entries(r.health).sort(([a], [b]) => (a < b ? -1 : 1)).map(([h, n]) => `${n} ${h}`).join(', ');
    out.push(`Summary:          ${p.proxy !== null ? `proxy ${p.proxy}: ` : ''}${r.targets} target(s)${health ? ` (backends: ${health})` : ''}; ${r.draining} draining, ${r.failOpen} fail-open, ${r.circuitsNotClosed} circuit(s) not closed`);
  }
  const notes = pageNotes(p);
  if (notes.length > 0) out.push(`Shown:            ${notes.join('; ')} (--proxy NAME, --offset N, --limit N for others)`);
  return out;
}

function readLiveSummary(instance: string): LiveSummary {
  try {
    const live = readLive(instance);
    if (!live.exists) return { exists: false };
    const inv = live.inventory;
    return {
      exists: true, activeGen: live.ctl.activeGen, serial: live.ctl.serial,
      lastApply: inv ? { revision: inv.revision, appliedAt: inv.appliedAt, serial: inv.serial } : null,
      dataPlane: dataPlaneSummary(live),
    };
  } catch (err) {
    return { exists: true, error: err instanceof Error ? err.message : String(err) };
  }
}

/** "tc on veth-c1, xdp-native on eth0" (or the mode alone when a report predates per-interface paths). */
function describePaths(dp: { mode: string; interfaces: string[]; paths?: Record<string, string> }): string {
  if (dp.interfaces.length === 0) return dp.mode;
  if (dp.paths === undefined) return `${dp.mode} on ${dp.interfaces.join(', ')}`;
  return dp.interfaces.map((i) => `${dp.paths![i] ?? 'none'} on ${i}`).join(', ');
}
