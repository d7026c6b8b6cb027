// libbpf's ring buffer consumer (ring_buffer__new / ring_buffer__consume) through koffi, for
// bench/events.ts's comparison with the daemon's reader (src/observe/events/ring-reader.ts, which
// maps the ring and copies committed records in one pass). libbpf calls back once per record, and
// each callback is a C -> JS transition; the callback copies the record into one Buffer, as the
// mapped reader does, so both end with the same batch.

import koffi, { type TypeObject } from 'koffi';
import { BenchError } from './errors.js';

interface Calls {
  objGet(path: string): number;
  close(fd: number): number;
  ringNew(fd: number, cb: bigint, ctx: null, opts: null): unknown;
  consume(rb: unknown): number;
  free(rb: unknown): void;
}

let calls: Calls | undefined;
let sampleFn: TypeObject | undefined;

function bindings(): { c: Calls; proto: TypeObject } {
  if (calls && sampleFn) return { c: calls, proto: sampleFn };
  const bpf = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  sampleFn = koffi.proto('int lb_bench_ring_sample(void *ctx, void *data, size_t size)');
  calls = {
    objGet: bpf.func('int bpf_obj_get(const char *path)'),
    close: libc.func('int close(int fd)'),
    ringNew: bpf.func('ring_buffer__new', 'void *', ['int', koffi.pointer(sampleFn), 'void *', 'void *']),
    consume: bpf.func('int ring_buffer__consume(void *rb)'),
    free: bpf.func('void ring_buffer__free(void *rb)'),
  } as unknown as Calls;
  return { c: calls, proto: sampleFn };
}

export class LibbpfRing {
  private readonly fd: number;
  private readonly rb: unknown;
  private readonly cb: bigint;
  private out = Buffer.alloc(0);
  private count = 0;

  constructor(path: string, private readonly recordSize: number) {
    const { c, proto } = bindings();
    this.fd = c.objGet(path);
    if (this.fd < 0) throw new BenchError(`bpf_obj_get(${path}) failed: ${-this.fd}`);
    this.cb = koffi.register((_ctx: unknown, data: unknown, size: number): number => {
      if (size !== this.recordSize || (this.count + 1) * this.recordSize > this.out.length) return 0;
      this.out.set(new Uint8Array(koffi.view(data, size)), this.count * this.recordSize);
      this.count++;
      return 0;
    }, koffi.pointer(proto));
    this.rb = c.ringNew(this.fd, this.cb, null, null);
    if (this.rb === null) {
      koffi.unregister(this.cb);
      c.close(this.fd);
      throw new BenchError(`ring_buffer__new on ${path} failed`);
    }
  }

  /** Every committed record now in the ring, copied into one Buffer (at most maxRecords). */
  consume(maxRecords: number): { data: Buffer; count: number } {
    this.out = Buffer.allocUnsafe(maxRecords * this.recordSize);
    this.count = 0;
    const n = bindings().c.consume(this.rb);
    if (n < 0) throw new BenchError(`ring_buffer__consume failed: ${n}`);
    return { data: this.out, count: this.count };
  }

  close(): void {
    const { c } = bindings();
    c.free(this.rb);
    koffi.unregister(this.cb);
    c.close(this.fd);
  }
}
