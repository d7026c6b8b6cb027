// DataPlane: the programmatic handle on one lb instance's kernel state — its pinned maps, programs
// and tracepoint links under /sys/fs/bpf/lb/<instance>, and their attachments to interfaces.
//
// Lifecycle: open() loads build/bpf/lb_xdp.bpf.o, lb_tc.bpf.o and lb_apply.bpf.o once and pins everything (loader.ts);
// later opens adopt the pins, so a restarted daemon keeps its flows and attachments. close() only
// closes this process's fds; DataPlane.down() is what removes the instance from the kernel.
//
// Each interface runs one of two ingress paths (docs/dataplane.md): 'xdp' (lb_xdp_ingress) or 'tc'
// (lb_tc_ingress on the clsact ingress hook); both have lb_tc_egress for the replies. attach.ts
// does the netlink work; which path an interface should run is decided outside (src/datapath).
//
// Interfaces are resolved in the calling thread's network namespace (see interfaces.ts).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LbError } from '../core/errors.js';
import { packageRoot } from '../package-root.js';
import {
  LAYOUTS, LB_DST_SEEN_BITS, LB_MAP_CTL, LB_MAP_FLOWS, LB_MAP_GROUPS, LB_MAP_HALFOPEN, LB_MAP_IFACES, LB_MAP_LISTENERS, LB_MAP_MAGLEV, LB_MAP_SETTINGS, LB_MAP_SRC_ROUTES,
  LB_MAP_STATS, LB_MAP_TSTATS, LB_MAP_TX_PORTS, LB_MAX_TARGET_IDS, LB_MAP_DST_SEEN, LB_MAP_NEXTHOPS, LB_MAP_ROUTE_STAGE, LB_MAP_FRAGS, LB_MAP_RL_BACKEND, LB_MAP_RL_SRC, LB_MAP_RL_STATS, LB_MAP_EVENTS, LB_MAP_EV_STATS, LB_MAP_TP_SEEN, LB_PATH_TC, LB_PATH_XDP, LB_STAT_MAX, STAT_NAMES, decodeTargetStats, sumTargetStats,
  encodeU32, ipv4ToU32, type TargetStats,
} from '../core/abi.js';
import {
  Ownership, attachTc, attachXdp, detachFrom, detachTc, detachXdp, refuseForeignXdp, tcQuery, xdpQuery,
  type DetachResult, type ProgramHandle, type XdpMode, type XdpModeRequest,
} from './attach.js';
import { BpfMap } from './bpf-map.js';
import { dstSeenBit } from '../core/flow-hash.js';
import { ensureInstanceDir, instanceDir, listPins, removeInstanceDir, validateInstanceName } from './bpffs.js';
import { interfaceIndex, listInterfaces } from './interfaces.js';
import { linkFacts } from './link-facts.js';
import { PROGRAM_PINS, PROGRAM_SPECS, loadAndPinAll, objGet, type ProgKind } from './loader.js';
import { closeFd, mapInfo, progInfo, progTestRun, type TestRunResult } from './libbpf.js';

export type { DetachResult, ProgKind, ProgramHandle, XdpMode, XdpModeRequest };

/** The ingress path an interface runs: XDP (lb_xdp_ingress) or TC (lb_tc_ingress). */
export type DataPath = 'xdp' | 'tc';


/** The maps of lb_abi.h, by name. */
export const MAP_NAMES = [
  LB_MAP_CTL, LB_MAP_SETTINGS, LB_MAP_LISTENERS, LB_MAP_SRC_ROUTES, LB_MAP_GROUPS, LB_MAP_MAGLEV, LB_MAP_FLOWS,
  LB_MAP_HALFOPEN, LB_MAP_TSTATS, LB_MAP_STATS, LB_MAP_TX_PORTS, LB_MAP_IFACES, LB_MAP_TP_SEEN, LB_MAP_DST_SEEN, LB_MAP_NEXTHOPS,
  LB_MAP_ROUTE_STAGE, LB_MAP_FRAGS, LB_MAP_RL_SRC, LB_MAP_RL_BACKEND, LB_MAP_RL_STATS,
  LB_MAP_EVENTS, LB_MAP_EV_STATS,
] as const;
export type MapName = (typeof MAP_NAMES)[number];
export type StatName = (typeof STAT_NAMES)[number];

/** Key size and allowed value sizes of each map, checked when pins are adopted (stale layouts). */
const MAP_SHAPES: Record<MapName, { key: number; values: number[] }> = {
  lb_ctl: { key: 4, values: [LAYOUTS.lb_ctl.size] },
  lb_settings: { key: 4, values: [LAYOUTS.lb_settings.size] },
  lb_listeners: { key: LAYOUTS.lb_listener_key.size, values: [LAYOUTS.lb_listener.size] },
  lb_src_routes: { key: LAYOUTS.lb_src_key.size, values: [4] },
  lb_groups: { key: 4, values: [LAYOUTS.lb_group.size] },
  lb_maglev: { key: 4, values: [LAYOUTS.lb_maglev.size] },
  lb_flows: { key: LAYOUTS.lb_flow_key.size, values: [LAYOUTS.lb_flow.size] },
  lb_halfopen: { key: LAYOUTS.lb_flow_key.size, values: [LAYOUTS.lb_flow.size] },
  lb_tstats: { key: 4, values: [LAYOUTS.lb_target_stats.size] },
  lb_stats_v4: { key: 4, values: [8] },
  lb_tx_ports: { key: 4, values: [4, 8] }, // ifindex, or struct bpf_devmap_val
  lb_ifaces: { key: 4, values: [LAYOUTS.lb_iface.size] },
  lb_tp_seen: { key: 4, values: [8] },
  lb_dst_seen: { key: 4, values: [LB_DST_SEEN_BITS / 8] },
  lb_nexthops: { key: LAYOUTS.lb_nh_key.size, values: [LAYOUTS.lb_nexthop.size] },
  lb_route_stage: { key: 4, values: [LAYOUTS.lb_route_stage.size] },
  lb_frags: { key: LAYOUTS.lb_frag_key.size, values: [LAYOUTS.lb_frag.size] },
  lb_rl_src: { key: 4, values: [LAYOUTS.lb_rl_bucket.size] },
  lb_rl_backend: { key: 4, values: [LAYOUTS.lb_rl_bucket.size] },
  lb_rl_stats: { key: 4, values: [8] },
  lb_events: { key: 0, values: [0] }, // a ring buffer: no keys, no values
  lb_ev_stats: { key: 4, values: [8] },
};

export interface OpenOptions {
  /** Instance name: the pins live in /sys/fs/bpf/lb/<instance>. */
  instance: string;
  /** Where lb's BPF objects (lb_xdp, lb_tc, lb_apply .bpf.o) are; default build/bpf of the lb package. */
  objectDir?: string;
  /**
   * Load the objects even when the instance is pinned already (upgrade): maps are reused from
   * their pins (flows survive), programs are loaded anew and re-pinned; attach() then replaces the
   * old programs on each interface atomically.
   */
  reload?: boolean;
}

export interface AttachOptions {
  /** The ingress path to run. Default 'xdp'. */
  path?: DataPath;
  /** For the XDP path: auto tries native and falls back to generic. */
  xdpMode?: XdpModeRequest;
}

export interface AttachResult {
  ifname: string;
  ifindex: number;
  path: DataPath;
  /** The XDP mode the program runs in on this interface (XDP path), else null. */
  xdpMode: XdpMode | null;
  /** Whether this call attached or detached an XDP program here. */
  xdpChanged: boolean;
  /** Whether this call attached or detached a TC filter here. */
  tcChanged: boolean;
  /** Ids of older versions of our programs this call replaced. */
  replacedProgIds: number[];
  /** Why native mode was not used, when auto fell back to generic. */
  nativeError?: string;
}

export interface Attachment {
  ifname: string;
  ifindex: number;
  /** The ingress path our current programs run here, or null (none, or only part of one). */
  path: DataPath | null;
  /** Mode our current XDP program runs in here, or null. */
  xdp: XdpMode | null;
  /** Whether our current TC ingress program is the clsact ingress filter here. */
  tcIngress: boolean;
  /** Whether our current TC egress program is the clsact egress filter here. */
  tc: boolean;
  /** An older version of this instance's programs is attached here (attach() replaces it). */
  stale: boolean;
}

export interface TxPortsResult {
  ports: Array<{ ifname: string; ifindex: number }>;
  /** Interfaces the devmap refused (no ndo_xdp_xmit): XDP passes their packets to the stack. */
  refused: Array<{ ifname: string; ifindex: number; reason: string }>;
  /** ifindexes removed as stale. */
  removed: number[];
}

export interface TestRunOptions {
  /** XDP: ingress_ifindex of the xdp_md (default: loopback); TC: __sk_buff ifindex. Must exist. */
  ifindex?: number;
  /**
   * Runs of the program; durationNs is the average. Default 1. Each run after the first sees the
   * frame as the previous run left it: a frame lb rewrites (DNAT, TTL, MACs) is no longer the
   * input from the second run on (bench/test-run.ts shows how to measure a path repeatedly).
   */
  repeat?: number;
}

export type { TestRunResult };

export interface DownResult {
  instance: string;
  detached: DetachResult[];
  unpinned: string[];
  removedDir: boolean;
}

export class DataPlane {
  readonly instance: string;
  /** The pin directory, /sys/fs/bpf/lb/<instance>. */
  readonly dir: string;
  /** True when open() adopted pinned state instead of loading the objects. */
  readonly adopted: boolean;
  /** The maps of lb_abi.h by name. */
  readonly maps: Readonly<Record<MapName, BpfMap>>;
  /** The programs, as pinned. */
  readonly programs: Readonly<Record<ProgKind, ProgramHandle>>;
  private readonly owner: Ownership;
  private closed = false;

  private constructor(instance: string, dir: string, adopted: boolean, maps: Record<MapName, BpfMap>, programs: Record<ProgKind, ProgramHandle>) {
    this.instance = instance;
    this.dir = dir;
    this.adopted = adopted;
    this.maps = maps;
    this.programs = programs;
    this.owner = new Ownership(
      Object.values(programs).map((p) => p.id),
      Object.values(maps).map((m) => m.id),
    );
  }

  /**
   * Opens an instance: mounts bpffs if needed, then adopts the pinned programs and maps of
   * /sys/fs/bpf/lb/<instance> when they are all there, or else loads the objects (maps pinned by
   * name there, the TC object reusing the XDP object's maps) and pins the programs (prog_*) and
   * tracepoint links (link_*). A load the verifier refuses throws LB_BPF_LOAD with the verifier log.
   */
  static open(options: OpenOptions): DataPlane {
    const instance = validateInstanceName(options.instance);
    const objectDir = resolve(options.objectDir ?? join(packageRoot(), 'build', 'bpf'));
    const dir = ensureInstanceDir(instance);
    const pins = new Set(listPins(dir));
    const complete = PROGRAM_PINS.every((p) => pins.has(p)) && MAP_NAMES.every((m) => pins.has(m));
    const adopted = complete && options.reload !== true;
    if (!adopted) {
      try {
        loadAndPinAll(objectDir, dir);
        const missing = MAP_NAMES.filter((m) => !existsSync(join(dir, m)));
        if (missing.length > 0) {
          throw new LbError('LB_BPF_PIN', `the objects in ${objectDir} did not pin map(s) ${missing.join(', ')} (declare them with LIBBPF_PIN_BY_NAME)`,
            { instance, objectDir, missing });
        }
      } catch (err) {
        if (pins.size === 0) removeInstanceDir(instance); // nothing was there before: leave nothing
        throw err;
      }
    }
    return DataPlane.adopt(instance, dir, adopted);
  }

  private static adopt(instance: string, dir: string, adopted: boolean): DataPlane {
    const opened: number[] = [];
    try {
      const programs = {} as Record<ProgKind, ProgramHandle>;
      for (const spec of PROGRAM_SPECS) {
        const { kind } = spec;
        const path = join(dir, spec.pin);
        const fd = objGet(path, { instance });
        opened.push(fd);
        const info = progInfo(fd, { instance, path });
        if (info.type !== spec.type) {
          throw new LbError('LB_BPF_PIN', `${path} is a program of type ${info.type}, expected ${spec.type} (${kind})`, { instance, path });
        }
        programs[kind] = { fd, id: info.id, name: info.name, tag: info.tag };
      }
      const maps = {} as Record<MapName, BpfMap>;
      for (const name of MAP_NAMES) {
        const path = join(dir, name);
        const fd = objGet(path, { instance, map: name });
        opened.push(fd);
        const info = mapInfo(fd, { instance, map: name, path });
        const shape = MAP_SHAPES[name];
        if (info.keySize !== shape.key || !shape.values.includes(info.valueSize)) {
          throw new LbError('LB_BPF_PIN',
            `pinned map ${path} has key/value sizes ${info.keySize}/${info.valueSize}, this lb expects ${shape.key}/${shape.values.join(' or ')}: ` +
            `it was created by an incompatible version (\`lb down --instance ${instance}\` removes it, and the flows with it)`,
            { instance, map: name, path, keySize: info.keySize, valueSize: info.valueSize });
        }
        maps[name] = new BpfMap(fd, info, name);
      }
      return new DataPlane(instance, dir, adopted, maps, programs);
    } catch (err) {
      for (const fd of opened) closeFd(fd);
      throw err;
    }
  }

  /**
   * Makes an interface run an ingress path, with TC egress for the replies. 'xdp': lb_xdp_ingress
   * (xdpMode auto tries native and falls back to generic; an explicit mode fails when the driver
   * refuses it). 'tc': lb_tc_ingress on the clsact ingress hook. Switching paths attaches the new
   * one before detaching the old, so no packet finds neither (one rewritten by the old path is
   * not for a listener any more, and the new path passes it). Idempotent; an older version of this
   * instance's programs is replaced atomically; another program is never replaced. Records the
   * interface in lb_ifaces.
   */
  attach(ifname: string, options: AttachOptions = {}): AttachResult {
    this.checkOpen();
    const path = options.path ?? 'xdp';
    const ifindex = interfaceIndex(ifname);
    const egress = attachTc(ifname, ifindex, 'egress', this.programs.tc, this.owner);
    const result: AttachResult = {
      ifname, ifindex, path, xdpMode: null, xdpChanged: false, tcChanged: egress.changed,
      replacedProgIds: egress.replaced !== undefined ? [egress.replaced] : [],
    };
    try {
      if (path === 'tc') {
        refuseForeignXdp(ifname, ifindex, this.owner, { ifname, ifindex, path });
        const ingress = attachTc(ifname, ifindex, 'ingress', this.programs.tc_ingress, this.owner);
        result.tcChanged ||= ingress.changed;
        if (ingress.replaced !== undefined) result.replacedProgIds.push(ingress.replaced);
        result.xdpChanged = detachXdp(ifname, ifindex, this.owner);
      } else {
        const xdp = attachXdp(ifname, ifindex, this.programs.xdp, this.owner, options.xdpMode ?? 'auto');
        Object.assign(result, { xdpMode: xdp.mode, xdpChanged: xdp.changed });
        result.replacedProgIds.push(...xdp.replaced);
        if (xdp.nativeError !== undefined) result.nativeError = xdp.nativeError;
        if (detachTc(ifname, ifindex, 'ingress', this.owner)) result.tcChanged = true;
      }
    } catch (err) {
      if (egress.changed && egress.replaced === undefined) detachTc(ifname, ifindex, 'egress', this.owner);
      throw err;
    }
    this.maps.lb_ifaces.update(encodeU32(ifindex), encodeIface(path));
    this.flushNexthops();
    return result;
  }

  /**
   * Marks flow destinations {VIP, port, proto} in lb_dst_seen, as the data path does before it
   * creates a flow: flows written from user space (restored state, tests) must be marked too, or
   * their packets skip the conntrack lookup.
   */
  markFlowDestinations(dests: Iterable<{ daddr: string; dport: number; proto: number }>): void {
    this.checkOpen();
    const key = encodeU32(0);
    const value = this.maps.lb_dst_seen.lookup(key) ?? Buffer.alloc(LB_DST_SEEN_BITS / 8);
    for (const d of dests) {
      const bit = dstSeenBit(ipv4ToU32(d.daddr), d.dport, d.proto, LB_DST_SEEN_BITS);
      value[bit >>> 3]! |= 1 << (bit & 7); // bit h of the u64 words is bit h % 8 of byte h / 8 (little endian)
    }
    this.maps.lb_dst_seen.update(key, value);
  }

  /**
   * Empties lb_nexthops, the XDP path's cache of FIB answers (each lives LB_NEXTHOP_TTL_MS anyway):
   * after an attach or a change of lb_tx_ports, every next hop is looked up afresh.
   */
  flushNexthops(): number {
    this.checkOpen();
    let removed = 0;
    for (const [key] of [...this.maps.lb_nexthops.entries()]) if (this.maps.lb_nexthops.delete(key)) removed++;
    return removed;
  }

  /**
   * Removes this instance's programs (XDP, TC ingress and egress) from an interface; idempotent.
   * Programs of others are left alone. The clsact qdisc is removed too when no filter is left on it.
   */
  detach(ifname: string): DetachResult {
    this.checkOpen();
    const ifindex = interfaceIndex(ifname);
    const result = detachFrom(ifname, ifindex, this.owner);
    this.maps.lb_ifaces.delete(encodeU32(ifindex));
    return result;
  }

  /** Every interface of this network namespace and which of our programs run there (read live). */
  attachments(): Attachment[] {
    this.checkOpen();
    const ours = new Set(Object.values(this.programs).map((p) => p.id));
    return listInterfaces().map(({ name, ifindex }) => {
      const q = xdpQuery(ifindex, name);
      const tcOut = tcQuery(ifindex, name, 'egress');
      const tcIn = tcQuery(ifindex, name, 'ingress');
      const xdp = q.drv === this.programs.xdp.id ? 'native' : q.skb === this.programs.xdp.id ? 'generic' : null;
      const tc = tcOut === this.programs.tc.id;
      const tcIngress = tcIn === this.programs.tc_ingress.id;
      const path: DataPath | null = !tc ? null : tcIngress ? 'tc' : xdp !== null ? 'xdp' : null;
      const others = [q.drv, q.skb, tcOut, tcIn].filter((id) => id !== 0 && !ours.has(id));
      return { ifname: name, ifindex, path, xdp, tcIngress, tc, stale: others.some((id) => this.owner.belongs(id)) };
    });
  }

  /**
   * Makes lb_tx_ports (the devmap XDP redirects through) hold exactly these interfaces, lo
   * excepted, that can transmit XDP frames: the kernel's xdp_features must have ndo-xmit (a veth
   * has it only while its peer runs NAPI; a bridge never), and the devmap must accept it (kernels
   * before 6.3 report no features: then only the devmap's check applies). Others are refused and
   * reported; XDP passes their traffic to the stack instead, so no redirect is dropped.
   */
  setTxPorts(ifnames: Iterable<string>): TxPortsResult {
    this.checkOpen();
    const map = this.maps.lb_tx_ports;
    const result: TxPortsResult = { ports: [], refused: [], removed: [] };
    const keep = new Set<number>();
    const facts = new Map(linkFacts().map((l) => [l.name, l]));
    for (const ifname of new Set(ifnames)) {
      if (ifname === 'lo') continue;
      const ifindex = interfaceIndex(ifname);
      if (facts.get(ifname)?.xdp?.ndoXmit === false) {
        result.refused.push({ ifname, ifindex, reason: 'cannot transmit XDP frames (xdp_features without ndo-xmit)' });
        continue;
      }
      const value = Buffer.alloc(map.valueSize); // ifindex, then (bpf_devmap_val) no program fd
      value.writeUInt32LE(ifindex, 0);
      try {
        map.update(encodeU32(ifindex), value);
        keep.add(ifindex);
        result.ports.push({ ifname, ifindex });
      } catch (err) {
        if (!(err instanceof LbError)) throw err;
        result.refused.push({ ifname, ifindex, reason: String(err.data.errnoName ?? err.message) });
      }
    }
    for (const [key] of [...map.entries()]) {
      const ifindex = key.readUInt32LE(0);
      if (!keep.has(ifindex) && map.delete(key)) result.removed.push(ifindex);
    }
    this.flushNexthops();
    return result;
  }

  /** setTxPorts with every interface of this network namespace. */
  syncTxPorts(): TxPortsResult {
    return this.setTxPorts(listInterfaces().map((i) => i.name));
  }

  /**
   * Runs a program once (or `repeat` times) on a packet with BPF_PROG_TEST_RUN. Returns the
   * program's return value (XDP_PASS = 2, TC_ACT_OK = 0, ...), the output packet and the average
   * duration. Map side effects are real: this is the instance's own program and maps.
   */
  testRun(prog: ProgKind, packet: Buffer, options: TestRunOptions = {}): TestRunResult {
    this.checkOpen();
    const { fd, name } = this.programs[prog];
    return progTestRun(fd, prog === 'xdp' ? 'xdp' : 'tc', packet, { ifindex: options.ifindex, repeat: options.repeat ?? 1 }, name,
      { instance: this.instance, prog, packetLength: packet.length, ifindex: options.ifindex });
  }

  /** lb_stats_v4 summed over CPUs, by STAT_NAMES. */
  readStats(): Record<StatName, bigint> {
    this.checkOpen();
    const out = {} as Record<StatName, bigint>;
    for (let i = 0; i < LB_STAT_MAX; i++) {
      const slots = this.maps.lb_stats_v4.lookupPerCpu(encodeU32(i)) ?? [];
      out[STAT_NAMES[i]!] = slots.reduce((sum, b) => sum + b.readBigUInt64LE(0), 0n);
    }
    return out;
  }

  /** The lb_tstats slot of a target, summed over CPUs. */
  readTargetStats(targetId: number): TargetStats {
    this.checkOpen();
    if (!Number.isInteger(targetId) || targetId < 0 || targetId >= LB_MAX_TARGET_IDS) {
      throw new LbError('LB_BPF_ABI', `target id out of range: ${targetId} (expected 0..${LB_MAX_TARGET_IDS - 1})`, { targetId });
    }
    return sumTargetStats((this.maps.lb_tstats.lookupPerCpu(encodeU32(targetId)) ?? []).map((slot) => decodeTargetStats(slot)));
  }

  /** Closes this process's fds. The pinned programs, maps and attachments stay. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const map of Object.values(this.maps)) map.close();
    for (const prog of Object.values(this.programs)) closeFd(prog.fd);
  }

  /**
   * Takes an instance out of the kernel: detaches its programs (any version) from every interface
   * of this network namespace, unpins everything under its directory and removes it. Idempotent;
   * reports what it removed. Attachments in other network namespaces are not visible from here.
   */
  static down(instance: string): DownResult {
    const dir = instanceDir(instance);
    const result: DownResult = { instance, detached: [], unpinned: [], removedDir: false };
    if (!existsSync(dir)) return result;
    const owner = Ownership.fromPins(dir);
    for (const { name, ifindex } of listInterfaces()) {
      const d = detachFrom(name, ifindex, owner);
      if (d.xdp || d.tc) result.detached.push(d);
    }
    return { ...result, ...removeInstanceDir(instance) };
  }

  private checkOpen(): void {
    if (this.closed) throw new LbError('LB_STATE_MISSING', `data plane of instance ${this.instance} is closed`, { instance: this.instance });
  }
}

/** A struct lb_iface value. */
function encodeIface(path: DataPath): Buffer {
  const b = Buffer.alloc(LAYOUTS.lb_iface.size);
  b.writeUInt32LE(path === 'tc' ? LB_PATH_TC : LB_PATH_XDP, LAYOUTS.lb_iface.fields.path);
  return b;
}
