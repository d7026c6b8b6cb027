// The Markdown rendering of a StatusReport (`<node>/status.md`), for people browsing the status
// branch. Everything that came from outside (proxy names, messages, file names, URLs, revisions)
// is config-derived and so written by whoever can push: it is escaped (esc) or put in a code span
// (code), so it cannot render as a link, an image, emphasis, math, HTML or a table cell of its own.

import { DNS_COLUMNS, TARGET_COLUMNS, dnsRows, targetRows } from '../runtime/status-text.js';
import { TRAFFIC_COLUMNS, trafficRows, trafficSummary } from '../observe/traffic-text.js';
import type { StatusReport } from './types.js';

export function renderStatusMarkdown(r: StatusReport): string {
  const out: string[] = [];
  const ready = r.conditions.find((c) => c.type === 'Ready');
  const badge = ready?.status === 'True' ? 'Ready' : r.conditions.some((c) => c.type === 'Stalled' && c.status === 'True') ? 'Stalled' : 'Not ready';
  out.push(`# lb status: ${esc(r.node)}`, '');
  out.push(`**${badge}**: ${esc(r.result)}${ready ? ` (${esc(ready.reason)})` : ''}`, '');
  out.push('| | |', '|---|---|');
  out.push(`| Instance | ${code(r.instance)} |`);
  out.push(`| Source | ${code(r.source.url)} ref ${code(r.source.ref)}${r.source.path ? ` path ${code(r.source.path)}` : ''} |`);
  out.push(`| Desired revision | ${rev(r.desiredRevision)} |`);
  out.push(`| Last applied | ${rev(r.lastAppliedRevision)}${when(r.timestamps.lastAppliedAt)} |`);
  out.push(`| Last attempted | ${rev(r.lastAttemptedRevision)}${when(r.timestamps.lastAttemptedAt)} |`);
  if (r.version) out.push(`| lb version | ${code(r.version)} |`);
  out.push('');

  out.push('## Conditions', '');
  if (r.conditions.length === 0) out.push('None.');
  else {
    out.push('| Type | Status | Reason | Message | Since |', '|---|---|---|---|---|');
    for (const c of r.conditions) out.push(`| ${esc(c.type)} | ${esc(c.status)} | ${esc(c.reason)} | ${esc(c.message)} | ${esc(c.lastTransitionTime)} |`);
  }
  out.push('');

  out.push('## Plan', '');
  out.push(r.plan ? `Plan: ${r.plan.add} to add, ${r.plan.change} to change, ${r.plan.destroy} to destroy.` : 'No plan was made.');
  out.push('');

  if (r.errors.length > 0) {
    out.push('## Errors', '');
    out.push('| Where | Pointer | Message | Code |', '|---|---|---|---|');
    for (const e of r.errors) {
      const where = e.file === undefined ? '' : e.line !== undefined ? `${e.file}:${e.line}:${e.column ?? 1}` : e.file;
      out.push(`| ${where ? code(where) : ''} | ${e.pointer ? code(e.pointer) : ''} | ${esc(e.message)} | ${code(e.code)} |`);
    }
    out.push('');
  }

  out.push('## Data plane', '');
  if (r.dataPlane) {
    out.push(`- Data paths: ${esc(r.dataPlane.mode)}`);
    out.push(`- Interfaces: ${r.dataPlane.interfaces.length ? r.dataPlane.interfaces.map(code).join(', ') : 'none'}`);
    out.push(`- Listeners: ${r.dataPlane.listeners}`);
    out.push(`- Targets: ${r.dataPlane.targets}`);
  } else out.push('Not loaded.');
  if (r.drift) out.push(`- Drift: ${r.drift.entries} entr${r.drift.entries === 1 ? 'y' : 'ies'} at ${esc(r.drift.detectedAt)}${r.drift.healed ? ', healed' : ''}`);
  out.push('');
  if (r.runtime) {
    const now = Date.parse(r.timestamps.generatedAt);
    out.push('## Targets', '', `Algorithm: ${esc(r.runtime.algorithm)}.`, '');
    out.push(...table(TARGET_COLUMNS, targetRows(r.runtime, Number.isNaN(now) ? Date.now() : now)), '');
    if (r.runtime.dns.length > 0) out.push('### DNS', '', ...table(DNS_COLUMNS, dnsRows(r.runtime)), '');
  }
  if (r.traffic) {
    out.push('## Traffic', '', esc(trafficSummary(r.traffic)), '');
    if (r.traffic.backends.length > 0) out.push(...table(TRAFFIC_COLUMNS, trafficRows(r.traffic)), '');
  }
  out.push(`_Generated ${esc(r.timestamps.generatedAt)} by lb on ${esc(r.node)}._`, '');
  return out.join('\n');
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const title = (h: string): string => h.charAt(0) + h.slice(1).toLowerCase();
  return [`| ${head.map(title).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)];
}

/**
 * Plain text: backslash before every character that opens inline syntax (links and images need
 * `[`, emphasis `*` `_` `~`, code `` ` ``, GitHub math `$`, table cells `|`), entities for HTML
 * (`<` also opens autolinks), and line breaks as `<br>` so no block syntax can start. Bare URLs
 * may still be autolinked by GitHub, showing the URL itself as the text.
 */
export function esc(s: string): string {
  return s
    .replace(/[\\`*_[\]~|$]/g, '\\$&')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\r\n|\r|\n/g, '<br>');
}

/**
 * A code span that holds `s` literally: fenced by one backtick more than the longest run inside,
 * padded when `s` starts or ends with a backtick; `|` escaped (GFM tables split cells on it even
 * inside code), line breaks as spaces.
 */
export function code(s: string): string {
  const t = s.replace(/\r\n|\r|\n/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...[...t.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = t.startsWith('`') || t.endsWith('`') || (t.startsWith(' ') && t.endsWith(' ') && t.trim() !== '') ? ' ' : '';
  return `${fence}${pad}${t}${pad}${fence}`;
}

function rev(r: string | null): string {
  if (r === null) return 'none';
  return code(/^[0-9a-f]{40}$/.test(r) ? r.slice(0, 12) : r.startsWith('sha256:') ? r.slice(0, 19) : r);
}

function when(t: string | null): string {
  return t ? ` at ${esc(t)}` : '';
}
