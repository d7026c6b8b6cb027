// A plan as Markdown for a pull-request comment: a summary line, a table per proxy, warnings,
// and the full text plan in a collapsed diff block (GitHub colours its + and - lines).

import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import type { Change, Plan } from './plan.js';
import { NO_CHANGES, describeChange, planSections, summaryLine, type PlanLine } from './render-text.js';

export interface MarkdownOptions {
  diagnostics?: readonly Diagnostic[];
  /** Heading text before the summary (e.g. "lb plan for node-1 at 3f2a9c1"). */
  title?: string;
}

const ACTION: Record<Change['kind'], string> = { create: '`+` create', update: '`~` update', delete: '`-` destroy' };

export function renderMarkdown(plan: Plan, options: MarkdownOptions = {}): string {
  const out: string[] = [];
  const title = options.title ?? 'lb plan';
  out.push(`### ${title}: ${plan.changes.length === 0 ? NO_CHANGES : summaryLine(plan).replace(/^Plan: /, '')}`);

  const sections = planSections(plan);
  for (const section of sections) {
    out.push('', `#### ${escapeText(section.title)}`, '', '| Action | Resource | Values |', '| --- | --- | --- |');
    for (const { change: c } of section.lines) {
      if (c) out.push(`| ${ACTION[c.kind]} | ${escapeCell(code(c.name))} | ${escapeCell(describeChange(c))} |`);
    }
  }

  const diagnostics = options.diagnostics ?? [];
  if (diagnostics.length > 0) {
    out.push('', '#### Diagnostics', '');
    for (const d of diagnostics) out.push(`- **${d.severity}**: ${code(formatDiagnostic(d))}`);
  }

  if (sections.length > 0) {
    out.push('', '<details><summary>Full plan</summary>', '', '```diff');
    for (const section of sections) {
      out.push(`# ${section.title}`);
      for (const line of section.lines) out.push(diffLine(line));
    }
    out.push(summaryLine(plan), '```', '', '</details>');
  }
  return `${out.join('\n')}\n`;
}

/** In a diff block the symbol must lead the line: `~` becomes `!` (shown as changed). */
function diffLine(line: PlanLine): string {
  const sign = line.sign === '~' ? '!' : line.sign;
  return `${sign} ${'    '.repeat(line.depth)}${line.text}`;
}

function code(s: string): string {
  return `\`${s.replace(/`/g, "'")}\``;
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function escapeText(s: string): string {
  return s.replace(/([\\`*_[\]<>|])/g, '\\$1');
}
