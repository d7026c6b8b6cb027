// Attaching lb's programs to an interface, and taking them off again, over libbpf's netlink calls:
// XDP on ingress (native or generic), TC clsact filters on ingress and egress. Only this instance's
// programs are ever replaced or removed (Ownership); another tool's program is an error.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { constants } from 'node:os';
import { LbError } from '../core/errors.js';
import { listPins } from './bpffs.js';
import {
  BPF_TC_EGRESS, BPF_TC_F_REPLACE, BPF_TC_INGRESS, TC_HOOK, TC_OPTS, XDP_ATTACH_OPTS, XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST, XDP_QUERY_OPTS,
  bpfError, closeFd, mapInfo, native, progInfo, progInfoById, quietCall, type ProgInfo,
} from './libbpf.js';

const { ENOENT, EEXIST, EINVAL } = constants.errno;

export type XdpMode = 'native' | 'generic';
export type XdpModeRequest = 'auto' | XdpMode;
export type TcPoint = 'ingress' | 'egress';

export interface ProgramHandle { fd: number; id: number; name: string; tag: string }

/** Our TC filters' slot on each clsact hook. */
const TC_HANDLE = 1;
const TC_PRIORITY = 1;
const TC_POINTS: Record<TcPoint, number> = { ingress: BPF_TC_INGRESS, egress: BPF_TC_EGRESS };

// ---- ownership: which attached programs are this instance's ----

/**
 * Recognises this instance's programs: our current program ids, or any program that uses one of
 * our pinned maps (an older version loaded against the same pins). Map ids are unique per
 * instance, so another instance's or tool's program never matches.
 */
export class Ownership {
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

export function xdpQuery(ifindex: number, ifname: string): XdpState {
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

/**
 * The XDP state of an interface, after checking that no program of anyone else runs there: lb
 * never replaces one, and on the TC path one would see (and could drop or redirect) every packet
 * before lb does.
 */
export function refuseForeignXdp(ifname: string, ifindex: number, owner: Ownership, data: Record<string, unknown>): XdpState {
  const q = xdpQuery(ifindex, ifname);
  if (q.hw !== 0) {
    throw new LbError('LB_BPF_ATTACH', `${ifname} runs an offloaded XDP program (id ${q.hw}); lb does not replace it`, { ...data, foreignProgId: q.hw });
  }
  for (const [mode, id] of [['native', q.drv], ['generic', q.skb]] as Array<[XdpMode, number]>) {
    if (id !== 0 && !owner.belongs(id)) {
      throw new LbError('LB_BPF_ATTACH', `${ifname} already runs XDP program id ${id} (${mode}) that is not this lb instance's; detach it first`,
        { ...data, foreignProgId: id, mode });
    }
  }
  return q;
}

export function attachXdp(ifname: string, ifindex: number, prog: ProgramHandle, owner: Ownership, want: XdpModeRequest):
  { mode: XdpMode; changed: boolean; replaced: number[]; nativeError?: string } {
  const data = { ifname, ifindex, progId: prog.id };
  const q = refuseForeignXdp(ifname, ifindex, owner, data);
  const slots: Array<[XdpMode, number]> = [['native', q.drv], ['generic', q.skb]];
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

function tcHook(ifindex: number, attachPoint: number): Buffer {
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

/** The program id in our slot (handle 1, priority 1) of a clsact hook, or 0. */
export function tcQuery(ifindex: number, ifname: string, point: TcPoint): number {
  const opts = tcOpts();
  // ENOENT: no such filter; EINVAL: no clsact qdisc on the interface
  const ret = netlink(`bpf_tc_query(${ifname} ${point})`, { ifname, ifindex },
    () => native().bpf_tc_query(tcHook(ifindex, TC_POINTS[point]), opts), [ENOENT, EINVAL]);
  return ret < 0 ? 0 : opts.readUInt32LE(TC_OPTS.prog_id);
}

export function attachTc(ifname: string, ifindex: number, point: TcPoint, prog: ProgramHandle, owner: Ownership):
  { changed: boolean; replaced?: number } {
  const data = { ifname, ifindex, progId: prog.id, point };
  netlink(`creating the clsact qdisc on ${ifname}`, data, () => native().bpf_tc_hook_create(tcHook(ifindex, TC_POINTS[point])), [EEXIST]);
  const current = tcQuery(ifindex, ifname, point);
  if (current === prog.id) return { changed: false };
  if (current !== 0 && !owner.belongs(current)) {
    throw new LbError('LB_BPF_ATTACH', `${ifname} ${point} filter handle ${TC_HANDLE} priority ${TC_PRIORITY} runs program id ${current} that is not this lb instance's`,
      { ...data, foreignProgId: current });
  }
  netlink(`attaching TC ${point} filter to ${ifname}`, data,
    () => native().bpf_tc_attach(tcHook(ifindex, TC_POINTS[point]), tcOpts(prog.fd, BPF_TC_F_REPLACE)));
  return current === 0 ? { changed: true } : { changed: true, replaced: current };
}

/** Removes our filter from one hook (any version of it); false when none of ours was there. */
export function detachTc(ifname: string, ifindex: number, point: TcPoint, owner: Ownership): boolean {
  const current = tcQuery(ifindex, ifname, point);
  if (current === 0 || !owner.belongs(current)) return false;
  netlink(`detaching TC ${point} filter from ${ifname}`, { ifname, ifindex, progId: current, point },
    () => native().bpf_tc_detach(tcHook(ifindex, TC_POINTS[point]), tcOpts()), [ENOENT]);
  return true;
}

/**
 * Removes the clsact qdisc when neither of its hooks holds a filter any more, so `down` leaves the
 * interface as it found it. libbpf cannot list filters, so this asks `tc`; when tc is missing or
 * says anything unexpected, the (harmless) empty qdisc stays.
 */
export function removeClsactIfEmpty(ifname: string, ifindex: number): void {
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

/** Detaches our XDP program (any mode); true when one was there. */
export function detachXdp(ifname: string, ifindex: number, owner: Ownership): boolean {
  let detached = false;
  const q = xdpQuery(ifindex, ifname);
  for (const [mode, id] of [['native', q.drv], ['generic', q.skb]] as Array<[XdpMode, number]>) {
    if (id === 0 || !owner.belongs(id)) continue;
    xdpAttach(`detaching XDP program ${id} from ${ifname} (${mode})`, { ifname, ifindex, progId: id, mode },
      ifindex, -1, MODE_FLAGS[mode], id, [ENOENT]);
    detached = true;
  }
  return detached;
}

export interface DetachResult { ifname: string; ifindex: number; xdp: boolean; tc: boolean }

/** Takes every program of ours off an interface (XDP, both TC hooks) and the clsact qdisc if empty. */
export function detachFrom(ifname: string, ifindex: number, owner: Ownership): DetachResult {
  const xdp = detachXdp(ifname, ifindex, owner);
  const tcIn = detachTc(ifname, ifindex, 'ingress', owner);
  const tcOut = detachTc(ifname, ifindex, 'egress', owner);
  if (tcIn || tcOut) removeClsactIfEmpty(ifname, ifindex);
  return { ifname, ifindex, xdp, tc: tcIn || tcOut };
}
