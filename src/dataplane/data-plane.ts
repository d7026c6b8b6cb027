// DataPlane: the programmatic handle on one lb instance's kernel state — its pinned maps and
// programs under /sys/fs/bpf/lb/<instance>, and their XDP (ingress) and TC (egress) attachments.
//
// Lifecycle: open() loads build/bpf/lb_xdp.bpf.o and lb_tc.bpf.o once and pins everything; later
// opens adopt the pins, so a restarted daemon keeps its flows and attachments. close() only closes
// this process's fds; DataPlane.down() is what removes the instance from the kernel.
//
// Interfaces are resolved in the calling thread's network namespace (see interfaces.ts).

import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { LbError } from '../errors.js';
import { packageRoot } from '../package-root.js';
import {
  LAYOUTS, LB_MAP_CTL, LB_MAP_FLOWS, LB_MAP_GROUPS, LB_MAP_LISTENERS, LB_MAP_MAGLEV, LB_MAP_SETTINGS, LB_MAP_SRC_ROUTES,
  LB_MAP_STATS, LB_MAP_TSTATS, LB_MAP_TX_PORTS, LB_MAX_TARGET_IDS, LB_STAT_MAX, STAT_NAMES, decodeTargetStats,
  encodeU32, type TargetStats,
} from './abi.js';
import { BpfMap } from './bpf-map.js';
import { ensureInstanceDir, instanceDir, listPins, removeInstanceDir, validateInstanceName } from './bpffs.js';
import { interfaceIndex, listInterfaces } from './interfaces.js';
import {
  BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, BPF_TC_EGRESS, BPF_TC_F_REPLACE, BPF_TC_INGRESS, NativeMemory,
  OBJECT_OPEN_OPTS, TC_HOOK, TC_OPTS, XDP_ATTACH_OPTS, XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_QUERY_OPTS,
  bpfError, captureLibbpfLog, check, closeFd, currentLibbpfLog, mapInfo, native, progInfo, progInfoById,
  progTestRun, quietCall, type ProgInfo, type TestRunResult,
} from './libbpf.js';

const { ENOENT, EEXIST, EINVAL } = constants.errno;

/** The ten maps of lb_abi.h, by name. */
export const MAP_NAMES = [
  LB_MAP_CTL, LB_MAP_SETTINGS, LB_MAP_LISTENERS, LB_MAP_SRC_ROUTES, LB_MAP_GROUPS, LB_MAP_MAGLEV, LB_MAP_FLOWS,
  LB_MAP_TSTATS, LB_MAP_STATS, LB_MAP_TX_PORTS,
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
  lb_tstats: { key: 4, values: [LAYOUTS.lb_target_stats.size] },
  lb_stats: { key: 4, values: [8] },
  lb_tx_ports: { key: 4, values: [4, 8] }, // ifindex, or struct bpf_devmap_val
};

export type ProgKind = 'xdp' | 'tc';

/** The two programs: object file, program name in it, pin name in the instance directory. */
const PROGRAMS: Record<ProgKind, { object: string; program: string; pin: string; type: number }> = {
  xdp: { object: 'lb_xdp.bpf.o', program: 'lb_xdp_ingress', pin: 'prog_xdp', type: BPF_PROG_TYPE_XDP },
  tc: { object: 'lb_tc.bpf.o', program: 'lb_tc_egress', pin: 'prog_tc', type: BPF_PROG_TYPE_SCHED_CLS },
};

/** Our TC filter's slot on the egress hook. */
const TC_HANDLE = 1;
const TC_PRIORITY = 1;

export type XdpMode = 'native' | 'generic';
export type XdpModeRequest = 'auto' | XdpMode;

export interface OpenOptions {
  /** Instance name: the pins live in /sys/fs/bpf/lb/<instance>. */
  instance: string;
  /** Where lb_xdp.bpf.o and lb_tc.bpf.o are; default build/bpf of the lb package. */
  objectDir?: string;
  /**
   * Load the objects even when the instance is pinned already (upgrade): maps are reused from
   * their pins (flows survive), programs are loaded anew and re-pinned; attach() then replaces the
   * old programs on each interface atomically.
   */
  reload?: boolean;
}

export interface ProgramHandle { fd: number; id: number; name: string; tag: string }

export interface AttachResult {
  ifname: string;
  ifindex: number;
  /** The XDP mode the program runs in on this interface. */
  xdpMode: XdpMode;
  /** False when our XDP program was attached already (a no-op). */
  xdpChanged: boolean;
  /** False when our TC filter was attached already (a no-op). */
  tcChanged: boolean;
  /** Ids of older versions of our programs this call replaced. */
  replacedProgIds: number[];
  /** Why native mode was not used, when auto fell back to generic. */
  nativeError?: string;
}

export interface DetachResult { ifname: string; ifindex: number; xdp: boolean; tc: boolean }

export interface Attachment {
  ifname: string;
  ifindex: number;
  /** Mode our current XDP program runs in here, or null. */
  xdp: XdpMode | null;
  /** Whether our current TC program is the egress filter here. */
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
  /** The two programs, as pinned. */
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
      [programs.xdp.id, programs.tc.id],
      Object.values(maps).map((m) => m.id),
    );
  }

  /**
   * Opens an instance: mounts bpffs if needed, then adopts the pinned programs and maps of
   * /sys/fs/bpf/lb/<instance> when they are all there, or else loads the two objects (maps pinned by
   * name there, the TC object reusing the XDP object's maps) and pins the programs as prog_xdp and
   * prog_tc. A load the verifier refuses throws LB_BPF_LOAD with the verifier log.
   */
  static open(options: OpenOptions): DataPlane {
    const instance = validateInstanceName(options.instance);
    const objectDir = resolve(options.objectDir ?? join(packageRoot(), 'build', 'bpf'));
    const dir = ensureInstanceDir(instance);
    const pins = new Set(listPins(dir));
    const complete = Object.values(PROGRAMS).every((p) => pins.has(p.pin)) && MAP_NAMES.every((m) => pins.has(m));
    const adopted = complete && options.reload !== true;
    if (!adopted) {
      try {
        for (const kind of ['xdp', 'tc'] as const) loadAndPin(kind, objectDir, dir);
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
      for (const kind of ['xdp', 'tc'] as const) {
        const spec = PROGRAMS[kind];
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
   * Attaches XDP on ingress and TC on egress of an interface. xdpMode auto tries native and falls
   * back to generic; an explicit mode fails when the driver refuses it. Idempotent: an interface
   * already running our programs is left alone. An older version of this instance's programs is
   * replaced atomically (XDP_FLAGS_REPLACE, BPF_TC_F_REPLACE); another program is never replaced.
   */
  attach(ifname: string, options: { xdpMode?: XdpModeRequest } = {}): AttachResult {
    this.checkOpen();
    const want = options.xdpMode ?? 'auto';
    const ifindex = interfaceIndex(ifname);
    const tc = attachTc(ifname, ifindex, this.programs.tc, this.owner);
    let xdp: ReturnType<typeof attachXdp>;
    try {
      xdp = attachXdp(ifname, ifindex, this.programs.xdp, this.owner, want);
    } catch (err) {
      if (tc.changed && tc.replaced === undefined) detachTc(ifname, ifindex, this.owner);
      throw err;
    }
    const result: AttachResult = {
      ifname, ifindex, xdpMode: xdp.mode, xdpChanged: xdp.changed, tcChanged: tc.changed,
      replacedProgIds: [...xdp.replaced, ...(tc.replaced !== undefined ? [tc.replaced] : [])],
    };
    if (xdp.nativeError !== undefined) result.nativeError = xdp.nativeError;
    return result;
  }

  /**
   * Removes this instance's XDP program and TC filter from an interface; idempotent. Programs of
   * others are left alone. The clsact qdisc is removed too when no filter is left on it.
   */
  detach(ifname: string): DetachResult {
    this.checkOpen();
    return detachFrom(ifname, interfaceIndex(ifname), this.owner);
  }

  /** Every interface of this network namespace and which of our programs run there (read live). */
  attachments(): Attachment[] {
    this.checkOpen();
    return listInterfaces().map(({ name, ifindex }) => {
      const q = xdpQuery(ifindex, name);
      const tcId = tcQuery(ifindex, name);
      const xdp = q.drv === this.programs.xdp.id ? 'native' : q.skb === this.programs.xdp.id ? 'generic' : null;
      const others = [q.drv, q.skb, tcId].filter((id) => id !== 0 && id !== this.programs.xdp.id && id !== this.programs.tc.id);
      return { ifname: name, ifindex, xdp, tc: tcId === this.programs.tc.id, stale: others.some((id) => this.owner.belongs(id)) };
    });
  }

  /**
   * Makes lb_tx_ports (the devmap XDP redirects through) hold exactly these interfaces, lo
   * excepted. Interfaces whose driver cannot transmit XDP frames are refused by the kernel and
   * reported; XDP passes their traffic to the stack instead.
   */
  setTxPorts(ifnames: Iterable<string>): TxPortsResult {
    this.checkOpen();
    const map = this.maps.lb_tx_ports;
    const result: TxPortsResult = { ports: [], refused: [], removed: [] };
    const keep = new Set<number>();
    for (const ifname of new Set(ifnames)) {
      if (ifname === 'lo') continue;
      const ifindex = interfaceIndex(ifname);
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
    return progTestRun(fd, prog, packet, { ifindex: options.ifindex, repeat: options.repeat ?? 1 }, name,
      { instance: this.instance, prog, packetLength: packet.length, ifindex: options.ifindex });
  }

  /** lb_stats summed over CPUs, by STAT_NAMES. */
  readStats(): Record<StatName, bigint> {
    this.checkOpen();
    const out = {} as Record<StatName, bigint>;
    for (let i = 0; i < LB_STAT_MAX; i++) {
      const slots = this.maps.lb_stats.lookupPerCpu(encodeU32(i)) ?? [];
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
    const total: TargetStats = { packets: 0n, bytes: 0n, newFlows: 0n, closedFlows: 0n, failedConns: 0n };
    for (const slot of this.maps.lb_tstats.lookupPerCpu(encodeU32(targetId)) ?? []) {
      const s = decodeTargetStats(slot);
      total.packets += s.packets;
      total.bytes += s.bytes;
      total.newFlows += s.newFlows;
      total.closedFlows += s.closedFlows;
      total.failedConns += s.failedConns;
    }
    return total;
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

// ---- loading ----

function objGet(path: string, data: Record<string, unknown>): number {
  const fd = native().bpf_obj_get(path);
  if (fd < 0) throw bpfError('LB_BPF_PIN', `bpf_obj_get(${path})`, -fd, { ...data, path });
  return fd;
}

/** Opens and loads one object with its maps pinned by name in dir, and pins its program. */
function loadAndPin(kind: ProgKind, objectDir: string, dir: string): void {
  const spec = PROGRAMS[kind];
  const path = join(objectDir, spec.object);
  if (!existsSync(path)) {
    throw bpfError('LB_BPF_OPEN', `opening ${path} (build it with \`make bpf\`)`, ENOENT, { object: path });
  }
  const pinRoot = NativeMemory.from(dir);
  try {
    captureLibbpfLog(() => {
      const opts = Buffer.alloc(OBJECT_OPEN_OPTS.size);
      opts.writeBigUInt64LE(BigInt(OBJECT_OPEN_OPTS.size), 0);
      opts.writeBigUInt64LE(pinRoot.address, OBJECT_OPEN_OPTS.pin_root_path);
      const n = native();
      const obj = n.bpf_object__open_file(path, opts);
      if (obj === null || obj === 0n) {
        throw bpfError('LB_BPF_OPEN', `bpf_object__open_file(${path})`, n.errno() || EINVAL, { object: path }, currentLibbpfLog());
      }
      try {
        handOverDevmaps(obj, dir, path);
        const ret = n.bpf_object__load(obj);
        if (ret < 0) throw bpfError('LB_BPF_LOAD', `loading ${path}`, -ret, { object: path, pinRoot: dir }, currentLibbpfLog());
        const prog = n.bpf_object__find_program_by_name(obj, spec.program);
        if (prog === null || prog === 0n) {
          throw new LbError('LB_BPF_OPEN', `${path} has no program named ${spec.program}`, { object: path, program: spec.program });
        }
        pinReplacing(n.bpf_program__fd(prog), join(dir, spec.pin), { object: path, program: spec.program });
      } finally {
        n.bpf_object__close(obj);
      }
    });
  } finally {
    pinRoot.free();
  }
}

/**
 * Hands pinned devmaps to libbpf before load. libbpf 1.1 reuses a pin only when its flags equal the
 * object's definition, but the kernel forces BPF_F_RDONLY_PROG on every devmap (and refuses that
 * flag at creation), so a pinned devmap never matches and a reload would fail. For those maps this
 * does libbpf's check minus the flags, then bpf_map__reuse_fd; every other map keeps libbpf's own.
 */
function handOverDevmaps(obj: unknown, dir: string, object: string): void {
  const n = native();
  let map: unknown = null;
  for (let i = 0; i < 256; i++) {
    map = n.bpf_object__next_map(obj, map);
    if (map === null || map === 0n) return;
    const type = n.bpf_map__type(map);
    if (type !== BPF_MAP_TYPE_DEVMAP && type !== BPF_MAP_TYPE_DEVMAP_HASH) continue;
    const name = n.bpf_map__name(map);
    const pin = join(dir, name);
    if (!existsSync(pin)) continue;
    const data = { object, map: name, path: pin };
    const fd = objGet(pin, data);
    try {
      const info = mapInfo(fd, data);
      const want = { type, keySize: n.bpf_map__key_size(map), valueSize: n.bpf_map__value_size(map), maxEntries: n.bpf_map__max_entries(map) };
      const have = { type: info.type, keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries };
      if (JSON.stringify(have) !== JSON.stringify(want)) {
        throw new LbError('LB_BPF_PIN', `pinned map ${pin} (${JSON.stringify(have)}) does not match its definition in ${object} (${JSON.stringify(want)})`,
          { ...data, have, want });
      }
      check(n.bpf_map__set_pin_path(map, null), 'LB_BPF_PIN', `bpf_map__set_pin_path(${name})`, data);
      check(n.bpf_map__reuse_fd(map, fd), 'LB_BPF_PIN', `bpf_map__reuse_fd(${name})`, data);
    } finally {
      closeFd(fd);
    }
  }
}

/** Pins fd at path, atomically replacing an older pin (pin beside it, then rename over it). */
function pinReplacing(fd: number, path: string, data: Record<string, unknown>): void {
  const tmp = `${path}-new-${process.pid}`; // bpffs refuses names with a '.'
  rmSync(tmp, { force: true });
  check(native().bpf_obj_pin(fd, tmp), 'LB_BPF_PIN', `bpf_obj_pin(${tmp})`, { ...data, path: tmp });
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new LbError('LB_BPF_PIN', `cannot rename ${tmp} to ${path}: ${(err as Error).message}`, { ...data, path }, { cause: err });
  }
}

// ---- ownership: which attached programs are this instance's ----

/**
 * Recognises this instance's programs: our current program ids, or any program that uses one of
 * our pinned maps (an older version loaded against the same pins). Map ids are unique per
 * instance, so another instance's or tool's program never matches.
 */
class Ownership {
  private readonly progIds: Set<number>;
  private readonly mapIds: Set<number>;
  private readonly cache = new Map<number, boolean>();

  constructor(progIds: number[], mapIds: number[]) {
    this.progIds = new Set(progIds);
    this.mapIds = new Set(mapIds);
  }

  /** From whatever is pinned in dir (a half-created instance included). */
  static fromPins(dir: string): Ownership {
    const progIds: number[] = [];
    const mapIds: number[] = [];
    for (const name of listPins(dir)) {
      const fd = native().bpf_obj_get(join(dir, name));
      if (fd < 0) continue;
      try {
        if (name.startsWith('prog_')) progIds.push(progInfo(fd).id);
        else mapIds.push(mapInfo(fd).id);
      } catch {
        // not a program or map of ours: ignore
      } finally {
        closeFd(fd);
      }
    }
    return new Ownership(progIds, mapIds);
  }

  belongs(progId: number): boolean {
    if (progId === 0) return false;
    if (this.progIds.has(progId)) return true;
    let mine = this.cache.get(progId);
    if (mine === undefined) {
      const info: ProgInfo | undefined = progInfoById(progId);
      mine = info !== undefined && info.mapIds.some((id) => this.mapIds.has(id));
      this.cache.set(progId, mine);
    }
    return mine;
  }
}

// ---- netlink calls (XDP and TC attach, query, detach) ----

/**
 * Runs a libbpf netlink call returning 0 or -errno; -errno values in `tolerate` are returned, any
 * other failure throws LB_BPF_ATTACH with the kernel's own explanation (extended ack) appended.
 */
function netlink(what: string, data: Record<string, unknown>, fn: () => number, tolerate: number[] = []): number {
  const { ret, log } = quietCall(fn);
  if (ret < 0 && !tolerate.includes(-ret)) throw bpfError('LB_BPF_ATTACH', what, -ret, data, log);
  return ret;
}

// ---- XDP ----

interface XdpState { drv: number; skb: number; hw: number }

function xdpQuery(ifindex: number, ifname: string): XdpState {
  const opts = Buffer.alloc(XDP_QUERY_OPTS.size);
  opts.writeBigUInt64LE(BigInt(XDP_QUERY_OPTS.size), 0);
  netlink(`bpf_xdp_query(${ifname})`, { ifname, ifindex }, () => native().bpf_xdp_query(ifindex, 0, opts));
  return {
    drv: opts.readUInt32LE(XDP_QUERY_OPTS.drv_prog_id),
    skb: opts.readUInt32LE(XDP_QUERY_OPTS.skb_prog_id),
    hw: opts.readUInt32LE(XDP_QUERY_OPTS.hw_prog_id),
  };
}

const MODE_FLAGS: Record<XdpMode, number> = { native: XDP_FLAGS_DRV_MODE, generic: XDP_FLAGS_SKB_MODE };

/**
 * bpf_xdp_attach (progFd -1 detaches). With oldProgId the kernel swaps only if that program is
 * still the one attached (XDP_FLAGS_REPLACE): no window without a program, no lost race.
 */
function xdpAttach(what: string, data: Record<string, unknown>, ifindex: number, progFd: number, flags: number,
  oldProgId?: number, tolerate: number[] = []): number {
  if (oldProgId === undefined) {
    return netlink(what, data, () => native().bpf_xdp_attach(ifindex, progFd, flags, null), tolerate);
  }
  const oldFd = native().bpf_prog_get_fd_by_id(oldProgId);
  if (oldFd < 0) {
    if (tolerate.includes(-oldFd)) return oldFd;
    throw bpfError('LB_BPF_ATTACH', `${what}: bpf_prog_get_fd_by_id(${oldProgId})`, -oldFd, data);
  }
  try {
    const opts = Buffer.alloc(XDP_ATTACH_OPTS.size);
    opts.writeBigUInt64LE(BigInt(XDP_ATTACH_OPTS.size), 0);
    opts.writeInt32LE(oldFd, XDP_ATTACH_OPTS.old_prog_fd);
    return netlink(what, data, () => native().bpf_xdp_attach(ifindex, progFd, flags | XDP_FLAGS_REPLACE, opts), tolerate);
  } finally {
    closeFd(oldFd);
  }
}

function attachXdp(ifname: string, ifindex: number, prog: ProgramHandle, owner: Ownership, want: XdpModeRequest):
  { mode: XdpMode; changed: boolean; replaced: number[]; nativeError?: string } {
  const data = { ifname, ifindex, progId: prog.id };
  const q = xdpQuery(ifindex, ifname);
  if (q.hw !== 0) {
    throw new LbError('LB_BPF_ATTACH', `${ifname} runs an offloaded XDP program (id ${q.hw}); lb does not replace it`, { ...data, foreignProgId: q.hw });
  }
  const slots: Array<[XdpMode, number]> = [['native', q.drv], ['generic', q.skb]];
  for (const [mode, id] of slots) {
    if (id !== 0 && !owner.belongs(id)) {
      throw new LbError('LB_BPF_ATTACH', `${ifname} already runs XDP program id ${id} (${mode}) that is not this lb instance's; detach it first`,
        { ...data, foreignProgId: id, mode });
    }
  }
  const replaced: number[] = [];
  const accept = (mode: XdpMode): boolean => want === 'auto' || want === mode;

  let kept: { mode: XdpMode; changed: boolean } | undefined;
  const current = slots.find(([mode, id]) => id === prog.id && accept(mode));
  const older = slots.find(([mode, id]) => id !== 0 && id !== prog.id && accept(mode));
  if (current) {
    kept = { mode: current[0], changed: false };
  } else if (older) {
    const [mode, oldId] = older;
    xdpAttach(`replacing XDP program ${oldId} on ${ifname} (${mode})`, { ...data, oldProgId: oldId, mode }, ifindex, prog.fd, MODE_FLAGS[mode], oldId);
    replaced.push(oldId);
    kept = { mode, changed: true };
  }
  // Ours in the slot we do not use (another mode was asked for, or a leftover) goes.
  for (const [mode, id] of slots) {
    if (id === 0 || kept?.mode === mode) continue;
    xdpAttach(`detaching XDP program ${id} from ${ifname} (${mode})`, { ...data, mode }, ifindex, -1, MODE_FLAGS[mode], id, [ENOENT]);
    if (id !== prog.id) replaced.push(id);
  }
  if (kept) return { ...kept, replaced };

  let nativeError: string | undefined;
  if (want !== 'generic') {
    try {
      xdpAttach(`attaching XDP to ${ifname} in native mode`, { ...data, mode: 'native' }, ifindex, prog.fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST);
      return { mode: 'native', changed: true, replaced };
    } catch (err) {
      if (want === 'native' || !(err instanceof LbError) || err.data.errno === EEXIST) throw err;
      nativeError = err.message;
    }
  }
  xdpAttach(`attaching XDP to ${ifname} in generic mode`, { ...data, mode: 'generic', ...(nativeError ? { nativeError } : {}) },
    ifindex, prog.fd, XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST);
  return { mode: 'generic', changed: true, replaced, ...(nativeError ? { nativeError } : {}) };
}

// ---- TC ----

function tcHook(ifindex: number, attachPoint = BPF_TC_EGRESS): Buffer {
  const hook = Buffer.alloc(TC_HOOK.size);
  hook.writeBigUInt64LE(BigInt(TC_HOOK.size), 0);
  hook.writeInt32LE(ifindex, TC_HOOK.ifindex);
  hook.writeUInt32LE(attachPoint, TC_HOOK.attach_point);
  return hook;
}

function tcOpts(progFd = 0, flags = 0): Buffer {
  const opts = Buffer.alloc(TC_OPTS.size);
  opts.writeBigUInt64LE(BigInt(TC_OPTS.size), 0);
  opts.writeInt32LE(progFd, TC_OPTS.prog_fd);
  opts.writeUInt32LE(flags, TC_OPTS.flags);
  opts.writeUInt32LE(TC_HANDLE, TC_OPTS.handle);
  opts.writeUInt32LE(TC_PRIORITY, TC_OPTS.priority);
  return opts;
}

/** The program id in our egress slot (handle 1, priority 1), or 0. */
function tcQuery(ifindex: number, ifname: string): number {
  const opts = tcOpts();
  // ENOENT: no such filter; EINVAL: no clsact qdisc on the interface
  const ret = netlink(`bpf_tc_query(${ifname} egress)`, { ifname, ifindex },
    () => native().bpf_tc_query(tcHook(ifindex), opts), [ENOENT, EINVAL]);
  return ret < 0 ? 0 : opts.readUInt32LE(TC_OPTS.prog_id);
}

function attachTc(ifname: string, ifindex: number, prog: ProgramHandle, owner: Ownership): { changed: boolean; replaced?: number } {
  const data = { ifname, ifindex, progId: prog.id };
  netlink(`creating the clsact qdisc on ${ifname}`, data, () => native().bpf_tc_hook_create(tcHook(ifindex)), [EEXIST]);
  const current = tcQuery(ifindex, ifname);
  if (current === prog.id) return { changed: false };
  if (current !== 0 && !owner.belongs(current)) {
    throw new LbError('LB_BPF_ATTACH', `${ifname} egress filter handle ${TC_HANDLE} priority ${TC_PRIORITY} runs program id ${current} that is not this lb instance's`,
      { ...data, foreignProgId: current });
  }
  netlink(`attaching TC egress filter to ${ifname}`, data,
    () => native().bpf_tc_attach(tcHook(ifindex), tcOpts(prog.fd, BPF_TC_F_REPLACE)));
  return current === 0 ? { changed: true } : { changed: true, replaced: current };
}

function detachTc(ifname: string, ifindex: number, owner: Ownership): boolean {
  const current = tcQuery(ifindex, ifname);
  if (current === 0 || !owner.belongs(current)) return false;
  netlink(`detaching TC egress filter from ${ifname}`, { ifname, ifindex, progId: current },
    () => native().bpf_tc_detach(tcHook(ifindex), tcOpts()), [ENOENT]);
  removeClsactIfEmpty(ifname, ifindex);
  return true;
}

/**
 * Removes the clsact qdisc when neither of its hooks holds a filter any more, so `down` leaves the
 * interface as it found it. libbpf cannot list filters, so this asks `tc`; when tc is missing or
 * says anything unexpected, the (harmless) empty qdisc stays.
 */
function removeClsactIfEmpty(ifname: string, ifindex: number): void {
  try {
    for (const hook of ['ingress', 'egress']) {
      const out = execFileSync('tc', ['-j', 'filter', 'show', 'dev', ifname, hook], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
      const filters: unknown = JSON.parse(out.trim() === '' ? '[]' : out);
      if (!Array.isArray(filters) || filters.length > 0) return;
    }
  } catch {
    return;
  }
  quietCall(() => native().bpf_tc_hook_destroy(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS)));
}

function detachFrom(ifname: string, ifindex: number, owner: Ownership): DetachResult {
  let xdp = false;
  const q = xdpQuery(ifindex, ifname);
  for (const [mode, id] of [['native', q.drv], ['generic', q.skb]] as Array<[XdpMode, number]>) {
    if (id === 0 || !owner.belongs(id)) continue;
    xdpAttach(`detaching XDP program ${id} from ${ifname} (${mode})`, { ifname, ifindex, progId: id, mode },
      ifindex, -1, MODE_FLAGS[mode], id, [ENOENT]);
    xdp = true;
  }
  const tc = detachTc(ifname, ifindex, owner);
  return { ifname, ifindex, xdp, tc };
}
