// The daemon's connection events: the ring's records (EventStream, read by a worker thread), the
// closes no packet announces (FlowTracker, fed by a sweep of lb_flows every sweepIntervalMs), and
// the names of things (proxy, listener, backend), delivered in order to the sinks: the access log,
// the latency histograms and counters, the recent closes `lb top` shows. The SNI acceptor's
// connections, which no ring reports, are published to the same sinks (publish()).
//
// The instance may have no data plane yet (first apply pending) or lose it (`lb down`): each sweep
// tick retries the stream until the pins are there. Errors are kept for the status, never thrown.

import {
  LB_EVS_DROPPED, LB_EVS_EMITTED, decodeFlow, decodeFlowKey, encodeFlowKey, type CloseReason, type ConnEvent,
} from '../../core/abi.js';
import type { ConntrackEntry } from '../../dataplane/unanswered-flows.js';
import { instanceComplete, pinnedDataPlane, type DataPlane } from '../../dataplane/index.js';
import { readCtl } from '../../dataplane/generation.js';
import { readLive, type LiveState } from '../../state/live.js';
import { statSync } from 'node:fs';
import { ConnBatch, type ListenerNames } from './conn-batch.js';
import { EventStream, eventsPinPath } from './event-stream.js';
import { FlowTracker } from './flow-tracker.js';
import { listenerNamesOf, type ListenerNameTable } from './listener-names.js';

export type { ConnRecord } from './conn-batch.js';

/** Receives every batch, names and clock set; reads the kept records in place (or as objects: batch.records()). */
export type EventSink = (batch: ConnBatch) => void;

export interface EventHubOptions {
  instance: string;
  /** How often lb_flows is swept for silent closes (default 5000 ms). */
  sweepIntervalMs?: number;
  log?: { warn: (obj: object, msg: string) => void };
}

export interface EventHubStats {
  /** The ring is being read. */
  streaming: boolean;
  consumed: number;
  /** Records the kernel submitted, and those it dropped because the ring was full (all CPUs). */
  kernelEmitted: bigint;
  kernelDropped: bigint;
  /** Closes the sweep emitted: idle timeouts and LRU evictions. */
  swept: number;
  trackedFlows: number;
  error?: string;
}

interface Names {
  serial: number;
  listeners: Map<number, ListenerNames>;
  /**
   * Every listener of the generation found its proxy in the logical state. When not (a state
   * written after the maps), the next sweep reads again; when so, not until the serial moves: a
   * data plane with no listener (only SNI proxies, served by the acceptor) was read whole every
   * sweep.
   */
  named: boolean;
}

export class EventHub {
  private stream: EventStream | undefined;
  /** Inode of the pinned ring the stream maps: `lb down` and a new apply pin another ring. */
  private streamPin: number | undefined;
  private consumedEarlier = 0;
  private starting: Promise<void> | undefined;
  private readonly tracker = new FlowTracker();
  private readonly sinks: EventSink[] = [];
  private readonly pressure: Array<() => Promise<void> | undefined> = [];
  private readonly activeSinks: Array<(counts: Map<string, number>) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private names: Names = { serial: -1, listeners: new Map(), named: false };
  private kernel = { emitted: 0n, dropped: 0n };
  private swept = 0;
  private error: string | undefined;
  private stopped = false;
  /** The active generation's conntrack timeouts (0: the data plane's default). */
  private settings = { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0 };
  /** The names of the live state an apply read back (its verify step): not read from the maps again. */
  private given: ListenerNameTable | undefined;
  private namesHeld: () => boolean = () => false;

  constructor(private readonly opts: EventHubOptions) {}

  addSink(sink: EventSink): void {
    this.sinks.push(sink);
  }

  /**
   * A sink that cannot take more for now (the access log's queue half full) returns a promise;
   * the stream waits for it before the next batch, so records wait in the ring, not in memory.
   */
  addBackpressure(check: () => Promise<void> | undefined): void {
    this.pressure.push(check);
  }

  private backpressure(): Promise<void> | undefined {
    const waits = this.pressure.map((c) => c()).filter((p): p is Promise<void> => p !== undefined);
    return waits.length > 0 ? Promise.all(waits).then(() => undefined) : undefined;
  }

  /** Receives, after each sweep, the open flows per "proxy\0backend addr:port". */
  addActiveSink(sink: (counts: Map<string, number>) => void): void {
    this.activeSinks.push(sink);
  }

  /** Starts streaming (when the instance is pinned) and the sweep timer. */
  async start(): Promise<void> {
    await this.ensureStream();
    const every = this.opts.sweepIntervalMs ?? 5000;
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  /**
   * The live state the daemon's last apply verified, or the listener names its apply worker made of
   * it (ReconcileOutcome.names). The next sweep takes the names from it when its serial is the
   * maps' serial; only a change made elsewhere (`lb apply`, a heal) makes the sweep read the whole
   * live state again, on the daemon's thread (10,000 listeners: seconds).
   */
  useLive(live: LiveState): void {
    if (live.exists) this.useNames(listenerNamesOf(live));
  }

  useNames(table: ListenerNameTable): void {
    if (table.serial !== this.names.serial) this.given = table;
  }

  /**
   * While `busy()` (the daemon's reconcile or heal is running: its apply may have flipped the maps
   * already), a new generation's names are not read from the maps: the apply hands them over when
   * it ends (useNames), and reading 10,000 listeners here would hold the daemon's thread for
   * seconds while the apply runs in its worker. The sweep keeps the names it has meanwhile.
   */
  holdNamesWhile(busy: () => boolean): void {
    this.namesHeld = busy;
  }

  stats(): EventHubStats {
    return {
      streaming: this.stream !== undefined, consumed: this.consumedEarlier + (this.stream?.consumed ?? 0), kernelEmitted: this.kernel.emitted,
      kernelDropped: this.kernel.dropped, swept: this.swept, trackedFlows: this.tracker.tracked, ...(this.error ? { error: this.error } : {}),
    };
  }

  private ensureStream(): Promise<void> {
    if (this.stream || this.stopped) return Promise.resolve();
    if (!instanceComplete(this.opts.instance)) return Promise.resolve();
    const pin = pinInode(this.opts.instance);
    this.starting ??= EventStream.start({
      instance: this.opts.instance,
      onEvents: (batch) => this.ingest(batch),
      onError: (message) => { this.error = message; },
    }).then((s) => {
      if (this.stopped) void s.stop();
      else {
        this.stream = s;
        this.streamPin = pin;
      }
      this.error = undefined;
    }, (err: unknown) => {
      this.error = err instanceof Error ? err.message : String(err);
      this.opts.log?.warn({ err: this.error }, 'connection events: cannot read the lb_events ring');
    }).finally(() => { this.starting = undefined; });
    return this.starting;
  }

  /** One sweep now (the timer's work; tests call it to not wait for the interval). */
  async tick(): Promise<void> {
    if (this.stream && pinInode(this.opts.instance) !== this.streamPin) {
      // The instance was taken down (and maybe loaded again): the mapped ring is not the data plane's any more.
      const old = this.stream;
      this.stream = undefined;
      this.consumedEarlier += old.consumed;
      await old.stop();
    }
    await this.ensureStream();
    try {
      this.sweep();
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
  }

  /** The names of the active generation's listeners, read again when the generation changed. */
  private loadNames(dp: DataPlane): void {
    const serial = readCtl(dp).serial;
    if (serial === this.names.serial && this.names.named) return;
    if (this.given?.serial !== serial && this.namesHeld()) return;
    // The apply's names when they are those of the generation in the maps (useNames), else a read.
    const table = this.given?.serial === serial ? this.given : listenerNamesOf(readLive(this.opts.instance, { dp }));
    this.given = undefined;
    this.names = { serial: table.serial, listeners: table.listeners, named: table.named };
    this.settings = table.settings;
  }

  private snapshot(dp: DataPlane): ConntrackEntry[] {
    return dp.maps.lb_flows.lookupBatch().map(([k, v]) => ({ key: decodeFlowKey(k), value: decodeFlow(v) }));
  }

  private sweep(): void {
    pinnedDataPlane(this.opts.instance).read((dp) => {
      this.kernel = { emitted: sumPerCpu(dp, LB_EVS_EMITTED), dropped: sumPerCpu(dp, LB_EVS_DROPPED) };
      this.loadNames(dp);
      const now = process.hrtime.bigint();
      const { closes, deleteKeys } = this.tracker.sweep(this.snapshot(dp), now, this.settings);
      for (const k of deleteKeys) dp.maps.lb_flows.delete(encodeFlowKey(k));
      this.swept += closes.length;
      if (closes.length > 0) this.deliver(ConnBatch.of(closes));
      if (this.activeSinks.length > 0) {
        const counts = this.tracker.countOpen((listenerId, backend, port) => `${this.names.listeners.get(listenerId)?.proxy ?? '?'}\0${backend}:${port}`);
        for (const sink of this.activeSinks) sink(counts);
      }
    });
  }

  /**
   * Ends the flows of a proxy still on the given backends ("addr:port"): their conntrack entries
   * are deleted and their closes delivered with `reason` (a drain that timed out: 'drain').
   * Returns how many; 0 without a data plane.
   */
  endFlows(proxy: string, backends: ReadonlySet<string>, reason: CloseReason): number {
    return pinnedDataPlane(this.opts.instance).read((dp) => {
      this.loadNames(dp);
      const match = (e: ConnEvent): boolean => this.names.listeners.get(e.listenerId)?.proxy === proxy && backends.has(`${e.backend}:${e.backendPort}`);
      const { closes, deleteKeys } = this.tracker.end(this.snapshot(dp), process.hrtime.bigint(), match, reason);
      for (const k of deleteKeys) dp.maps.lb_flows.delete(encodeFlowKey(k));
      if (closes.length > 0) this.deliver(ConnBatch.of(closes));
      return closes.length;
    }) ?? 0;
  }

  /**
   * One batch from the ring: duplicate closes dropped, names and clock set, every sink called.
   * A promise: a sink wants the next batch to wait (backpressure).
   */
  ingest(batch: ConnBatch): Promise<void> | undefined {
    this.tracker.onBatch(batch);
    this.deliver(batch);
    return this.backpressure();
  }

  private deliver(batch: ConnBatch): void {
    if (batch.kept === 0) return;
    // CLOCK_MONOTONIC (bpf_ktime_get_ns, process.hrtime) -> wall clock, once per batch.
    batch.offsetMs = Date.now() - Number(process.hrtime.bigint() / 1000n) / 1000;
    batch.names = this.names.listeners;
    for (const sink of this.sinks) {
      try {
        sink(batch);
      } catch (err) {
        this.opts.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'connection events: a sink failed');
      }
    }
  }

  /** Records made outside the ring (the SNI acceptor's: AcceptorRecords), to the same sinks in the same order. */
  publish(batch: ConnBatch): void {
    this.deliver(batch);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.starting;
    await this.stream?.stop();
    this.stream = undefined;
  }
}

function pinInode(instance: string): number | undefined {
  try {
    return statSync(eventsPinPath(instance)).ino;
  } catch {
    return undefined;
  }
}

function sumPerCpu(dp: DataPlane, idx: number): bigint {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(idx);
  return (dp.maps.lb_ev_stats.lookupPerCpu(key) ?? []).reduce((a, v) => a + v.readBigUInt64LE(0), 0n);
}
