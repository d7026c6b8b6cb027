// Loading lb's two BPF objects and pinning what they hold under the instance directory: maps by
// name (shared between the objects), programs as prog_*, and the tracepoint links as link_* (a
// pinned link stays attached when this process exits).

import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { LbError } from '../core/errors.js';
import {
  BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP, NativeMemory, OBJECT_OPEN_OPTS,
  bpfError, captureLibbpfLog, check, closeFd, currentLibbpfLog, mapInfo, native, withoutProfilerSignal,
} from './libbpf.js';
import { ensureTracefs } from './bpffs.js';

const { ENOENT, EINVAL, EAGAIN, EINTR } = constants.errno;

/**
 * 'xdp': the XDP ingress path; 'tc_ingress': the TC ingress path; 'tc': TC egress (reverse NAT, both
 * paths); 'route_batch': the apply's batch of source-route writes (never attached; src/dataplane/route-batch.ts).
 */
export type ProgKind = 'xdp' | 'tc' | 'tc_ingress' | 'route_batch';

interface ProgramSpec<K extends string = ProgKind> { kind: K; program: string; pin: string; type: number }
interface TracepointSpec { program: string; category: string; name: string; pin: string }
/** An object to load; the SNI acceptor loads its own (src/acceptor/steering.ts) with loadAndPin. */
export interface ObjectSpec<K extends string = ProgKind> { object: string; programs: Array<ProgramSpec<K>>; tracepoints: TracepointSpec[] }

/** What each object holds, in load order (the XDP object creates the maps, the others reuse them). */
export const OBJECTS: readonly ObjectSpec[] = [
  {
    object: 'lb_xdp.bpf.o',
    programs: [{ kind: 'xdp', program: 'lb_xdp_ingress', pin: 'prog_xdp', type: BPF_PROG_TYPE_XDP }],
    tracepoints: [
      { program: 'lb_tp_redirect_err', category: 'xdp', name: 'xdp_redirect_err', pin: 'link_redirect_err' },
      { program: 'lb_tp_devmap_xmit', category: 'xdp', name: 'xdp_devmap_xmit', pin: 'link_devmap_xmit' },
    ],
  },
  {
    object: 'lb_tc.bpf.o',
    programs: [
      { kind: 'tc', program: 'lb_tc_egress', pin: 'prog_tc', type: BPF_PROG_TYPE_SCHED_CLS },
      { kind: 'tc_ingress', program: 'lb_tc_ingress', pin: 'prog_tc_in', type: BPF_PROG_TYPE_SCHED_CLS },
    ],
    tracepoints: [],
  },
  {
    object: 'lb_apply.bpf.o',
    programs: [{ kind: 'route_batch', program: 'lb_route_batch', pin: 'prog_route_batch', type: BPF_PROG_TYPE_RAW_TRACEPOINT }],
    tracepoints: [],
  },
];

export const PROGRAM_SPECS: readonly ProgramSpec[] = OBJECTS.flatMap((o) => o.programs);
/** Every pin an instance's load leaves besides the maps. */
export const PROGRAM_PINS: readonly string[] = OBJECTS.flatMap((o) => [...o.programs.map((p) => p.pin), ...o.tracepoints.map((t) => t.pin)]);

export function objGet(path: string, data: Record<string, unknown>): number {
  const fd = native().bpf_obj_get(path);
  if (fd < 0) throw bpfError('LB_BPF_PIN', `bpf_obj_get(${path})`, -fd, { ...data, path });
  return fd;
}

/** Loads every object with its maps pinned by name in dir, pins its programs and attaches and pins its tracepoints. */
export function loadAndPinAll(objectDir: string, dir: string): void {
  for (const spec of OBJECTS) loadAndPin(spec, objectDir, dir);
}

export function loadAndPin<K extends string>(spec: ObjectSpec<K>, objectDir: string, dir: string): void {
  const path = join(objectDir, spec.object);
  if (!existsSync(path)) {
    throw bpfError('LB_BPF_OPEN', `opening ${path} (build it with \`make bpf\`)`, ENOENT, { object: path });
  }
  const pinRoot = NativeMemory.from(dir);
  try {
    captureLibbpfLog(() => {
      // A load interrupted by a signal fails with EAGAIN or EINTR although nothing is wrong with the
      // object: it is tried again, a bounded few times (SIGPROF, the one that comes often, is blocked).
      for (let attempt = 1; ; attempt++) {
        if (openAndLoad(spec, path, pinRoot, dir, attempt < LOAD_ATTEMPTS)) return;
      }
    });
  } finally {
    pinRoot.free();
  }
}

const LOAD_ATTEMPTS = 3;

/** Opens, loads and pins one object; false when the load was interrupted and may be tried again. */
function openAndLoad<K extends string>(spec: ObjectSpec<K>, path: string, pinRoot: NativeMemory, dir: string, mayRetry: boolean): boolean {
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
    const ret = withoutProfilerSignal(() => n.bpf_object__load(obj));
    if (mayRetry && (ret === -EAGAIN || ret === -EINTR)) return false;
    if (ret < 0) throw bpfError('LB_BPF_LOAD', `loading ${path}`, -ret, { object: path, pinRoot: dir }, currentLibbpfLog());
    for (const p of spec.programs) {
      pinReplacing(n.bpf_program__fd(findProgram(obj, path, p.program)), join(dir, p.pin), { object: path, program: p.program });
    }
    for (const t of spec.tracepoints) attachTracepoint(findProgram(obj, path, t.program), t, dir, path);
    return true;
  } finally {
    n.bpf_object__close(obj);
  }
}

function findProgram(obj: unknown, object: string, program: string): unknown {
  const prog = native().bpf_object__find_program_by_name(obj, program);
  if (prog === null || prog === 0n) throw new LbError('LB_BPF_OPEN', `${object} has no program named ${program}`, { object, program });
  return prog;
}

/**
 * Attaches a tracepoint program and pins the link, replacing an older version's link (its pin is
 * renamed over, which detaches the old one once nothing else holds it).
 */
function attachTracepoint(prog: unknown, t: TracepointSpec, dir: string, object: string): void {
  const n = native();
  const data = { object, program: t.program, tracepoint: `${t.category}:${t.name}` };
  ensureTracefs();
  const link = n.bpf_program__attach_tracepoint(prog, t.category, t.name);
  if (link === null || link === 0n) {
    throw bpfError('LB_BPF_ATTACH', `attaching ${t.program} to tracepoint ${t.category}:${t.name}`, n.errno() || EINVAL, data, currentLibbpfLog());
  }
  try {
    const tmp = `${join(dir, t.pin)}-new-${process.pid}`;
    rmSync(tmp, { force: true });
    check(n.bpf_link__pin(link, tmp), 'LB_BPF_PIN', `bpf_link__pin(${tmp})`, data);
    renamePin(tmp, join(dir, t.pin), data);
  } finally {
    n.bpf_link__destroy(link); // the pin keeps the link attached
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
  renamePin(tmp, path, data);
}

function renamePin(tmp: string, path: string, data: Record<string, unknown>): void {
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new LbError('LB_BPF_PIN', `cannot rename ${tmp} to ${path}: ${(err as Error).message}`, { ...data, path }, { cause: err });
  }
}
