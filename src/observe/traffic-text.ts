// Rows of the traffic section (per proxy and backend: connections and latency percentiles) for
// `lb status` (aligned text) and the status report (markdown table), from the report's `traffic`.

import type { TrafficStatus } from './observability.js';

export const TRAFFIC_COLUMNS = ['PROXY', 'BACKEND', 'ACTIVE', 'OPENED', 'CLOSED', 'BYTES IN', 'BYTES OUT', 'P50', 'P95', 'P99', 'MEAN'] as const;

/** Seconds as ms with 3 significant digits ("-" when unknown). */
export function latencyText(sec: number | null): string {
  if (sec === null) return '-';
  const ms = sec * 1000;
  return ms >= 100 ? `${ms.toFixed(0)}ms` : ms >= 10 ? `${ms.toFixed(1)}ms` : `${ms.toFixed(2)}ms`;
}

/** 1.2k, 3.4M, ... */
export function countText(n: number): string {
  if (n < 1000) return String(n);
  const units = ['k', 'M', 'G', 'T'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : 1)}${units[i]}`;
}

export function trafficRows(t: TrafficStatus): string[][] {
  return t.backends.map((b) => [
    b.proxy, b.backend, String(b.active), String(b.opened), String(b.closed), countText(b.bytesIn), countText(b.bytesOut),
    latencyText(b.latency.p50), latencyText(b.latency.p95), latencyText(b.latency.p99), latencyText(b.latency.mean),
  ]);
}

/** One line on the events and the access log. */
export function trafficSummary(t: TrafficStatus): string {
  const ev = t.events;
  const events = ev.streaming ? `${ev.consumed} records, ${ev.droppedRing} dropped by the ring` : `not streaming${ev.error ? ` (${ev.error})` : ''}`;
  const log = t.accessLog.enabled
    ? `${t.accessLog.path ?? 'stdout'} (${t.accessLog.format}): ${t.accessLog.written} lines, ${t.accessLog.dropped} dropped${t.accessLog.error ? `; ERROR ${t.accessLog.error}` : ''}`
    : 'off';
  const metrics = t.metrics.enabled ? `${t.metrics.listening ?? 'not listening'}${t.metrics.path}${t.metrics.error ? ` (ERROR ${t.metrics.error})` : ''}` : 'off';
  return `events ${events}; access log ${log}; metrics ${metrics}`;
}
