// Text tables for the terminal and the JSON document written to bench/results/.

import type { BenchOptions, Ratio, SuiteResult } from './lib/suite.js';

export interface RunMeta {
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  host: { kernel: string; cpus: number; cpuModel: string; node: string; memoryGiB: number };
  /** 1-minute load average before and after: other work on the machine skews every figure. */
  loadAverage: { before: number; after: number };
  options: BenchOptions;
  suites: string[];
}

export interface SuiteFailure { suite: string; error: string }

function table(header: string[], rows: string[][], align: Array<'l' | 'r'>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function goalStatus(r: Ratio): string {
  if (r.goal === undefined) return '';
  if (!Number.isFinite(r.value)) return 'n/a';
  return (r.atMost ? r.value <= r.goal : r.value >= r.goal) ? 'met' : 'NOT met';
}

const unitOf = (r: Ratio): string => (r.unit === undefined ? 'x' : ` ${r.unit}`);
const goalText = (r: Ratio): string => (r.goal === undefined ? '' : `${r.atMost ? '<=' : '>='} ${r.goal}${unitOf(r)}`);

export function formatSuite(r: SuiteResult): string {
  const out: string[] = [`== ${r.title} ==`];
  for (const m of r.method) out.push(`  ${m}`);
  out.push('');
  out.push(table(
    ['measurement', 'value', 'unit', 'samples'],
    r.measurements.map((m) => [m.label, formatNumber(m.value), m.unit, m.samples && m.samples.length > 1 ? m.samples.map(formatNumber).join(' / ') : '']),
    ['l', 'r', 'l', 'l'],
  ));
  if (r.ratios.length > 0) {
    out.push('');
    out.push(table(
      ['ratio', 'value', 'goal', 'status'],
      r.ratios.map((x) => [x.note ? `${x.label} (${x.note})` : x.label, `${formatNumber(x.value)}${unitOf(x)}`, goalText(x), goalStatus(x)]),
      ['l', 'r', 'r', 'l'],
    ));
  }
  for (const n of r.notes) out.push(`  note: ${n}`);
  return out.join('\n');
}

export function formatReport(meta: RunMeta, results: SuiteResult[], failures: SuiteFailure[]): string {
  const out: string[] = [];
  out.push(`lb benchmark ${meta.startedAt}: ${meta.host.cpus} CPU (${meta.host.cpuModel}), kernel ${meta.host.kernel}, node ${meta.host.node}; ` +
    `load average ${meta.loadAverage.before.toFixed(2)} before, ${meta.loadAverage.after.toFixed(2)} after; ${meta.durationSeconds.toFixed(0)} s`);
  for (const r of results) out.push('', formatSuite(r));
  const goals = results.flatMap((r) => r.ratios.filter((x) => x.goal !== undefined));
  if (goals.length > 0) {
    out.push('', '== Goals ==');
    out.push(table(['goal', 'measured', 'status'], goals.map((g) => [`${g.label} ${goalText(g)}`, `${formatNumber(g.value)}${unitOf(g)}`, goalStatus(g)]), ['l', 'r', 'l']));
  }
  for (const f of failures) out.push('', `suite ${f.suite} FAILED: ${f.error}`);
  return out.join('\n');
}

export function resultsDocument(meta: RunMeta, results: SuiteResult[], failures: SuiteFailure[]): unknown {
  return { format_version: 1, ...meta, results, failures };
}
