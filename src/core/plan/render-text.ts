// A plan as text, in Terraform's style: `+` create, `~` update (`old -> new`), `-` destroy,
// grouped by proxy, then listener, route and target; unchanged parents appear as context lines
// without a symbol. Pure: colour is an option (the CLI turns it on for a TTY), and the raw map
// entries of `verbose` are an input, not something read here.

import { createHash } from 'node:crypto';
import { formatDiagnostic, type Diagnostic } from '../config/diagnostics.js';
import type { EncodedGeneration } from '../generation.js';
import type { AttributeValue, Change, ChangeKind, Plan } from './plan.js';

export const NO_CHANGES = 'No changes. The data plane matches the configuration.';

export interface RawEntries {
  /** The live generation's entries (absent: nothing live). */
  before?: EncodedGeneration | null;
  /** The entries the apply writes. Encode both with the same generation number so unchanged entries compare equal. */
  after: EncodedGeneration;
}

export interface TextOptions {
  /** ANSI colours (the CLI enables them on a TTY). */
  color?: boolean;
  /** Warnings and errors to print after the plan (compile and config warnings). */
  diagnostics?: readonly Diagnostic[];
  /** With entries: append the raw map entries that differ (`--verbose`). */
  raw?: RawEntries;
}

/** One line of the plan body: the symbol (' ' for a context line), nesting depth, text. */
export interface PlanLine {
  sign: '+' | '~' | '-' | ' ';
  depth: number;
  text: string;
  /** The change the line shows; absent on a context line. */
  change?: Change;
}

/** A block of the body: "Interfaces", "Settings", or `Proxy "web"`. */
export interface PlanSection {
  title: string;
  /** The proxy a section belongs to (undefined for interfaces and settings; null: unknown owner). */
  proxy?: string | null;
  lines: PlanLine[];
}

const SIGN: Record<ChangeKind, PlanLine['sign']> = { create: '+', update: '~', delete: '-' };

const ATTRIBUTE_NAMES: Record<string, string> = {
  tcp_idle_sec: 'tcp-idle-sec', udp_idle_sec: 'udp-idle-sec', tcp_fin_sec: 'tcp-fin-sec',
  rate_limit_per_source: 'rate-limits.per-source', rate_limit_per_backend: 'rate-limits.per-backend',
  persist: 'session-persistence', proxy: 'proxy', target_order: 'target order', weight: 'weight',
};

/** " (local)" for a target on 127.0.0.0/8: a service on this host, delivered through route_localnet. */
function localNote(c: Change): string {
  return c.address.target?.startsWith('127.') ? ' (local)' : '';
}

/** What happens to an interface, with the data path and why it was chosen. */
function describeInterface(c: Change): string {
  const path = (v: Change['after']): string => String(v?.path ?? 'auto');
  const why = c.after?.reason !== undefined ? `: ${String(c.after.reason)}` : '';
  const localnet = c.after?.route_localnet === true && c.before?.route_localnet !== true
    ? '; set route_localnet=1: loopback targets (127.0.0.0/8) are delivered to this host through it' : '';
  if (c.kind === 'delete') return `detach the ${path(c.before)} data path`;
  if (c.kind === 'update') {
    const parts = [
      ...(c.changed.includes('ifindex') ? [`ifindex ${String(c.before?.ifindex)} -> ${String(c.after?.ifindex)}: created again, lb's programs and listeners move to it`] : []),
      ...(c.changed.includes('path') ? [`data path ${path(c.before)} -> ${path(c.after)}${why}`] : []),
      ...(localnet !== '' ? [localnet.slice(2)] : []),
    ];
    return parts.join('; ');
  }
  const attach = path(c.after) === 'auto' ? 'attach the data path auto chooses on the host' : `attach the ${path(c.after)} data path${why}`;
  return `${attach}${localnet}`;
}

/** The plan's changes arranged for reading: interfaces, settings, then one section per proxy. */
export function planSections(plan: Plan): PlanSection[] {
  const sections: PlanSection[] = [];
  const interfaces = plan.changes.filter((c) => c.type === 'interface');
  if (interfaces.length > 0) {
    sections.push({
      title: 'Interfaces',
      lines: interfaces.map((c) => ({
        sign: SIGN[c.kind], depth: 0, change: c,
        text: `interface ${c.address.interface!}  (${describeInterface(c)})`,
      })),
    });
  }
  const settings = plan.changes.filter((c) => c.type === 'settings');
  if (settings.length > 0) {
    sections.push({ title: 'Settings', lines: settings.map((c) => ({ sign: SIGN[c.kind], depth: 0, change: c, text: `settings  ${describeChange(c)}` })) });
  }

  const byProxy = new Map<string | null, Change[]>();
  for (const c of plan.changes) {
    if (c.type === 'interface' || c.type === 'settings') continue;
    const proxy = c.address.proxy ?? null;
    const list = byProxy.get(proxy);
    if (list) list.push(c);
    else byProxy.set(proxy, [c]);
  }
  const proxies = [...byProxy.keys()].sort((a, b) => (a === null ? 1 : b === null ? -1 : a < b ? -1 : a > b ? 1 : 0));
  for (const proxy of proxies) {
    const changes = byProxy.get(proxy)!;
    sections.push({ title: proxy === null ? 'Listeners of no known proxy' : `Proxy "${proxy}"`, proxy, lines: proxyLines(changes) });
  }
  return sections;
}

function proxyLines(changes: Change[]): PlanLine[] {
  const lines: PlanLine[] = [];
  const byListener = new Map<string, Change[]>();
  for (const c of changes) {
    const list = byListener.get(c.address.listenerKey!);
    if (list) list.push(c);
    else byListener.set(c.address.listenerKey!, [c]);
  }
  for (const key of [...byListener.keys()].sort()) {
    const mine = byListener.get(key)!;
    const own = mine.find((c) => c.type === 'listener');
    const label = mine[0]!.address.listener!;
    lines.push(own
      ? { sign: SIGN[own.kind], depth: 0, change: own, text: `listener ${label}  ${describeChange(own)}`.trimEnd() }
      : { sign: ' ', depth: 0, text: `listener ${label}` });
    for (const c of mine.filter((x) => x.type === 'target' && x.address.route === undefined)) {
      lines.push({ sign: SIGN[c.kind], depth: 1, change: c, text: `default-target ${c.address.target!}${localNote(c)}  ${describeChange(c)}` });
    }
    const routes = [...new Set(mine.filter((c) => c.address.route !== undefined).map((c) => c.address.route!))].sort();
    for (const prefix of routes) {
      const inRoute = mine.filter((c) => c.address.route === prefix);
      const route = inRoute.find((c) => c.type === 'source-route');
      lines.push(route
        ? { sign: SIGN[route.kind], depth: 1, change: route, text: `source-route ${prefix}  ${describeChange(route)}`.trimEnd() }
        : { sign: ' ', depth: 1, text: `source-route ${prefix}` });
      for (const c of inRoute.filter((x) => x.type === 'target')) {
        lines.push({ sign: SIGN[c.kind], depth: 2, change: c, text: `target ${c.address.target!}${localNote(c)}  ${describeChange(c)}` });
      }
    }
  }
  return lines;
}

/** The attributes a change shows: `name: value` for a create or destroy, `name: old -> new` for an update. */
export function describeChange(c: Change): string {
  const hidden = new Set(HIDDEN[c.type]);
  const parts = c.changed.filter((k) => !hidden.has(k) || c.kind === 'update').map((k) => {
    const label = ATTRIBUTE_NAMES[k] ?? k;
    if (c.kind === 'update') return `${label}: ${show(c.before![k])} -> ${show(c.after![k])}`;
    return `${label}: ${show((c.after ?? c.before)![k])}`;
  });
  return parts.join(', ');
}

/** Attributes a create or destroy line does not repeat (already in the line's name, or implied by its children). */
const HIDDEN: Record<Change['type'], string[]> = {
  interface: ['name'],
  settings: [],
  listener: ['iface', 'vip', 'port', 'proto', 'proxy', 'target_order'],
  'source-route': ['prefix', 'target_order'],
  target: ['addr', 'port'],
};

function show(v: AttributeValue | undefined): string {
  if (Array.isArray(v)) return v.length === 0 ? '(none)' : v.join(', ');
  if (v === null || v === undefined) return '(unknown)';
  return String(v);
}

// ---- text ----

const ANSI = { reset: '\u001b[0m', bold: '\u001b[1m', green: '\u001b[32m', yellow: '\u001b[33m', red: '\u001b[31m' };

export function renderText(plan: Plan, options: TextOptions = {}): string {
  const paint = (code: string, s: string): string => (options.color ? `${code}${s}${ANSI.reset}` : s);
  const signColor = (sign: PlanLine['sign']): string => (sign === '+' ? ANSI.green : sign === '~' ? ANSI.yellow : ANSI.red);
  const out: string[] = [];

  if (plan.changes.length === 0) {
    out.push(paint(ANSI.bold, NO_CHANGES));
  } else {
    const used = new Set(plan.changes.map((c) => c.kind));
    out.push('Resource actions are indicated with the following symbols:');
    if (used.has('create')) out.push(`  ${paint(ANSI.green, '+')} create`);
    if (used.has('update')) out.push(`  ${paint(ANSI.yellow, '~')} update in place`);
    if (used.has('delete')) out.push(`  ${paint(ANSI.red, '-')} destroy`);
    out.push('', 'lb will perform the following actions:');
    for (const section of planSections(plan)) {
      out.push('', paint(ANSI.bold, `  # ${section.title}`));
      for (const line of section.lines) {
        const body = `${'    '.repeat(line.depth)}${line.text}`;
        out.push(line.sign === ' ' ? `    ${body}` : `  ${paint(signColor(line.sign), `${line.sign} ${body}`)}`);
      }
    }
    out.push('', paint(ANSI.bold, summaryLine(plan)));
  }

  if (options.raw) out.push('', ...rawLines(options.raw, paint, ANSI));
  const diagnostics = options.diagnostics ?? [];
  if (diagnostics.length > 0) {
    out.push('');
    for (const d of diagnostics) out.push(paint(d.severity === 'error' ? ANSI.red : ANSI.yellow, formatDiagnostic(d)));
  }
  return `${out.join('\n')}\n`;
}

export function summaryLine(plan: Plan): string {
  const { add, change, destroy } = plan.summary;
  return `Plan: ${add} to add, ${change} to change, ${destroy} to destroy.`;
}

// ---- raw map entries (--verbose) ----

const MAPS: Array<[keyof EncodedGeneration, string]> = [
  ['settings', 'lb_settings'], ['listeners', 'lb_listeners'], ['srcRoutes', 'lb_src_routes'], ['groups', 'lb_groups'],
  ['maglev', 'lb_maglev'],
];

function rawLines(raw: RawEntries, paint: (code: string, s: string) => string, ansi: typeof ANSI): string[] {
  const out = ['Map entries written by this plan (hex, key => value; [N×00] is N zero bytes):'];
  for (const [field, map] of MAPS) {
    const before = entriesOf(raw.before?.[field], field);
    const after = entriesOf(raw.after[field], field);
    const diff: Array<{ sign: '+' | '-'; key: string; value: string }> = [];
    for (const [key, value] of after) if (before.get(key) !== value) diff.push({ sign: '+', key, value });
    for (const [key, value] of before) if (after.get(key) !== value) diff.push({ sign: '-', key, value });
    // By key, the removed entry of a key before its replacement.
    diff.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.sign === '-' ? -1 : 1));
    out.push(`  ${map}:${diff.length === 0 ? ' unchanged' : ''}`);
    for (const d of diff) out.push(paint(d.sign === '+' ? ansi.green : ansi.red, `    ${d.sign} ${d.key} => ${d.value}`));
  }
  return out;
}

function entriesOf(value: EncodedGeneration[keyof EncodedGeneration] | undefined, field: keyof EncodedGeneration): Map<string, string> {
  const map = new Map<string, string>();
  if (value === undefined) return map;
  // lb_settings is an array slot per generation: its key is the generation itself.
  const entries: Array<[Buffer, Buffer]> = field === 'settings' ? [[Buffer.alloc(0), value as Buffer]] : (value as Array<[Buffer, Buffer]>);
  for (const [k, v] of entries) map.set(k.length === 0 ? '(this generation)' : hex(k), field === 'maglev' ? maglevSummary(v) : hex(v));
  return new Map([...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Hex, with every run of 32 or more zero bytes shortened to `[N×00]` (a group is 1032 bytes, mostly zero). */
/** A Maglev table is 16381 bytes: shown as its slot count per target index and a digest. */
function maglevSummary(table: Buffer): string {
  const counts = new Map<number, number>();
  for (const i of table) counts.set(i, (counts.get(i) ?? 0) + 1);
  const shares = [...counts.entries()].sort(([a], [b]) => a - b).map(([i, n]) => `${i}×${n}`).join(' ');
  return `Maglev table, slots per target index: ${shares}; sha256 ${createHash('sha256').update(table).digest('hex').slice(0, 16)}`;
}

function hex(b: Buffer): string {
  let out = '';
  let i = 0;
  while (i < b.length) {
    let j = i;
    while (j < b.length && b[j] === 0) j++;
    if (j - i >= 32) {
      out += `[${j - i}×00]`;
      i = j;
    } else {
      out += b.subarray(i, i + 1).toString('hex');
      i++;
    }
  }
  return out;
}
