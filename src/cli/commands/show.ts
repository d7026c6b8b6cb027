// `lb show [maps|flows|targets]`: what the kernel holds right now. Read-only, takes no lock.
//   maps     the active generation decoded (listeners, groups, source routes, settings), the
//            attachments, lb_stats
//   flows    conntrack: client -> VIP -> backend, protocol, state, idle seconds (--limit bounds it)
//   targets  per backend: lb_tstats counters and the flows lb_flows holds for it

import { journalExists } from '../../apply/index.js';
import {
  DataPlane, IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_BACKEND, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_LF_PERSIST, LB_LF_SRC_ROUTES,
  decodeFlow, decodeFlowKey, encodeFlowKey, interfaceName, type Attachment, type Flow, type FlowKey, type Settings,
} from '../../dataplane/index.js';
import { rateLimitLines, rateLimitSummary } from '../../dataplane/rate-limits.js';
import { instanceExists, readLive, type LiveState } from '../../state/live.js';
import { runDir } from '../../state/run-dir.js';
import { listenerKey, listenerLabel, type L4Proto } from '../../core/state.js';
import { stdio, type CliIo } from '../output.js';

import type { ShowWhat } from '../command-choices.js';
export { SHOW_WHAT, type ShowWhat } from '../command-choices.js';
export const SHOW_FORMAT_VERSION = '1.0';

export interface ShowOptions {
  instance: string;
  what: ShowWhat;
  format: 'text' | 'json';
  limit: number;
}

export function runShow(options: ShowOptions, io: CliIo = stdio()): number {
  if (!instanceExists(options.instance)) {
    if (options.format === 'json') io.out(JSON.stringify({ format_version: SHOW_FORMAT_VERSION, instance: options.instance, exists: false }));
    else io.out(`Instance ${options.instance} has no data plane (nothing applied yet, or removed with \`lb down\`).`);
    return 0;
  }
  if (journalExists(runDir(options.instance))) {
    io.err(`lb: warning: an interrupted apply left a journal for instance ${options.instance}; \`lb plan\` or \`lb apply\` resolves it`);
  }
  const dp = DataPlane.open({ instance: options.instance });
  try {
    const live = readLive(options.instance, { dp, warn: (m) => io.err(`lb: warning: ${m}`) });
    if (options.what === 'maps') showMaps(dp, live, options, io);
    else if (options.what === 'flows') showFlows(dp, live, options, io);
    else showTargets(dp, live, options, io);
    return 0;
  } finally {
    dp.close();
  }
}

function showMaps(dp: DataPlane, live: LiveState, o: ShowOptions, io: CliIo): void {
  const stats = Object.fromEntries(Object.entries(dp.readStats()).map(([k, v]) => [k, Number(v)]));
  const rateLimits = rateLimitSummary(dp, live.generation.settings);
  const inv = live.inventory;
  if (o.format === 'json') {
    io.out(JSON.stringify({
      format_version: SHOW_FORMAT_VERSION, instance: o.instance, exists: true,
      active_gen: live.ctl.activeGen, serial: live.ctl.serial,
      last_apply: inv ? { revision: inv.revision, config_digest: inv.configDigest, applied_at: inv.appliedAt, serial: inv.serial } : null,
      attachments: live.attachments.map((a) => ({
        interface: a.ifname, ifindex: a.ifindex, path: a.path, path_reason: pathReason(live, a), xdp: a.xdp, tc_ingress: a.tcIngress, tc: a.tc, stale: a.stale,
      })),
      state: live.state, generation: live.generation, stats, rate_limits: rateLimits,
    }, null, 2));
    return;
  }
  const out: string[] = [];
  out.push(`Instance ${o.instance}: generation ${live.ctl.activeGen} active (serial ${live.ctl.serial})`);
  if (inv) out.push(`Last apply: ${inv.appliedAt}${inv.revision ? `, revision ${inv.revision}` : ''}${inv.configDigest ? `, config ${inv.configDigest.slice(0, 19)}` : ''}${inv.serial !== live.ctl.serial ? ' (the maps changed since)' : ''}`);
  out.push('', 'Interfaces:');
  if (live.attachments.length === 0) out.push('  (none)');
  for (const a of live.attachments) {
    const why = pathReason(live, a);
    out.push(`  ${a.ifname.padEnd(16)} ${describeAttachment(a)}${a.stale ? ', an older lb program (replaced on the next apply)' : ''}${why ? `\n  ${''.padEnd(16)} why: ${why}` : ''}`);
  }
  const s: Settings = live.generation.settings;
  out.push('', `Settings: tcp-idle-sec ${s.tcpIdleSec || '300 (default)'}, udp-idle-sec ${s.udpIdleSec || '60 (default)'}, tcp-fin-sec ${s.tcpFinSec || '10 (default)'}`);
  const groups = new Map(live.generation.groups.map((g) => [g.id, g.group]));
  const proxies = inv?.listeners ?? {};
  const groupLines = (id: number, depth: string): string[] => {
    const g = groups.get(id);
    if (!g || g.targets.length === 0) return [`${depth}(empty: new flows are dropped)`];
    const total = g.targets.reduce((n, t) => n + t.weight, 0);
    return g.targets.map((t) => `${depth}${`${t.addr}:${t.port}`.padEnd(21)} weight ${String(t.weight).padEnd(5)} ${total > 0 ? `${((100 * t.weight) / total).toFixed(1)}%`.padStart(6) : '     -'}  target_id ${t.targetId}`);
  };
  const listeners = [...live.generation.listeners].sort((a, b) => a.value.listenerId - b.value.listenerId);
  if (listeners.length === 0) out.push('', 'Listeners: (none)');
  for (const { key, value } of listeners) {
    const l = { iface: interfaceName(key.ifindex) ?? `if#${key.ifindex}`, vip: key.vip, port: key.port, proto: protoName(key.proto) };
    const flags = [value.flags & LB_LF_SRC_ROUTES ? 'source-routes' : '', value.flags & LB_LF_PERSIST ? 'session-persistence' : ''].filter(Boolean);
    out.push('', `Listener ${listenerLabel(l)}  proxy ${proxies[listenerKey(l)] ?? '(unknown)'}  (listener_id ${value.listenerId}${flags.length ? `, ${flags.join(', ')}` : ''})`);
    out.push(`  default group ${value.defaultGroup}:`, ...groupLines(value.defaultGroup, '    '));
    for (const r of live.generation.srcRoutes.filter((x) => x.listenerId === value.listenerId).sort((a, b) => a.addr.localeCompare(b.addr))) {
      out.push(`  source route ${r.addr}/${r.prefixLen} -> group ${r.group}${value.flags & LB_LF_SRC_ROUTES ? '' : ' (not consulted: the listener lacks the source-routes flag)'}:`, ...groupLines(r.group, '    '));
    }
  }
  out.push('', 'Counters (lb_stats, all CPUs):');
  const names = Object.keys(stats);
  for (let i = 0; i < names.length; i += 4) out.push(`  ${names.slice(i, i + 4).map((n) => `${n} ${stats[n]}`.padEnd(22)).join('')}`.trimEnd());
  out.push('', ...rateLimitLines(rateLimits));
  io.out(out.join('\n'));
}

interface FlowView {
  client: string;
  vip: string;
  backend: string;
  proto: string;
  state: string;
  idle_sec: number;
  target_id: number;
  expired: boolean;
}

/** Forward flow entries with their idle time (the fresher of both directions, as the data plane judges it). */
function readFlows(dp: DataPlane, settings: Settings): FlowView[] {
  const entries = dp.maps.lb_flows.lookupBatch();
  const byKey = new Map(entries.map(([k, v]) => [k.toString('hex'), v]));
  const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, like bpf_ktime_get_ns
  const out: FlowView[] = [];
  for (const [k, v] of entries) {
    const f: Flow = decodeFlow(v);
    if (f.dir !== LB_DIR_FORWARD) continue;
    const key: FlowKey = decodeFlowKey(k);
    const reverse = byKey.get(encodeFlowKey({ saddr: f.natAddr, daddr: key.saddr, sport: f.natPort, dport: key.sport, proto: key.proto }).toString('hex'));
    const last = reverse ? (decodeFlow(reverse).lastSeenNs > f.lastSeenNs ? decodeFlow(reverse).lastSeenNs : f.lastSeenNs) : f.lastSeenNs;
    const idle = now > last ? Number((now - last) / 1_000_000n) / 1000 : 0;
    const fin = f.state & (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND);
    const timeout = key.proto === IPPROTO_UDP ? settings.udpIdleSec || 60 : fin ? settings.tcpFinSec || 10 : settings.tcpIdleSec || 300;
    const state = key.proto !== IPPROTO_TCP ? '-' : fin === 0 ? 'established'
      : fin === (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND) ? 'fin-both' : fin & LB_CT_FIN_CLIENT ? 'fin-client' : 'fin-backend';
    out.push({
      client: `${key.saddr}:${key.sport}`, vip: `${key.daddr}:${key.dport}`, backend: `${f.natAddr}:${f.natPort}`,
      proto: protoName(key.proto), state, idle_sec: idle, target_id: f.targetId, expired: idle > timeout,
    });
  }
  return out.sort((a, b) => a.idle_sec - b.idle_sec || a.client.localeCompare(b.client));
}

function showFlows(dp: DataPlane, live: LiveState, o: ShowOptions, io: CliIo): void {
  const flows = readFlows(dp, live.generation.settings);
  const shown = flows.slice(0, o.limit);
  if (o.format === 'json') {
    io.out(JSON.stringify({ format_version: SHOW_FORMAT_VERSION, instance: o.instance, total: flows.length, shown: shown.length, flows: shown }, null, 2));
    return;
  }
  if (flows.length === 0) {
    io.out('No flows.');
    return;
  }
  const rows = shown.map((f) => [f.client, f.vip, f.backend, f.proto, f.state, `${f.idle_sec.toFixed(1)}${f.expired ? ' (expired)' : ''}`]);
  io.out(table(['CLIENT', 'VIP', 'BACKEND', 'PROTO', 'STATE', 'IDLE S'], rows));
  if (flows.length > shown.length) io.out(`... and ${flows.length - shown.length} more (${flows.length} flows; raise --limit to see them)`);
}

function showTargets(dp: DataPlane, live: LiveState, o: ShowOptions, io: CliIo): void {
  const flows = readFlows(dp, live.generation.settings);
  const active = new Map<number, number>();
  for (const f of flows) if (!f.expired) active.set(f.target_id, (active.get(f.target_id) ?? 0) + 1);
  const proxies = live.inventory?.listeners ?? {};
  const groupUse = new Map<number, string[]>();
  for (const { key, value } of live.generation.listeners) {
    const l = { iface: interfaceName(key.ifindex) ?? `if#${key.ifindex}`, vip: key.vip, port: key.port, proto: protoName(key.proto) };
    const who = `${proxies[listenerKey(l)] ?? '?'} ${listenerLabel(l)}`;
    const add = (group: number, what: string): void => { groupUse.set(group, [...(groupUse.get(group) ?? []), `${who} ${what}`]); };
    add(value.defaultGroup, 'default');
    for (const r of live.generation.srcRoutes.filter((x) => x.listenerId === value.listenerId)) add(r.group, `route ${r.addr}/${r.prefixLen}`);
  }
  const targets = new Map<number, { target: string; used_by: Array<{ where: string; weight: number }> }>();
  for (const { id, group } of live.generation.groups) {
    for (const t of group.targets) {
      const entry = targets.get(t.targetId) ?? { target: `${t.addr}:${t.port}`, used_by: [] };
      for (const where of groupUse.get(id) ?? []) entry.used_by.push({ where, weight: t.weight });
      targets.set(t.targetId, entry);
    }
  }
  // Backends no longer configured but still carrying flows.
  for (const f of flows) if (!targets.has(f.target_id) && !f.expired) targets.set(f.target_id, { target: f.backend, used_by: [] });
  const list = [...targets.entries()].sort((a, b) => a[0] - b[0]).map(([id, t]) => {
    const s = dp.readTargetStats(id);
    return {
      target: t.target, target_id: id, used_by: t.used_by, active_flows: active.get(id) ?? 0,
      new_flows: Number(s.newFlows), closed_flows: Number(s.closedFlows), packets: Number(s.packets), bytes: Number(s.bytes),
    };
  });
  if (o.format === 'json') {
    io.out(JSON.stringify({ format_version: SHOW_FORMAT_VERSION, instance: o.instance, targets: list }, null, 2));
    return;
  }
  if (list.length === 0) {
    io.out('No targets.');
    return;
  }
  io.out(table(['TARGET', 'ID', 'ACTIVE FLOWS', 'NEW FLOWS', 'CLOSED', 'PACKETS', 'BYTES', 'USED BY (weight)'],
    list.map((t) => [t.target, String(t.target_id), String(t.active_flows), String(t.new_flows), String(t.closed_flows), String(t.packets), String(t.bytes),
      t.used_by.length === 0 ? '(not configured)' : t.used_by.map((u) => `${u.where} (${u.weight})`).join('; ')])));
}

function protoName(proto: number): L4Proto {
  // lb writes only TCP and UDP listeners and flows; anything else would be someone else's bytes.
  return proto === IPPROTO_UDP ? 'udp' : proto === IPPROTO_TCP ? 'tcp' : (`proto ${proto}` as L4Proto);
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** "tc data path (TC ingress + egress)", "xdp data path (XDP native + TC egress)", or what is there. */
function describeAttachment(a: Attachment): string {
  if (a.path === 'tc') return 'tc data path (TC ingress + TC egress)';
  if (a.path === 'xdp') return `xdp data path (XDP ${a.xdp} + TC egress)`;
  const parts = [a.xdp ? `XDP ${a.xdp}` : '', a.tcIngress ? 'TC ingress' : '', a.tc ? 'TC egress' : ''].filter(Boolean);
  return `incomplete: ${parts.length > 0 ? parts.join(', ') : 'nothing of the current programs'}`;
}

/** Why the last apply chose this interface's path, when the inventory says and it is the path attached. */
function pathReason(live: LiveState, a: Attachment): string | null {
  const p = live.inventory?.paths?.[a.ifname];
  return p !== undefined && p.path === a.path ? p.reason : null;
}
