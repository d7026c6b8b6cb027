// The runtime status as table cells for people: `lb status` (text) and the status branch's
// status.md render the same rows. Pure.

import { RECOVERY_STEPS } from './health/state.js';
import type { RuntimeStatus, TargetStatus } from './status.js';

export const TARGET_COLUMNS = ['PROXY', 'GROUP', 'TARGET', 'WEIGHT', 'HEALTH', 'CIRCUIT', 'DRAIN'] as const;
export const DNS_COLUMNS = ['HOST', 'STATUS', 'ADDRESSES', 'LAST ERROR'] as const;

/** One row per target of every group: weight effective/configured, health, circuit, drain. */
export function targetRows(s: RuntimeStatus, now: number): string[][] {
  const modes = new Map(s.circuits.map((c) => [c.backend, c.mode]));
  const drains = new Map(s.drains.map((d) => [`${d.proxy}\u0000${d.targetId}`, d]));
  return s.targets.map((t) => {
    const d = drains.get(`${t.proxy}\u0000${t.targetId}`);
    const drain = !d ? '-'
      : d.status === 'draining' ? `draining (${d.activeFlows ?? '?'} active, ${Math.max(0, Math.ceil((d.deadline - now) / 1000))}s left)`
        : `${d.status}${d.activeFlows !== null && d.activeFlows > 0 ? ` (${d.activeFlows} active)` : ''}`;
    return [
      t.proxy, t.group, t.targetId,
      `${t.effectiveWeight}/${t.configuredWeight}${t.failOpen ? ' fail-open' : ''}`,
      perBackend(t, (b) => health(b)),
      perBackend(t, (b) => (b.circuit !== 'disabled' && modes.get(b.backend) !== undefined && modes.get(b.backend) !== 'auto' ? `${b.circuit} (forced)` : b.circuit)),
      drain,
    ];
  });
}

/** One row per DNS host: status, last known good addresses, the last error. */
export function dnsRows(s: RuntimeStatus): string[][] {
  return s.dns.map((d) => [d.host, d.status, d.addresses.join(', ') || '-', d.lastError ?? '-']);
}

function health(b: TargetStatus['backends'][number]): string {
  switch (b.health) {
    case 'recovering': return `recovering ${Math.round((b.recoveryStep * 100) / (RECOVERY_STEPS + 1))}%`;
    case 'unhealthy': return `unhealthy${b.lastError ? ` (${b.lastError})` : ''}`;
    default: return b.health;
  }
}

/** The value for an ip target; "addr value; addr value" for a host target; "unresolved" without addresses. */
function perBackend(t: TargetStatus, f: (b: TargetStatus['backends'][number]) => string): string {
  if (t.backends.length === 0) return 'unresolved';
  if (t.backends.length === 1) return f(t.backends[0]!);
  return t.backends.map((b) => `${b.backend.slice(0, b.backend.lastIndexOf(':'))} ${f(b)}`).join('; ');
}

/** Columns padded to their widest cell (the last one left ragged). */
export function alignRows(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
}
