// koffi bindings to libbpf.so.1 (Debian 12: libbpf 1.1.2) and the few libc calls the loader needs.
// Loaded on first use, so importing the data plane costs nothing until a BPF call is made.
//
// Structs that libbpf takes by pointer are written by hand into Buffers at fixed offsets (the
// LAYOUT_* constants below). Their source is libbpf 1.1.2's own headers (/usr/include/bpf/bpf.h and
// libbpf.h from libbpf-dev 1:1.1.2) and the kernel UAPI (linux/bpf.h, linux/if_link.h), checked with
// offsetof() on x86-64. Every struct starts with `size_t sz`, so libbpf accepts it from any newer
// caller layout; fields that hold pointers point into native memory from NativeMemory below, because
// a JS Buffer has no stable address outside the call it is passed to.
//
// libbpf 1.x returns negative errno values from int functions and NULL (errno set) from pointer
// functions; `check` turns either into an LbError carrying errno, its name and text, and the object,
// map or interface concerned.

import { isMainThread } from 'node:worker_threads';
import koffi, { type LibraryHandle } from 'koffi';
import { LbError, type ErrorCode } from '../core/errors.js';

// ---- struct layouts (byte offsets; x86-64 / arm64 LP64) ----

/** struct bpf_object_open_opts (libbpf.h, 1.1.2): 80 bytes. */
export const OBJECT_OPEN_OPTS = { size: 80, pin_root_path: 24, kernel_log_level: 72 } as const;
/** struct bpf_test_run_opts (bpf.h, 1.1.2): 80 bytes. */
export const TEST_RUN_OPTS = {
  size: 80, data_in: 8, data_out: 16, data_size_in: 24, data_size_out: 28, ctx_in: 32, ctx_out: 40,
  ctx_size_in: 48, ctx_size_out: 52, retval: 56, repeat: 60, duration: 64, flags: 68, cpu: 72, batch_size: 76,
} as const;
/** struct bpf_map_batch_opts (bpf.h, 1.1.2): 24 bytes. */
export const MAP_BATCH_OPTS = { size: 24, elem_flags: 8, flags: 16 } as const;
/** struct bpf_xdp_attach_opts (libbpf.h, 1.1.2): 16 bytes. */
export const XDP_ATTACH_OPTS = { size: 16, old_prog_fd: 8 } as const;
/** struct bpf_xdp_query_opts (libbpf.h, 1.1.2; feature_flags came in 1.2): 32 bytes. */
export const XDP_QUERY_OPTS = { size: 32, prog_id: 8, drv_prog_id: 12, hw_prog_id: 16, skb_prog_id: 20, attach_mode: 24 } as const;
/** struct bpf_tc_hook (libbpf.h, 1.1.2): 24 bytes. */
export const TC_HOOK = { size: 24, ifindex: 8, attach_point: 12, parent: 16 } as const;
/** struct bpf_tc_opts (libbpf.h, 1.1.2): 32 bytes. */
export const TC_OPTS = { size: 32, prog_fd: 8, flags: 12, prog_id: 16, handle: 20, priority: 24 } as const;
/** struct xdp_md (UAPI linux/bpf.h): 24 bytes. */
export const XDP_MD = { size: 24, data: 0, data_end: 4, data_meta: 8, ingress_ifindex: 12, rx_queue_index: 16, egress_ifindex: 20 } as const;
/** struct __sk_buff (UAPI linux/bpf.h, 6.1 headers): 192 bytes. */
export const SK_BUFF = { size: 192, ingress_ifindex: 36, ifindex: 40 } as const;
/** The leading fields of struct bpf_map_info (UAPI); the kernel fills what fits in info_len. */
export const MAP_INFO = { size: 88, type: 0, id: 4, key_size: 8, value_size: 12, max_entries: 16, map_flags: 20, name: 24 } as const;
/** The leading fields of struct bpf_prog_info (UAPI), up to and including name. */
export const PROG_INFO = { size: 80, type: 0, id: 4, tag: 8, nr_map_ids: 52, map_ids: 56, name: 64 } as const;

// ---- constants (UAPI and libbpf) ----

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1;
export const XDP_FLAGS_SKB_MODE = 2;
export const XDP_FLAGS_DRV_MODE = 4;
export const XDP_FLAGS_REPLACE = 16;

export const BPF_TC_INGRESS = 1;
export const BPF_TC_EGRESS = 2;
export const BPF_TC_F_REPLACE = 1;

export const BPF_PROG_TYPE_SCHED_CLS = 3;
export const BPF_PROG_TYPE_XDP = 6;
export const BPF_PROG_TYPE_RAW_TRACEPOINT = 17;
export const BPF_PROG_TYPE_SK_LOOKUP = 30;
/** enum bpf_attach_type: a network namespace's socket lookup (the SNI acceptor's steering). */
export const BPF_SK_LOOKUP = 36;

/** Map types whose values are one slot per possible CPU. */
export const PERCPU_MAP_TYPES: ReadonlySet<number> = new Set([5 /* PERCPU_HASH */, 6 /* PERCPU_ARRAY */, 10 /* LRU_PERCPU_HASH */, 21 /* PERCPU_CGROUP_STORAGE */]);
export const BPF_MAP_TYPE_DEVMAP = 14;
export const BPF_MAP_TYPE_DEVMAP_HASH = 25;
export const MAP_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'hash', 2: 'array', 3: 'prog_array', 4: 'perf_event_array', 5: 'percpu_hash', 6: 'percpu_array',
  9: 'lru_hash', 10: 'lru_percpu_hash', 11: 'lpm_trie', 12: 'array_of_maps', 13: 'hash_of_maps',
  14: 'devmap', 16: 'cpumap', 25: 'devmap_hash', 27: 'ringbuf',
};

/** Kernel-internal "not supported" (ENOTSUPP), which the bpf syscall returns for missing batch ops. */
export const ENOTSUPP = 524;

// ---- errors ----

const ERRNO_NAMES: ReadonlyMap<number, string> = (() => {
  const m = new Map<number, string>();
  for (const [name, value] of Object.entries(koffi.os.errno)) if (!m.has(value)) m.set(value, name);
  m.set(koffi.os.errno.EOPNOTSUPP ?? 95, 'EOPNOTSUPP'); // the name the kernel uses for 95, not ENOTSUP
  m.set(ENOTSUPP, 'ENOTSUPP');
  return m;
})();

/** errno -> symbolic name (ENOENT), or `errno <n>` when unknown. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** errno -> text, through libbpf_strerror (which knows libbpf's own 4000+ codes too). */
export function errnoText(errno: number): string {
  if (errno === ENOTSUPP) return 'Operation not supported by this map or kernel';
  try {
    const buf = Buffer.alloc(256);
    native().libbpf_strerror(errno, buf, buf.length);
    const text = buf.subarray(0, buf.indexOf(0)).toString();
    if (text !== '') return text;
  } catch {
    // libbpf unavailable: fall through to the bare name
  }
  return errnoName(errno);
}

/** Builds the LbError for a failed call: `<what> failed: <text> (<ENAME>)`, errno in data. */
export function bpfError(code: ErrorCode, what: string, errno: number, data: Record<string, unknown> = {}, log?: string): LbError {
  const name = errnoName(errno);
  const text = errnoText(errno);
  let message = `${what} failed: ${text} (${name})`;
  if (log !== undefined && log.trim() !== '') message += `\n${tailLines(log, 40)}`;
  return new LbError(code, message, { ...data, errno, errnoName: name, errnoText: text, ...(log ? { log } : {}) });
}

/** Returns ret when >= 0; otherwise throws the LbError for errno = -ret. */
export function check(ret: number, code: ErrorCode, what: string, data: Record<string, unknown> = {}): number {
  if (ret < 0) throw bpfError(code, what, -ret, data);
  return ret;
}

function tailLines(text: string, n: number): string {
  const lines = text.trimEnd().split('\n');
  return (lines.length > n ? ['...', ...lines.slice(-n)] : lines).join('\n');
}

// ---- native memory for pointers inside structs ----

/** A block of native memory with a stable address (freed explicitly). */
export class NativeMemory {
  readonly size: number;
  readonly address: bigint;
  private ptr: unknown;

  /** zero: clear the memory (skip it for big scratch buffers, whose pages stay untouched until used). */
  constructor(size: number, zero = true) {
    this.size = Math.max(1, size);
    this.ptr = koffi.alloc('uint8_t', this.size);
    this.address = BigInt(koffi.address(this.ptr));
    if (zero) this.view().fill(0);
  }

  static from(data: Buffer | string): NativeMemory {
    const bytes = typeof data === 'string' ? Buffer.from(`${data}\0`) : data;
    const mem = new NativeMemory(bytes.length);
    bytes.copy(mem.view());
    return mem;
  }

  /** A Buffer aliasing the memory (valid until free). */
  view(length = this.size): Buffer {
    return Buffer.from(koffi.view(this.ptr, length));
  }

  free(): void {
    if (this.ptr !== null) koffi.free(this.ptr);
    this.ptr = null;
  }
}

/** Runs fn with native copies of the given sizes, freeing them afterwards. */
export function withNative<T>(sizes: number[], fn: (...mems: NativeMemory[]) => T): T {
  const mems: NativeMemory[] = [];
  try {
    for (const size of sizes) mems.push(new NativeMemory(size));
    return fn(...mems);
  } finally {
    for (const m of mems) m.free();
  }
}

// ---- libbpf log capture ----

const LIBBPF_WARN = 0;
const PRINT_BUF_SIZE = 16 << 20; // libbpf's verifier log buffer is at most 16 MiB

let captures: string[][] = [];

/**
 * Runs fn collecting libbpf's warnings (verifier logs included); returns fn's result and the log.
 * Outside a capture, warnings go to stderr as libbpf's default printer would.
 */
export function captureLibbpfLog<T>(fn: () => T): { result: T; log: string } {
  native();
  const lines: string[] = [];
  captures.push(lines);
  try {
    const result = fn();
    return { result, log: lines.join('') };
  } catch (err) {
    if (err instanceof LbError && lines.length > 0 && err.data.log === undefined) {
      err.data.log = lines.join('');
    }
    throw err;
  } finally {
    captures = captures.filter((c) => c !== lines);
  }
}

/**
 * Calls a libbpf function that returns 0 or -errno, keeping its warnings (for netlink calls: the
 * kernel's extended ack, e.g. "Underlying driver does not support XDP in native mode") out of
 * stderr and handing them back for the error message.
 */
export function quietCall(fn: () => number): { ret: number; log: string } {
  const { result, log } = captureLibbpfLog(fn);
  return { ret: result, log: log.replaceAll('libbpf: Kernel error message: ', 'kernel: ') };
}

/** The warnings collected so far inside the innermost capture (for errors raised inside it). */
/**
 * Runs fn with SIGPROF blocked on this thread. The verifier gives up with EAGAIN as soon as a
 * signal is pending, and a CPU profiler (`node --cpu-prof`) sends SIGPROF every millisecond or less,
 * more often than a program takes to verify; a blocked signal does not count as pending. The
 * profiler's samples for the call are lost, nothing else is.
 */
export function withoutProfilerSignal<T>(fn: () => T): T {
  const set = Buffer.alloc(SIGSET_BYTES);
  set[(SIGPROF - 1) >> 3] = 1 << ((SIGPROF - 1) & 7);
  const old = Buffer.alloc(SIGSET_BYTES);
  const n = native();
  if (n.pthread_sigmask(SIG_BLOCK, set, old) !== 0) return fn();
  try {
    return fn();
  } finally {
    n.pthread_sigmask(SIG_SETMASK, old, null);
  }
}
const SIGSET_BYTES = 128; // glibc's sigset_t
const SIGPROF = 27; // x86-64 and arm64 alike
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;

export function currentLibbpfLog(): string {
  return captures.at(-1)?.join('') ?? '';
}

// ---- bindings ----

type Ptr = unknown;

export interface Native {
  bpf_object__open_file(path: string, opts: Buffer | null): Ptr;
  bpf_object__load(obj: Ptr): number;
  pthread_sigmask(how: number, set: Buffer | null, oldset: Buffer | null): number;
  bpf_object__close(obj: Ptr): void;
  bpf_object__find_program_by_name(obj: Ptr, name: string): Ptr;
  bpf_object__next_map(obj: Ptr, prev: Ptr | null): Ptr;
  bpf_map__name(map: Ptr): string;
  bpf_map__type(map: Ptr): number;
  bpf_map__key_size(map: Ptr): number;
  bpf_map__value_size(map: Ptr): number;
  bpf_map__max_entries(map: Ptr): number;
  bpf_map__set_pin_path(map: Ptr, path: string | null): number;
  bpf_map__reuse_fd(map: Ptr, fd: number): number;
  bpf_program__fd(prog: Ptr): number;
  bpf_program__attach_tracepoint(prog: Ptr, category: string, name: string): Ptr;
  bpf_link__pin(link: Ptr, path: string): number;
  bpf_link__destroy(link: Ptr): number;
  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: Buffer | null): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: number[]): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint | number): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_map_lookup_batch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: number[], opts: Buffer): number;
  bpf_map_update_batch(fd: number, keys: Buffer, values: Buffer, count: number[], opts: Buffer): number;
  bpf_map_delete_batch(fd: number, keys: Buffer, count: number[], opts: Buffer): number;
  bpf_prog_test_run_opts(fd: number, opts: Buffer): number;
  bpf_xdp_attach(ifindex: number, progFd: number, flags: number, opts: Buffer | null): number;
  bpf_xdp_query(ifindex: number, flags: number, opts: Buffer): number;
  bpf_tc_hook_create(hook: Buffer): number;
  bpf_tc_hook_destroy(hook: Buffer): number;
  bpf_tc_attach(hook: Buffer, opts: Buffer): number;
  bpf_tc_detach(hook: Buffer, opts: Buffer): number;
  bpf_tc_query(hook: Buffer, opts: Buffer): number;
  libbpf_strerror(err: number, buf: Buffer, size: number): number;
  close(fd: number): number;
  mount(source: string, target: string, fstype: string, flags: number, data: null): number;
  if_nametoindex(name: string): number;
  if_indextoname(index: number, buf: Buffer): Ptr;
  if_nameindex(): Ptr;
  if_freenameindex(p: Ptr): void;
  errno(): number;
}

let cached: Native | undefined;
// Kept referenced for the life of the process: libbpf holds the callback pointer.
let printCallback: unknown;
let printBuffer: NativeMemory | undefined;

/** The bindings, loading libbpf.so.1 and libc on first use. */
export function native(): Native {
  if (cached) return cached;
  let bpf: LibraryHandle;
  let libc: LibraryHandle;
  try {
    bpf = koffi.load('libbpf.so.1');
    libc = koffi.load('libc.so.6');
  } catch (err) {
    throw new LbError('LB_BPF_OPEN', `cannot load libbpf.so.1 (install libbpf1): ${(err as Error).message}`, {}, { cause: err });
  }
  const f = (decl: string, lib = bpf) => lib.func(decl) as (...args: unknown[]) => unknown;
  const n = {
    bpf_object__open_file: f('void *bpf_object__open_file(const char *path, const void *opts)'),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__find_program_by_name: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    bpf_object__next_map: f('void *bpf_object__next_map(void *obj, void *prev)'),
    bpf_map__name: f('const char *bpf_map__name(void *map)'),
    bpf_map__type: f('int bpf_map__type(void *map)'),
    bpf_map__key_size: f('uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f('uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__set_pin_path: f('int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__reuse_fd: f('int bpf_map__reuse_fd(void *map, int fd)'),
    bpf_program__fd: f('int bpf_program__fd(void *prog)'),
    bpf_program__attach_tracepoint: f('void *bpf_program__attach_tracepoint(void *prog, const char *category, const char *name)'),
    bpf_link__pin: f('int bpf_link__pin(void *link, const char *path)'),
    bpf_link__destroy: f('int bpf_link__destroy(void *link)'),
    bpf_link_create: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    bpf_obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_obj_get_info_by_fd: f('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32_t *len)'),
    bpf_prog_get_fd_by_id: f('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Inout_ void *value)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, _Inout_ void *next)'),
    bpf_map_lookup_batch: f('int bpf_map_lookup_batch(int fd, void *in_batch, _Inout_ void *out_batch, _Inout_ void *keys, _Inout_ void *values, _Inout_ uint32_t *count, const void *opts)'),
    bpf_map_update_batch: f('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)'),
    bpf_map_delete_batch: f('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)'),
    bpf_prog_test_run_opts: f('int bpf_prog_test_run_opts(int fd, _Inout_ void *opts)'),
    bpf_xdp_attach: f('int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, const void *opts)'),
    bpf_xdp_query: f('int bpf_xdp_query(int ifindex, int flags, _Inout_ void *opts)'),
    bpf_tc_hook_create: f('int bpf_tc_hook_create(_Inout_ void *hook)'),
    bpf_tc_hook_destroy: f('int bpf_tc_hook_destroy(_Inout_ void *hook)'),
    bpf_tc_attach: f('int bpf_tc_attach(const void *hook, _Inout_ void *opts)'),
    bpf_tc_detach: f('int bpf_tc_detach(const void *hook, const void *opts)'),
    bpf_tc_query: f('int bpf_tc_query(const void *hook, _Inout_ void *opts)'),
    libbpf_strerror: f('int libbpf_strerror(int err, _Out_ char *buf, size_t size)'),
    close: f('int close(int fd)', libc),
    pthread_sigmask: f('int pthread_sigmask(int how, const void *set, _Out_ void *oldset)', libc),
    mount: f('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)', libc),
    if_nametoindex: f('unsigned int if_nametoindex(const char *name)', libc),
    if_indextoname: f('void *if_indextoname(unsigned int index, _Out_ char *buf)', libc),
    if_nameindex: f('void *if_nameindex()', libc),
    if_freenameindex: f('void if_freenameindex(void *p)', libc),
    errno: () => koffi.errno(),
  } as unknown as Native;

  // libbpf's printer is one per process, and a koffi callback runs on the thread that registered
  // it (a call from another thread waits for that thread's event loop). So only the main thread
  // registers one: a printer registered by a worker (the daemon's apply worker) would make the
  // main thread's libbpf calls wait for the worker's apply, and crash the process once the worker
  // is gone. libbpf's warnings in a worker thread go to the main thread's printer (stderr), not
  // into the worker's error messages.
  if (isMainThread) {
    // libbpf hands its printer a va_list; vsnprintf formats it (a va_list decays to a pointer on
    // x86-64, and is passed by reference on arm64, so `void *` carries it on both).
    const vsnprintf = libc.func('int vsnprintf(void *buf, size_t size, const char *fmt, void *ap)') as
      (buf: bigint, size: number, fmt: string, ap: unknown) => number;
    const PrintFn = koffi.proto('int lb_libbpf_print_fn(int level, const char *fmt, void *ap)');
    const setPrint = bpf.func('void *libbpf_set_print(lb_libbpf_print_fn *fn)') as (fn: unknown) => unknown;
    printBuffer = new NativeMemory(PRINT_BUF_SIZE, false);
    const buffer = printBuffer;
    printCallback = koffi.register((level: number, fmt: string, ap: unknown): number => {
      if (level !== LIBBPF_WARN) return 0;
      try {
        const len = vsnprintf(buffer.address, buffer.size, fmt, ap);
        const text = len > 0 ? buffer.view(Math.min(len, buffer.size - 1)).toString('utf8') : '';
        const sink = captures.at(-1);
        if (sink) sink.push(text);
        else process.stderr.write(text);
      } catch {
        // never throw into C
      }
      return 0;
    }, koffi.pointer(PrintFn));
    setPrint(printCallback);
  }
  cached = n;
  return n;
}

/** Closes a file descriptor (BPF object fds are plain fds). Errors are ignored: nothing to do. */
export function closeFd(fd: number): void {
  if (fd >= 0) native().close(fd);
}

// ---- object info ----

export interface MapInfo { type: number; id: number; keySize: number; valueSize: number; maxEntries: number; flags: number; name: string }
export interface ProgInfo { type: number; id: number; tag: string; name: string; mapIds: number[] }

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end === -1 ? buf.length : end).toString('utf8');
}

/** bpf_obj_get_info_by_fd for a map. */
export function mapInfo(fd: number, what: Record<string, unknown> = {}): MapInfo {
  const info = Buffer.alloc(MAP_INFO.size);
  const len = [info.length];
  check(native().bpf_obj_get_info_by_fd(fd, info, len), 'LB_BPF_MAP', 'bpf_obj_get_info_by_fd (map)', what);
  return {
    type: info.readUInt32LE(MAP_INFO.type), id: info.readUInt32LE(MAP_INFO.id),
    keySize: info.readUInt32LE(MAP_INFO.key_size), valueSize: info.readUInt32LE(MAP_INFO.value_size),
    maxEntries: info.readUInt32LE(MAP_INFO.max_entries), flags: info.readUInt32LE(MAP_INFO.map_flags),
    name: cString(info.subarray(MAP_INFO.name, MAP_INFO.name + 16)),
  };
}

const MAX_MAP_IDS = 64;

/** bpf_obj_get_info_by_fd for a program, with the ids of the maps it uses. */
export function progInfo(fd: number, what: Record<string, unknown> = {}): ProgInfo {
  return withNative([4 * MAX_MAP_IDS], (ids) => {
    const info = Buffer.alloc(PROG_INFO.size);
    info.writeUInt32LE(MAX_MAP_IDS, PROG_INFO.nr_map_ids);
    info.writeBigUInt64LE(ids.address, PROG_INFO.map_ids);
    const len = [info.length];
    check(native().bpf_obj_get_info_by_fd(fd, info, len), 'LB_BPF_PIN', 'bpf_obj_get_info_by_fd (program)', what);
    const count = Math.min(info.readUInt32LE(PROG_INFO.nr_map_ids), MAX_MAP_IDS);
    const idView = ids.view();
    const mapIds: number[] = [];
    for (let i = 0; i < count; i++) mapIds.push(idView.readUInt32LE(4 * i));
    return {
      type: info.readUInt32LE(PROG_INFO.type), id: info.readUInt32LE(PROG_INFO.id),
      tag: info.subarray(PROG_INFO.tag, PROG_INFO.tag + 8).toString('hex'),
      name: cString(info.subarray(PROG_INFO.name, PROG_INFO.name + 16)), mapIds,
    };
  });
}

/** The info of the program with this id, or undefined when it is gone. */
export function progInfoById(id: number): ProgInfo | undefined {
  const fd = native().bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    if (-fd === koffi.os.errno.ENOENT) return undefined;
    throw bpfError('LB_BPF_ATTACH', `bpf_prog_get_fd_by_id(${id})`, -fd, { progId: id });
  }
  try {
    return progInfo(fd, { progId: id });
  } finally {
    closeFd(fd);
  }
}

// ---- BPF_PROG_TEST_RUN ----

export interface TestRunResult { retval: number; data: Buffer; durationNs: number }

/**
 * BPF_PROG_TEST_RUN of the XDP or TC program `fd` on one frame, `repeat` times (durationNs: the
 * kernel's average per run). With ifindex the frame arrives on that device of the calling thread's
 * network namespace (xdp_md.ingress_ifindex / __sk_buff.ifindex); without, the kernel's default
 * context. `what` and `data` name the program in the error.
 */
export function progTestRun(fd: number, kind: 'xdp' | 'tc', packet: Buffer, opts: { ifindex?: number; repeat: number },
  what: string, data: Record<string, unknown> = {}): TestRunResult {
  const outSize = packet.length + 1024; // room for XDP head/tail adjustments
  let ctx: Buffer | undefined;
  if (opts.ifindex !== undefined && kind === 'xdp') {
    ctx = Buffer.alloc(XDP_MD.size);
    ctx.writeUInt32LE(packet.length, XDP_MD.data_end);
    ctx.writeUInt32LE(opts.ifindex, XDP_MD.ingress_ifindex);
  } else if (opts.ifindex !== undefined) {
    ctx = Buffer.alloc(SK_BUFF.size);
    // The skb arrives on this device: lb_tc_ingress reads ingress_ifindex, as on a real ingress.
    ctx.writeUInt32LE(opts.ifindex, SK_BUFF.ifindex);
    ctx.writeUInt32LE(opts.ifindex, SK_BUFF.ingress_ifindex);
  }
  const ctxSize = ctx?.length ?? 0;
  return withNative([packet.length, outSize, ctxSize], (dataIn, dataOut, ctxIn) => {
    packet.copy(dataIn.view());
    if (ctx) ctx.copy(ctxIn.view());
    const o = Buffer.alloc(TEST_RUN_OPTS.size);
    o.writeBigUInt64LE(BigInt(TEST_RUN_OPTS.size), 0);
    o.writeBigUInt64LE(dataIn.address, TEST_RUN_OPTS.data_in);
    o.writeBigUInt64LE(dataOut.address, TEST_RUN_OPTS.data_out);
    o.writeUInt32LE(packet.length, TEST_RUN_OPTS.data_size_in);
    o.writeUInt32LE(outSize, TEST_RUN_OPTS.data_size_out);
    if (ctx) {
      o.writeBigUInt64LE(ctxIn.address, TEST_RUN_OPTS.ctx_in);
      o.writeUInt32LE(ctxSize, TEST_RUN_OPTS.ctx_size_in);
    }
    o.writeInt32LE(opts.repeat, TEST_RUN_OPTS.repeat);
    const ret = native().bpf_prog_test_run_opts(fd, o);
    if (ret < 0) throw bpfError('LB_BPF_TEST_RUN', `BPF_PROG_TEST_RUN of ${what}`, -ret, data);
    const size = Math.min(o.readUInt32LE(TEST_RUN_OPTS.data_size_out), outSize);
    return {
      retval: o.readInt32LE(TEST_RUN_OPTS.retval),
      data: Buffer.from(dataOut.view(size)),
      durationNs: o.readUInt32LE(TEST_RUN_OPTS.duration),
    };
  });
}

/**
 * Runs a program that takes no packet (a raw tracepoint program) once with BPF_PROG_TEST_RUN, with
 * an empty context; returns its return value.
 */
export function progTestRunNoData(fd: number, what: string, data: Record<string, unknown> = {}): number {
  const o = Buffer.alloc(TEST_RUN_OPTS.size);
  o.writeBigUInt64LE(BigInt(TEST_RUN_OPTS.size), 0);
  const ret = native().bpf_prog_test_run_opts(fd, o);
  if (ret < 0) throw bpfError('LB_BPF_TEST_RUN', `BPF_PROG_TEST_RUN of ${what}`, -ret, data);
  return o.readInt32LE(TEST_RUN_OPTS.retval);
}
