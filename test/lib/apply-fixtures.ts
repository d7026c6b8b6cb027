// Helpers for the apply tests: generations built directly (listeners on lo, ifindex 1, so no
// interface needs attaching), a byte-exact snapshot of every config map in both generations, and
// "where does a SYN to this listener go" through BPF_PROG_TEST_RUN.
import { createHash } from 'node:crypto';
import { maglevTable } from '../../src/core/compile/encode.js';
import {
  IPPROTO_TCP, LB_LF_PERSIST, LB_LF_SRC_ROUTES, type DataPlane, type GenerationConfig, type GroupTarget,
} from '../../src/dataplane/index.js';
import { buildFrame, parseFrame } from './packet.js';

export const LO = 1;
const XDP_DROP = 1;

export interface ListenerSpec {
  vip: string;
  port: number;
  /** Default group targets, "addr:port" or "addr:port@weight". */
  targets: string[];
  routes?: Array<{ prefix: string; targets: string[] }>;
  /** Session persistence: LB_LF_PERSIST, and a Maglev table for each of its groups that has weight. */
  persist?: boolean;
}

/** Target ids: one per addr:port, stable across the generations a test builds. */
export class TargetIds {
  private readonly ids = new Map<string, number>();
  id(key: string): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(key, id);
    }
    return id;
  }
}

function target(spec: string, ids: TargetIds): GroupTarget {
  const [hostPort, w] = spec.split('@');
  const [addr, port] = hostPort!.split(':');
  return { addr: addr!, port: Number(port), weight: w === undefined ? 1 : Number(w), targetId: ids.id(hostPort!) };
}

/**
 * A generation of listeners on lo in the order given: listener i gets listener_id i, group ids
 * are handed out in order starting at `groupBase` (so two builds can put the same content in
 * different slots).
 */
export function buildGeneration(listeners: ListenerSpec[], ids: TargetIds,
  opts: { tcpIdleSec?: number; groupBase?: number } = {}): GenerationConfig {
  const gen: GenerationConfig = {
    settings: { tcpIdleSec: opts.tcpIdleSec ?? 300, udpIdleSec: 60, tcpFinSec: 10, flags: 0 },
    listeners: [], groups: [], srcRoutes: [], maglev: [],
  };
  const addGroup = (id: number, targets: GroupTarget[], persist: boolean): void => {
    gen.groups.push({ id, group: { targets } });
    const table = persist ? maglevTable(targets) : null;
    if (table !== null) gen.maglev!.push({ group: id, table });
  };
  let group = opts.groupBase ?? 0;
  listeners.forEach((l, listenerId) => {
    const defaultGroup = group++;
    addGroup(defaultGroup, l.targets.map((t) => target(t, ids)), l.persist === true);
    for (const r of l.routes ?? []) {
      const [addr, len] = r.prefix.split('/');
      const g = group++;
      addGroup(g, r.targets.map((t) => target(t, ids)), l.persist === true);
      gen.srcRoutes.push({ listenerId, addr: addr!, prefixLen: Number(len), group: g });
    }
    gen.listeners.push({
      key: { ifindex: LO, vip: l.vip, port: l.port, proto: IPPROTO_TCP },
      value: { listenerId, defaultGroup, flags: ((l.routes?.length ?? 0) > 0 ? LB_LF_SRC_ROUTES : 0) | (l.persist === true ? LB_LF_PERSIST : 0) },
    });
  });
  return gen;
}

/** sha256 of every entry of a map, in key order (array walks are in index order already). */
function mapHash(entries: Array<[Buffer, Buffer]>, sort: boolean): string {
  const list = sort ? [...entries].sort((a, b) => Buffer.compare(a[0], b[0])) : entries;
  const h = createHash('sha256');
  for (const [k, v] of list) h.update(k).update(v);
  return `${list.length}:${h.digest('hex')}`;
}

/** A hash per config map of every entry of both generations, lb_ctl included: byte-exact identity. */
export function snapshotConfigMaps(dp: DataPlane): Record<string, string> {
  return {
    lb_ctl: dp.maps.lb_ctl.lookupBatch().map(([, v]) => v.toString('hex')).join(),
    lb_settings: mapHash(dp.maps.lb_settings.lookupBatch(), false),
    lb_listeners: mapHash([...dp.maps.lb_listeners.entries()], true),
    lb_src_routes: mapHash([...dp.maps.lb_src_routes.entries()], true),
    lb_groups: mapHash(dp.maps.lb_groups.lookupBatch(), false),
    lb_maglev: mapHash(dp.maps.lb_maglev.lookupBatch(64), true),
  };
}

let nextPort = 20000;

/**
 * Sends a fresh SYN (a new source port each call unless given, so conntrack never answers) from `client` to
 * vip:port through the XDP program; returns "addr:port" of the backend it was DNATed to, "drop", or
 * "pass" (no listener: untouched).
 */
export function synAnswer(dp: DataPlane, vip: string, port: number, client = '192.0.2.7', sport?: number): string {
  nextPort = nextPort >= 65000 ? 20000 : nextPort + 1;
  const frame = buildFrame({ ipv4: { src: client, dst: vip }, l4: { kind: 'tcp', sport: sport ?? nextPort, dport: port, flags: { syn: true } } });
  const r = dp.testRun('xdp', frame, { ifindex: LO });
  if (r.retval === XDP_DROP) return 'drop';
  const p = parseFrame(r.data);
  if (p.ipv4 === undefined || p.tcp === undefined) return `unparsable (retval ${r.retval})`;
  if (p.ipv4.dst === vip && p.tcp.dport === port) return 'pass';
  return `${p.ipv4.dst}:${p.tcp.dport}`;
}
