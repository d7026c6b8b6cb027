// The plan between two revisions (`lb plan --repo`) in text, Markdown or JSON: the plan as the
// other renderers show it, which revisions it compares, notes on the base (a node that drifted or
// is stalled), and the runtime inputs (DNS targets) that only a node decides.

import { changesAnything, type ConfigsPlan, type DnsInput } from './between-configs.js';
import { planDocument, type PlanDocument } from './render-json.js';
import { renderMarkdown } from './render-markdown.js';
import { NO_CHANGES, renderText } from './render-text.js';

export interface RevisionSide {
  /** The ref asked for (a branch, tag, sha, or "node X's applied revision"). */
  ref: string;
  /** The commit it resolved to; null when there is none (a node that never applied). */
  revision: string | null;
}

export interface BetweenHeader {
  base: RevisionSide;
  head: RevisionSide;
  /** The config sub-path ('' = the repository root). */
  path: string;
  /** What the reader must know about the base (node drifted, stalled; config path new at head). */
  notes: string[];
}

export type BetweenFormat = 'text' | 'json' | 'markdown';

/** The JSON document: plan-format's document with what this plan compared and its runtime inputs. */
export interface BetweenDocument extends PlanDocument {
  base: RevisionSide;
  head: RevisionSide;
  path: string;
  notes: string[];
  runtime_inputs: Array<{ kind: 'dns'; proxy: string; group: string; target: string; change: DnsInput['change']; weight_before: number | null; weight_after: number | null }>;
}

const short = (s: RevisionSide): string => (s.revision === null ? `${s.ref} (none)` : s.revision === s.ref ? s.revision.slice(0, 12) : `${s.ref} (${s.revision.slice(0, 12)})`);

/** Offline there is no data plane: say what was compared instead. */
const NO_CHANGES_BETWEEN = 'No changes. The head compiles to the same data plane as the base.';

const DNS_NOTE = 'DNS targets: their backends are the addresses each node resolves at run time, so they are not in the plan above.';

const DNS_SIGN: Record<DnsInput['change'], string> = { add: '+', remove: '-', update: '~', none: ' ' };

function dnsLine(d: DnsInput): string {
  const group = d.group === 'default' ? 'default target' : `source route ${d.group}`;
  const weight = d.change === 'update' ? `weight ${d.weightBefore} -> ${d.weightAfter}` : `weight ${d.weightAfter ?? d.weightBefore}`;
  return `proxy "${d.proxy}", ${group}: ${d.target} (${weight})`;
}

export function renderBetween(p: ConfigsPlan, h: BetweenHeader, format: BetweenFormat, opts: { color?: boolean } = {}): string {
  if (format === 'json') return `${JSON.stringify(betweenDocument(p, h), null, 2)}\n`;
  const where = h.path === '' ? '' : ` (path ${h.path})`;
  if (format === 'markdown') {
    const out = [renderMarkdown(p.plan, { diagnostics: p.diagnostics, title: `lb plan ${short(h.base)} → ${short(h.head)}${where}` }).trimEnd().replace(NO_CHANGES, NO_CHANGES_BETWEEN)];
    if (h.notes.length > 0) out.push('', ...h.notes.map((n) => `> **Note:** ${n}`));
    if (p.dnsInputs.length > 0) {
      out.push('', '#### Runtime inputs', '', DNS_NOTE, '', '| Change | DNS target |', '| --- | --- |');
      for (const d of p.dnsInputs) out.push(`| ${d.change === 'none' ? 'unchanged' : `\`${DNS_SIGN[d.change]}\` ${d.change}`} | ${dnsLine(d).replace(/\|/g, '\\|')} |`);
    }
    return `${out.join('\n')}\n`;
  }
  const out = [`Plan of ${short(h.head)} against ${short(h.base)}${where}:`];
  for (const n of h.notes) out.push(`Note: ${n}`);
  out.push('', renderText(p.plan, { color: opts.color ?? false, diagnostics: p.diagnostics }).trimEnd().replace(NO_CHANGES, NO_CHANGES_BETWEEN));
  if (p.dnsInputs.length > 0) {
    out.push('', 'Runtime inputs:', `  ${DNS_NOTE}`);
    for (const d of p.dnsInputs) out.push(`  ${DNS_SIGN[d.change]} ${dnsLine(d)}`);
  }
  return `${out.join('\n')}\n`;
}

export function betweenDocument(p: ConfigsPlan, h: BetweenHeader): BetweenDocument {
  return {
    ...planDocument(p.plan, { diagnostics: p.diagnostics }),
    has_changes: changesAnything(p),
    base: h.base,
    head: h.head,
    path: h.path,
    notes: h.notes,
    runtime_inputs: p.dnsInputs.map((d) => ({
      kind: 'dns', proxy: d.proxy, group: d.group, target: d.target, change: d.change, weight_before: d.weightBefore, weight_after: d.weightAfter,
    })),
  };
}
