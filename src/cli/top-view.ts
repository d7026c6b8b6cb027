// `lb top`'s view: two status reports of the running daemon a known time apart become, per proxy
// and backend, connections/s, active connections, bytes/s, health, circuit and drain state and
// latency p50/p99; then the most recent closes. Pure: the reports come in, rows and text go out.

import type { StatusReport } from '../report/types.js';
import { countText, latencyText } from '../observe/traffic-text.js';

export interface TopRow {
  proxy: string;
  backend: string;
  connPerSec: number;
  active: number;
  /** Bytes of connections that closed in the interval, both directions, per second. */
  bytesPerSec: number;
  health: string;
  circuit: string;
  draining: boolean;
  weight: number | null;
  p50: number | null;
  p99: number | null;
}

export interface TopView {
  instance: string;
  generatedAt: string;
  intervalSec: number;
  rows: TopRow[];
  recentCloses: NonNullable<StatusReport['traffic']>['recentCloses'];
  events: NonNullable<StatusReport['traffic']>['events'] | null;
}

export function topView(instance: string, prev: StatusReport | null, cur: StatusReport, intervalSec: number): TopView {
  const before = new Map((prev?.traffic?.backends ?? []).map((b) => [`${b.proxy}\0${b.backend}`, b]));
  const runtime = new Map<string, { health: string; circuit: string; draining: boolean; weight: number }>();
  for (const t of cur.runtime?.targets ?? []) {
    for (const b of t.backends) {
      runtime.set(`${t.proxy}\0${b.backend}`, { health: b.health, circuit: b.circuit, draining: t.draining, weight: t.effectiveWeight });
    }
  }
  const keys = new Set([...(cur.traffic?.backends ?? []).map((b) => `${b.proxy}\0${b.backend}`), ...runtime.keys()]);
  const byKey = new Map((cur.traffic?.backends ?? []).map((b) => [`${b.proxy}\0${b.backend}`, b]));
  const rows: TopRow[] = [...keys].sort().map((k) => {
    const [proxy, backend] = k.split('\0') as [string, string];
    const b = byKey.get(k);
    const p = before.get(k);
    const rt = runtime.get(k);
    const dt = intervalSec > 0 ? intervalSec : 1;
    return {
      proxy, backend,
      connPerSec: b && p ? Math.max(0, b.opened - p.opened) / dt : 0,
      active: b?.active ?? 0,
      bytesPerSec: b && p ? Math.max(0, b.bytesIn + b.bytesOut - p.bytesIn - p.bytesOut) / dt : 0,
      health: rt?.health ?? '-', circuit: rt?.circuit ?? '-', draining: rt?.draining ?? false, weight: rt?.weight ?? null,
      p50: b?.latency.p50 ?? null, p99: b?.latency.p99 ?? null,
    };
  });
  return {
    instance, generatedAt: cur.timestamps.generatedAt, intervalSec, rows,
    recentCloses: cur.traffic?.recentCloses ?? [], events: cur.traffic?.events ?? null,
  };
}

function align(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
}

/** The screen: a header, one line per proxy and backend, the recent closes (at most `closes`). */
export function topText(v: TopView, closes = 10): string {
  const out = [`lb top — instance ${v.instance} — ${v.generatedAt} (every ${v.intervalSec}s)`];
  if (v.events) out.push(`events: ${v.events.streaming ? 'streaming' : 'NOT streaming'}, ${v.events.consumed} read, ${v.events.droppedRing + v.events.droppedAccessLog} dropped`);
  out.push('');
  const head = ['PROXY', 'BACKEND', 'CONN/S', 'ACTIVE', 'BYTES/S', 'HEALTH', 'CIRCUIT', 'DRAIN', 'WEIGHT', 'P50', 'P99'];
  const rows = v.rows.map((r) => [
    r.proxy, r.backend, r.connPerSec.toFixed(1), String(r.active), countText(Math.round(r.bytesPerSec)), r.health, r.circuit,
    r.draining ? 'yes' : '-', r.weight === null ? '-' : String(r.weight), latencyText(r.p50), latencyText(r.p99),
  ]);
  out.push(...align([head, ...rows]));
  out.push('', 'Recent closes:');
  const recent = v.recentCloses.slice(-closes).reverse();
  if (recent.length === 0) out.push('  (none yet)');
  for (const c of recent) {
    out.push(`  ${c.time.slice(11, 23)}  ${c.proxy}  ${c.client} -> ${c.backend}  ${c.reason}  ${latencyText(c.durationSec)}  in ${countText(c.bytesIn)} out ${countText(c.bytesOut)}`);
  }
  return out.join('\n');
}
