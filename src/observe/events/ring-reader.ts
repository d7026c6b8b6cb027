// Reads the lb_events BPF ring buffer by mapping it, in batches: one pass copies every committed
// record into one Buffer, with no call per record (libbpf's ring_buffer__poll calls back once per
// record, which through koffi costs a JS <-> C transition each). Runs in the events worker
// (ring-worker.ts), where a blocking epoll_wait does not hold the daemon's event loop. Measured
// against libbpf's ring_buffer__consume with a koffi callback per record in bench/events.ts.
//
// The kernel's layout (kernel/bpf/ringbuf.c, as libbpf's ringbuf.c maps it):
//   offset 0 of the map fd:        one page, consumer_pos (u64), read-write for the consumer;
//   offset page_size:              one page, producer_pos (u64), read-only;
//   then the data pages, mapped twice back to back, so a record that wraps is contiguous.
// Each record: u32 len (bit 31 busy: not committed yet; bit 30 discarded), u32 page offset, then
// len bytes, the whole rounded up to 8. Positions only grow; offset = pos & (size - 1).
// Ordering: positions and headers are read with Atomics.load (sequentially consistent), and the
// consumer position is published with Atomics.store once a batch is copied, as libbpf does with
// smp_load_acquire / smp_store_release.

import koffi from 'koffi';
import { LbError } from '../../core/errors.js';
import { errnoName } from '../../dataplane/libbpf.js';
import { errno, libc } from '../../sys/libc.js';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
const SC_PAGESIZE = 30;
const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const HDR_SIZE = 8;
const MAP_FAILED = 0xffffffffffffffffn;

/*
 * libbpf's bpf_obj_get bound here, not through libbpf.ts's native(): that one installs libbpf's
 * print callback, which is process-wide, and a callback registered from this worker's isolate
 * would be called after the worker is gone. (src/sys/libc.ts registers no callback.)
 */
let objGet: ((path: string) => number) | undefined;
function bpfObjGet(path: string): number {
  objGet ??= koffi.load('libbpf.so.1').func('int bpf_obj_get(const char *path)') as (path: string) => number;
  return objGet(path);
}

function fail(what: string, path: string): never {
  const code = errno();
  throw new LbError('LB_BPF_MAP', `${what} of ${path} failed: ${errnoName(code)}`, { path, errno: code });
}

export interface Batch {
  /** Records back to back from offset 0, `recordSize` bytes each (shorter or longer records are skipped). */
  buf: ArrayBuffer;
  count: number;
}

export class RingReader {
  private readonly fd: number;
  private readonly epfd: number;
  private readonly pageSize: number;
  private readonly size: number;
  private readonly mask: bigint;
  private readonly consPtr: unknown;
  private readonly prodPtr: unknown;
  private readonly consPos: BigInt64Array;
  private readonly prodPos: BigInt64Array;
  /** The data pages (twice, back to back) as words: record headers and records. */
  private readonly headers: Int32Array;
  private closed = false;

  /**
   * Maps the pinned ring at `path` (its size: LB_EVENTS_RING_BYTES unless built otherwise).
   * `wakeFd`, when given, ends a wait() too once readable (the owner's stop; this reader neither
   * reads nor closes it).
   */
  constructor(readonly path: string, ringBytes: number, private readonly recordSize: number, wakeFd?: number) {
    const c = libc();
    this.fd = bpfObjGet(path);
    if (this.fd < 0) throw new LbError('LB_BPF_MAP', `bpf_obj_get(${path}) failed: ${errnoName(-this.fd)}`, { path, errno: -this.fd });
    this.pageSize = Number(c.sysconf(SC_PAGESIZE));
    this.size = ringBytes;
    this.mask = BigInt(ringBytes - 1);
    this.consPtr = c.mmap(null, this.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0);
    if (BigInt(koffi.address(this.consPtr)) === MAP_FAILED) fail('mmap (consumer page)', path);
    this.prodPtr = c.mmap(null, this.pageSize + 2 * ringBytes, PROT_READ, MAP_SHARED, this.fd, this.pageSize);
    if (BigInt(koffi.address(this.prodPtr)) === MAP_FAILED) fail('mmap (producer and data pages)', path);
    this.consPos = new BigInt64Array(koffi.view(this.consPtr, 8));
    const prod = koffi.view(this.prodPtr, this.pageSize + 2 * ringBytes);
    this.prodPos = new BigInt64Array(prod, 0, 1);
    this.headers = new Int32Array(prod, this.pageSize, (2 * ringBytes) / 4);
    this.epfd = c.epoll_create1(EPOLL_CLOEXEC);
    if (this.epfd < 0) fail('epoll_create1', path);
    const ev = Buffer.alloc(12); // struct epoll_event is packed on x86-64: u32 events, u64 data
    ev.writeUInt32LE(EPOLLIN, 0);
    if (c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, this.fd, ev) < 0) fail('epoll_ctl', path);
    if (wakeFd !== undefined && c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, wakeFd, ev) < 0) fail('epoll_ctl (wake-up descriptor)', path);
  }

  /** Records waiting (bytes between the consumer and the producer). */
  pendingBytes(): number {
    return Number(Atomics.load(this.prodPos, 0) - Atomics.load(this.consPos, 0));
  }

  /**
   * Copies up to `maxRecords` committed records into a new ArrayBuffer (the one copy: the worker
   * transfers it to the daemon's thread) and releases their space. Stops at a record still being
   * written (busy) and leaves it for the next call.
   */
  read(maxRecords: number): Batch {
    const buf = new ArrayBuffer(maxRecords * this.recordSize);
    // Word by word (records and their offsets are multiples of 8): no call per record.
    const out = new Int32Array(buf);
    const words = this.recordSize >> 2;
    let count = 0;
    // Positions as Numbers inside the loop (exact up to 2^53 bytes, ~9 PB through the ring; a
    // BigInt add and mask per record cost more than the copy), one BigInt store at the end.
    const start = Atomics.load(this.consPos, 0);
    const avail = Number(Atomics.load(this.prodPos, 0) - start);
    const base = Number(start & this.mask);
    let pos = 0;
    while (pos < avail && count < maxRecords) {
      const off = (base + pos) % this.size;
      const len = Atomics.load(this.headers, off >> 2) >>> 0;
      if ((len & BUSY_BIT) !== 0) break;
      const bytes = len & ~(BUSY_BIT | DISCARD_BIT);
      if ((len & DISCARD_BIT) === 0 && bytes === this.recordSize) {
        const from = (off + HDR_SIZE) >> 2;
        const to = count * words;
        for (let w = 0; w < words; w++) out[to + w] = this.headers[from + w]!;
        count++;
      }
      pos += (bytes + HDR_SIZE + 7) & ~7;
    }
    Atomics.store(this.consPos, 0, start + BigInt(pos));
    return { buf, count };
  }

  /** Blocks until the kernel signals new data, the wake-up descriptor is written, or timeoutMs passes (call it with nothing pending). */
  wait(timeoutMs: number): void {
    const evs = Buffer.alloc(12);
    // The worker thread blocks here: that is the point of running it there.
    libc().epoll_wait(this.epfd, evs, 1, timeoutMs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = libc();
    c.munmap(this.consPtr, this.pageSize);
    c.munmap(this.prodPtr, this.pageSize + 2 * this.size);
    c.close(this.epfd);
    c.close(this.fd);
  }
}
