// Suite `events`: how many connection records per second the daemon's consumer takes from the
// lb_events ring (docs/observability.md), with the ring at its default size (LB_EVENTS_RING_BYTES).
//
// A producer compiled at run time (PRODUCER_C below) declares the same pinned ring and submits 256
// records per BPF_PROG_TEST_RUN call: open/close pairs of distinct flows, as the data plane writes
// them. It runs in this thread in bursts, yielding to the event loop between bursts, so the
// consumer under test is the daemon's own: the events worker mapping the ring (EventStream), the
// batch read in place (ConnBatch), and FlowTracker (duplicate closes, the table of open flows).
// Each phase counts what the producer submitted, what the kernel dropped (ring full) and what the
// consumer delivered; a phase ends when the producer stops and the consumer has drained the ring.
// Phases: paced at the goal's rate, and unpaced (the producer as fast as it can).
//
// Which reader: the ring is filled by the producer (no consumer running), then drained by the
// daemon's mapped reader (RingReader.read) or by libbpf's ring_buffer__consume with a koffi
// callback per record (bench/lib/libbpf-ring.ts), alternately; ns per record of each, same thread.
//
// First, without the ring: the daemon thread's cost per record (consumerCost). Batches of records
// as the worker posts them go through the event hub (FlowTracker, names, clock) to the daemon's
// sinks: the access log (JSON, the text handed to a counting stdout: formatting, not the disk) and
// ConnStats (counters, latency histogram, recent closes; the Prometheus metrics read it at scrape).

import { execFileSync } from 'node:child_process';
import koffi from 'koffi';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LB_EVENTS_RING_BYTES } from '../src/core/abi.js';
import { DataPlane } from '../src/dataplane/index.js';
import { instanceDir } from '../src/dataplane/bpffs.js';
import { NativeMemory, OBJECT_OPEN_OPTS, bpfError, native, progTestRun } from '../src/dataplane/libbpf.js';
import { AccessLog } from '../src/observe/access-log.js';
import { ConnStats } from '../src/observe/conn-stats.js';
import { ConnBatch, RECORD_SIZE } from '../src/observe/events/conn-batch.js';
import { EventHub } from '../src/observe/events/event-hub.js';
import { EventStream, eventsPinPath } from '../src/observe/events/event-stream.js';
import { RingReader } from '../src/observe/events/ring-reader.js';
import { LibbpfRing } from './lib/libbpf-ring.js';
import { median } from './lib/stats.js';
import { FlowTracker } from '../src/observe/events/flow-tracker.js';
import { BenchError } from './lib/errors.js';
import { DOOR_BATCH, doorRecordsCost } from './lib/door-records.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const GOAL_EVENTS_PER_SEC = 200_000;
const PER_CALL = 256;

const PRODUCER_C = `
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct lb_event {
	__u64 ts_ns, open_ns, packets_in, bytes_in, packets_out, bytes_out;
	__u32 client_addr, vip_addr, backend_addr, listener_id, target_id;
	__u16 client_port, vip_port, backend_port;
	__u8 proto, type, reason, pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, ${LB_EVENTS_RING_BYTES});
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} bench_ev SEC(".maps"); /* 0: submitted, 1: dropped, 2: next flow number */

static __always_inline void bump(__u32 k, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&bench_ev, &k);

	if (v)
		*v += n;
}

SEC("xdp")
int bench_emit(struct xdp_md *ctx)
{
	__u32 k = 2;
	__u64 *next = bpf_map_lookup_elem(&bench_ev, &k);
	__u64 base, now = bpf_ktime_get_ns();
	__u32 sent = 0, lost = 0;

	if (!next)
		return XDP_PASS;
	base = *next;
	*next = base + ${PER_CALL / 2};
	for (int i = 0; i < ${PER_CALL}; i++) {
		struct lb_event *e = bpf_ringbuf_reserve(&lb_events, sizeof(*e), 0);
		__u64 flow = base + i / 2;

		if (!e) {
			lost++;
			continue;
		}
		__builtin_memset(e, 0, sizeof(*e));
		e->ts_ns = now;
		e->open_ns = now;
		e->client_addr = bpf_htonl(0xac100000 | (__u32)(flow >> 16));
		e->client_port = bpf_htons((__u16)flow);
		e->vip_addr = bpf_htonl(0x0a640001);
		e->vip_port = bpf_htons(80);
		e->backend_addr = bpf_htonl(0x0a000001);
		e->backend_port = bpf_htons(8080);
		e->proto = 6;
		e->type = (i & 1) ? 2 : 1;
		e->reason = (i & 1) ? 1 : 0;
		e->packets_in = 10;
		e->bytes_in = 1000;
		bpf_ringbuf_submit(e, 0);
		sent++;
	}
	bump(0, sent);
	bump(1, lost);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
`;

interface Producer { progFd: number; countersFd: number; close(): void }

function loadProducer(dir: string, pinRoot: string): Producer {
  const src = join(dir, 'events.bpf.c');
  const obj = join(dir, 'events.bpf.o');
  writeFileSync(src, PRODUCER_C.replace('#include <bpf/bpf_helpers.h>', '#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_endian.h>'));
  const arch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8', timeout: 5000 }).trim() || 'x86_64-linux-gnu';
  execFileSync('clang', ['-O2', '-g', '-Wall', '-target', 'bpf', '-I', `/usr/include/${arch}`, '-c', src, '-o', obj], { timeout: 60_000, stdio: 'pipe' });
  const n = native();
  const root = NativeMemory.from(pinRoot);
  const opts = Buffer.alloc(OBJECT_OPEN_OPTS.size);
  opts.writeBigUInt64LE(BigInt(OBJECT_OPEN_OPTS.size), 0);
  opts.writeBigUInt64LE(root.address, OBJECT_OPEN_OPTS.pin_root_path);
  const o = n.bpf_object__open_file(obj, opts);
  root.free();
  if (o === null || o === 0n) throw bpfError('LB_BPF_OPEN', `bpf_object__open_file(${obj})`, n.errno() || 22);
  const ret = n.bpf_object__load(o);
  if (ret < 0) {
    n.bpf_object__close(o);
    throw bpfError('LB_BPF_LOAD', `loading ${obj}`, -ret);
  }
  const prog = n.bpf_object__find_program_by_name(o, 'bench_emit');
  // Not among libbpf.ts's bindings: only the benchmarks need it (as bench/lib/bpf.ts).
  findMapFd ??= koffi.load('libbpf.so.1').func('int bpf_object__find_map_fd_by_name(void *obj, const char *name)') as
    (obj: unknown, name: string) => number;
  const countersFd = findMapFd(o, 'bench_ev');
  if (countersFd < 0) throw new BenchError('the events producer has no map bench_ev');
  return { progFd: n.bpf_program__fd(prog), countersFd, close: () => n.bpf_object__close(o) };
}

let findMapFd: ((obj: unknown, name: string) => number) | undefined;

function readCounters(fd: number): { submitted: bigint; dropped: bigint } {
  const get = (k: number): bigint => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(k);
    const v = Buffer.alloc(8);
    const ret = native().bpf_map_lookup_elem(fd, key, v);
    if (ret < 0) throw bpfError('LB_BPF_MAP', `bench_ev[${k}]`, -ret);
    return v.readBigUInt64LE(0);
  };
  return { submitted: get(0), dropped: get(1) };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Phase { offered: number; submitted: number; dropped: number; consumed: number; seconds: number; rate: number; producerMs: number; consumerMs: number }

async function phase(p: Producer, stream: EventStream, rate: number | null, seconds: number): Promise<Phase> {
  const frame = Buffer.alloc(64);
  const c0 = readCounters(p.countersFd);
  const consumed0 = stream.consumed;
  const start = performance.now();
  let calls = 0;
  let producerMs = 0;
  const busy0 = stream.busyMs;
  for (;;) {
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= seconds) break;
    // Paced: the calls due by now; unpaced: a burst of 16 calls, then the event loop's turn.
    const due = rate === null ? calls + 16 : Math.floor((rate * elapsed) / PER_CALL);
    const t0 = performance.now();
    for (let i = 0; calls < due && i < 64; i++, calls++) progTestRun(p.progFd, 'xdp', frame, { repeat: 1 }, 'events producer');
    producerMs += performance.now() - t0;
    await tick();
  }
  const c1 = readCounters(p.countersFd);
  const submitted = Number(c1.submitted - c0.submitted);
  // Drain: the consumer has every submitted record, or has stopped making progress for 2 s.
  let last = -1;
  let still = performance.now();
  while (stream.consumed - consumed0 < submitted) {
    if (stream.consumed !== last) {
      last = stream.consumed;
      still = performance.now();
    } else if (performance.now() - still > 2000) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const end = performance.now();
  const consumed = stream.consumed - consumed0;
  const secondsTotal = (end - start) / 1000;
  return {
    offered: calls * PER_CALL, submitted, dropped: Number(c1.dropped - c0.dropped), consumed, seconds: secondsTotal,
    rate: consumed / secondsTotal, producerMs, consumerMs: stream.busyMs - busy0,
  };
}

const COST_BATCH = 4096;
const COST_BATCHES = 8;
const COST_PASSES = 40;

/** Batches of open/close pairs of distinct flows, as the worker posts them. */
function costBatches(): Buffer[] {
  const now = process.hrtime.bigint();
  return Array.from({ length: COST_BATCHES }, (_, k) => ConnBatch.of(Array.from({ length: COST_BATCH }, (_, i) => {
    const flow = k * COST_BATCH + (i >> 1);
    const close = (i & 1) === 1;
    return {
      type: close ? 'close' as const : 'open' as const, tsNs: now + (close ? 3_000_000n : 0n), openNs: now, client: `172.16.${flow >> 8}.${flow & 255}`,
      clientPort: 1024 + (flow % 60_000), vip: '10.100.0.1', vipPort: 80, backend: `10.0.0.${1 + (flow % 3)}`, backendPort: 8080, proto: 6, listenerId: 1,
      targetId: 1 + (flow % 3), reason: close ? 'fin' as const : '' as const, packetsIn: close ? 6n : 1n, bytesIn: close ? 480n : 60n,
      packetsOut: close ? 5n : 0n, bytesOut: close ? 1337n : 0n,
    };
  })).data);
}

interface Cost { trackerNs: number; pipelineNs: number; records: number; logBytes: number }

/** ns per record on the daemon's thread: FlowTracker alone, and the hub with the daemon's sinks. */
export async function consumerCost(): Promise<Cost> {
  const data = costBatches();
  const tracker = new FlowTracker();
  let logBytes = 0;
  const hub = new EventHub({ instance: `bench-cost-${process.pid}` }); // not started: fed by hand
  const log = new AccessLog({ enabled: true, format: 'json', path: '-', stdout: true, maxFileBytes: 1 << 30, maxFiles: 1, bufferSize: 1 << 20 }, (t) => { logBytes += t.length; });
  const stats = new ConnStats();
  hub.addSink((b) => log.add(b));
  hub.addSink((b) => stats.add(b));
  const run = async (passes: number, body: (b: ConnBatch) => void): Promise<number> => {
    const t0 = performance.now();
    for (let p = 0; p < passes; p++) {
      for (const d of data) {
        body(new ConnBatch(d, COST_BATCH));
        await log.flush(); // the write the daemon starts after each batch, to the counting stdout
      }
    }
    return ((performance.now() - t0) * 1e6) / (passes * COST_BATCHES * COST_BATCH);
  };
  await run(3, (b) => tracker.onBatch(b)); // warm-up (JIT)
  const trackerNs = await run(COST_PASSES, (b) => tracker.onBatch(b));
  await run(3, (b) => void hub.ingest(b));
  logBytes = 0;
  const pipelineNs = await run(COST_PASSES, (b) => void hub.ingest(b));
  return { trackerNs, pipelineNs, records: COST_PASSES * COST_BATCHES * COST_BATCH, logBytes };
}

const READER_ROUNDS = 5;
/** The door's records: batches measured, after unmeasured ones (the JIT). */
const DOOR_COST_BATCHES = 1000;
const DOOR_COST_WARM = 200;

/** Submits records until the ring is full (the producer's drop count moves); returns how many went in. */
function fillRing(p: Producer): number {
  const frame = Buffer.alloc(64);
  const c0 = readCounters(p.countersFd);
  const most = Math.ceil(LB_EVENTS_RING_BYTES / (RECORD_SIZE + 8) / PER_CALL) + 4;
  for (let i = 0; i < most; i++) {
    progTestRun(p.progFd, 'xdp', frame, { repeat: 1 }, 'events producer');
    if (readCounters(p.countersFd).dropped > c0.dropped) break;
  }
  return Number(readCounters(p.countersFd).submitted - c0.submitted);
}

interface ReaderCost { mappedNs: number; libbpfNs: number; records: number }

/** A full ring drained by each reader in turn: ns per record (median of READER_ROUNDS). */
function readerCost(p: Producer, instance: string): ReaderCost {
  const path = eventsPinPath(instance);
  const mapped = new RingReader(path, LB_EVENTS_RING_BYTES, RECORD_SIZE);
  const libbpf = new LibbpfRing(path, RECORD_SIZE);
  const max = Math.ceil(LB_EVENTS_RING_BYTES / (RECORD_SIZE + 8));
  let records = 0;
  const drain = (read: () => number): number => {
    const filled = fillRing(p);
    records = filled;
    const t0 = performance.now();
    let n = 0;
    for (let k = 0; k < 100; k++) {
      const got = read();
      if (got === 0) break;
      n += got;
    }
    const ns = ((performance.now() - t0) * 1e6) / Math.max(1, n);
    if (n !== filled) throw new BenchError(`a reader drained ${n} records of ${filled}`);
    return ns;
  };
  const m: number[] = [];
  const l: number[] = [];
  try {
    for (let r = 0; r < READER_ROUNDS; r++) {
      m.push(drain(() => mapped.read(max).count));
      l.push(drain(() => libbpf.consume(max).count));
    }
  } finally {
    mapped.close();
    libbpf.close();
  }
  return { mappedNs: median(m), libbpfNs: median(l), records };
}

export const eventsSuite: Suite = {
  name: 'events',
  title: 'connection events: records per second through the lb_events ring consumer',
  async run(ctx: SuiteContext): Promise<SuiteResult> {
    const instance = `bench-ev-${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), 'lb-bench-events-'));
    const dp = DataPlane.open({ instance });
    let stream: EventStream | undefined;
    let producer: Producer | undefined;
    try {
      ctx.log(`events: the daemon thread's cost per record (${COST_PASSES} x ${COST_BATCHES} batches of ${COST_BATCH})`);
      const cost = await consumerCost();
      ctx.log(`events: ${JSON.stringify(cost)}`);
      ctx.log(`events: the daemon thread's cost per SNI connection the door decided (${DOOR_COST_BATCHES} batches of ${DOOR_BATCH})`);
      const door = await doorRecordsCost(DOOR_COST_BATCHES, DOOR_COST_WARM);
      ctx.log(`events: ${JSON.stringify(door)}`);
      producer = loadProducer(dir, instanceDir(instance));
      ctx.log(`events: a full ring drained by the mapped reader and by libbpf's ring_buffer__consume, ${READER_ROUNDS} times each`);
      const readers = readerCost(producer, instance);
      ctx.log(`events: ${JSON.stringify(readers)}`);
      const tracker = new FlowTracker();
      let delivered = 0;
      stream = await EventStream.start({ instance, onEvents: (b) => { tracker.onBatch(b); delivered += b.kept; } });
      ctx.log(`events: paced at ${GOAL_EVENTS_PER_SEC}/s for 3 s`);
      const paced = await phase(producer, stream, GOAL_EVENTS_PER_SEC, 3);
      ctx.log(`events: unpaced for 3 s`);
      const max = await phase(producer, stream, null, 3);
      ctx.log(`events: paced ${JSON.stringify(paced)}; unpaced ${JSON.stringify(max)}`);
      const m = (key: string, label: string, p: Phase): Measurement => ({
        key, label, value: Math.round(p.rate), unit: 'events/s',
        detail: { submitted: p.submitted, consumed: p.consumed, droppedRingFull: p.dropped, seconds: Number(p.seconds.toFixed(2)) },
      });
      const ratios: Ratio[] = [
        { key: 'events_paced_drops', label: `records dropped at ${GOAL_EVENTS_PER_SEC.toLocaleString('en-US')}/s (ring of ${LB_EVENTS_RING_BYTES >> 20} MiB)`, value: paced.dropped + (paced.submitted - paced.consumed), goal: 0, atMost: true, unit: 'records' },
        { key: 'events_read_libbpf_over_mapped', label: 'libbpf ring_buffer__consume / mapped reader, ns per record', value: Number((readers.libbpfNs / readers.mappedNs).toFixed(2)) },
        { key: 'events_paced_rate', label: 'consumer rate at the paced load over the goal', value: Number((paced.consumed / paced.seconds / GOAL_EVENTS_PER_SEC).toFixed(2)), goal: 0.95, note: 'the phase includes the drain, so slightly under 1 when the consumer keeps up' },
      ];
      return {
        suite: 'events', title: this.title,
        method: [
          `Cost per record: ${COST_PASSES} passes over ${COST_BATCHES} batches of ${COST_BATCH} records (open/close pairs of distinct flows, as the worker posts them) through FlowTracker alone, then through the event hub with the daemon's sinks (JSON access log handed to a counting stdout, ConnStats); CPU time of this thread per record.`,
          `Cost per SNI connection the native door decided: its records (DECIDED, OPENED, ENDED), ${DOOR_BATCH} connections per batch as the door sends them, through the daemon's DoorAcceptor (accounting per route and backend, the connection events) to the event hub and the same sinks; ${DOOR_COST_BATCHES} batches after ${DOOR_COST_WARM} unmeasured; CPU time of this thread per connection.`,
          `Readers: the ring filled by the producer (no consumer running), then drained by the mapped reader (RingReader.read) or libbpf's ring_buffer__consume with a koffi callback copying each record into one Buffer; alternately, ${READER_ROUNDS} times each, median ns per record.`,
          `A producer XDP program compiled at run time submits ${PER_CALL} records (open/close pairs of distinct flows) per BPF_PROG_TEST_RUN call into a fresh instance's pinned lb_events ring (${LB_EVENTS_RING_BYTES >> 20} MiB, the default).`,
          'The consumer is the daemon\'s: the events worker thread mapping the ring (EventStream), the batch read in place, FlowTracker; producer and consumer share this process\'s two CPUs.',
          `Paced: ${GOAL_EVENTS_PER_SEC}/s for 3 s; unpaced: as fast as the producer goes for 3 s. Rate = records consumed / (production + drain time).`,
        ],
        measurements: [
          {
            key: 'events_cost_tracker', label: 'daemon thread per record: FlowTracker on a batch', value: Math.round(cost.trackerNs), unit: 'ns/record',
            detail: { records: cost.records },
          },
          {
            key: 'events_cost_pipeline', label: 'daemon thread per record: event hub, JSON access log (formatted, not written), ConnStats', value: Math.round(cost.pipelineNs),
            unit: 'ns/record', detail: { records: cost.records, logBytes: cost.logBytes },
          },
          {
            key: 'events_cost_sni_door', label: 'daemon thread per SNI connection the door decided: its 3 records read, accounted, 2 events to the hub and sinks', value: Number(door.usPerConn.toFixed(2)),
            unit: 'us/conn', detail: { connections: door.connections, perBatch: DOOR_BATCH, logBytes: door.logBytes },
          },
          {
            key: 'events_read_mapped', label: 'reading a full ring: the daemon\'s mapped reader (RingReader)', value: Number(readers.mappedNs.toFixed(1)), unit: 'ns/record',
            detail: { recordsPerFill: readers.records, rounds: READER_ROUNDS },
          },
          {
            key: 'events_read_libbpf', label: 'reading a full ring: libbpf ring_buffer__consume, a koffi callback per record', value: Number(readers.libbpfNs.toFixed(1)), unit: 'ns/record',
            detail: { recordsPerFill: readers.records, rounds: READER_ROUNDS },
          },
          m('events_paced', `consumed, producer paced at ${GOAL_EVENTS_PER_SEC}/s`, paced), m('events_max', 'consumed, producer unpaced', max)],
        ratios,
        notes: [`delivered after FlowTracker: ${delivered}; ${stream.batches} batches (${Math.round(stream.consumed / Math.max(1, stream.batches))} records per batch)`],
      };
    } finally {
      await stream?.stop();
      producer?.close();
      dp.close();
      DataPlane.down(instance);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
