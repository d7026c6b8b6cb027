// The closes no packet announces. The kernel emits a conn-close when a flow ends by FIN or RST, or
// when its next packet finds it expired (bpf/lib/events.h). A flow nobody sends on again, and a
// flow the conntrack LRU evicts, end silently; the daemon's sweep (event-hub.ts, every few
// seconds) hands this tracker a snapshot of lb_flows and it decides:
// - idle: a forward entry whose close was not emitted yet (LB_CT_EV_CLOSED clear), idle with its
//   reverse entry longer than the flow's timeout. Its close is emitted here (reason idle-timeout,
//   counters of both entries) and both entries are to be deleted, as the data plane would on the
//   next packet;
// - evicted: a flow this tracker knew (from its conn-open, or a previous snapshot) missing from two
//   snapshots in a row with no close in between. Two, because a close the kernel emitted just
//   before the snapshot may still be on its way through the ring; the counters are those of the
//   last snapshot that had it (reason lru-eviction).
// A close can reach the tracker twice (the kernel expiring a flow while the sweep deletes it): the
// second one, same flow and same open time, is dropped. The kernel emits at most one close per
// flow (__sync_fetch_and_or of LB_CT_EV_CLOSED, events.h), and the sweep never closes a flow whose
// kernel close it already had (the entry carries the flag, or is gone and the flow with it), so
// the only duplicate is a kernel close arriving after the sweep's: only the sweep's closes are
// remembered, and a ring record pays one lookup in that (mostly empty) memory, not two maps.
// Pure: no I/O, the clock comes in.
//
// The ring's records come as a ConnBatch and are read in place: a flow's id is 7 UTF-16 units
// made of its numbers (no address formatting), an open flow keeps the numbers of its open record,
// made a ConnEvent only if the sweep needs one (an eviction's close).

import {
  IPPROTO_TCP, LB_CT_EV_CLOSED, LB_CT_FIN_BACKEND, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_DIR_REVERSE,
  ipv4ToU32, type CloseReason, type ConnEvent, type FlowKey,
} from '../../core/abi.js';
import type { ConntrackEntry } from '../../dataplane/unanswered-flows.js';
import type { FlowTimeouts } from '../../runtime/active-flows.js';
import { ConnBatch, ipString } from './conn-batch.js';

const NS_PER_SEC = 1_000_000_000n;
const DEFAULTS: FlowTimeouts = { tcpIdleSec: 300, tcpFinSec: 10, udpIdleSec: 60 };

/** What a conn-open record says, as numbers. */
interface OpenRecord {
  tsNs: number;
  openNs: number;
  client: number;
  clientPort: number;
  vip: number;
  vipPort: number;
  backend: number;
  backendPort: number;
  proto: number;
  listenerId: number;
  targetId: number;
  packetsIn: number;
  bytesIn: number;
}

interface Tracked {
  /** The flow as last known: its open record, or the counters of the last snapshot (event). */
  open: OpenRecord | undefined;
  event: ConnEvent | undefined;
  /** Snapshots in a row the flow was missing from. */
  missing: number;
}

function trackedEvent(t: Tracked): ConnEvent {
  if (t.event) return t.event;
  const o = t.open!;
  return {
    type: 'open', tsNs: BigInt(o.tsNs), openNs: BigInt(o.openNs), client: ipString(o.client), clientPort: o.clientPort, vip: ipString(o.vip), vipPort: o.vipPort,
    backend: ipString(o.backend), backendPort: o.backendPort, proto: o.proto, listenerId: o.listenerId, targetId: o.targetId, reason: '',
    packetsIn: BigInt(o.packetsIn), bytesIn: BigInt(o.bytesIn), packetsOut: 0n, bytesOut: 0n,
  };
}

export interface SweepResult {
  /** Closes to deliver (idle timeouts, evictions). */
  closes: ConnEvent[];
  /** Entries to delete from lb_flows (both entries of each idle flow). */
  deleteKeys: FlowKey[];
}

/** A flow's id from its numbers: 7 UTF-16 units, one string allocation. */
const numericId = (proto: number, client: number, cport: number, vip: number, vport: number): string =>
  String.fromCharCode(proto, cport, vport, client >>> 16, client & 0xffff, vip >>> 16, vip & 0xffff);
const flowId = (proto: number, client: string, cport: number, vip: string, vport: number): string =>
  numericId(proto, ipv4ToU32(client), cport, ipv4ToU32(vip), vport);
const batchId = (b: ConnBatch, i: number): string => numericId(b.proto(i), b.clientAddr(i), b.clientPort(i), b.vipAddr(i), b.vipPort(i));

export class FlowTracker {
  private readonly open = new Map<string, Tracked>();
  /**
   * Flows the sweep closed, id -> open time, in two generations: when the current one is full it
   * becomes the previous one and the oldest is forgotten whole. (Evicting the oldest entry of one
   * Map one at a time walks the deleted slots at its front on every close.)
   */
  private closed = new Map<string, number>();
  private closedBefore = new Map<string, number>();
  /** Flows dropped from tracking because the table was full. */
  untracked = 0;

  constructor(private readonly maxTracked = 600_000, private readonly maxClosedMemory = 65_536) {}

  get tracked(): number {
    return this.open.size;
  }

  /** Open flows counted by a key of the caller's (e.g. proxy and backend). */
  countOpen(keyOf: (listenerId: number, backend: string, backendPort: number) => string): Map<string, number> {
    const out = new Map<string, number>();
    for (const t of this.open.values()) {
      const k = t.event ? keyOf(t.event.listenerId, t.event.backend, t.event.backendPort) : keyOf(t.open!.listenerId, ipString(t.open!.backend), t.open!.backendPort);
      out.set(k, (out.get(k) ?? 0) + 1);
    }
    return out;
  }

  /** Feeds a batch from the ring: clears batch.keep of the duplicate closes. */
  onBatch(b: ConnBatch): void {
    for (let i = 0; i < b.count; i++) {
      const id = batchId(b, i);
      if (!b.isClose(i)) {
        if (this.closed.size > 0) this.closed.delete(id);
        if (this.closedBefore.size > 0) this.closedBefore.delete(id);
        if (this.open.size < this.maxTracked || this.open.has(id)) {
          const open: OpenRecord = {
            tsNs: b.tsNs(i), openNs: b.openNs(i), client: b.clientAddr(i), clientPort: b.clientPort(i), vip: b.vipAddr(i), vipPort: b.vipPort(i),
            backend: b.backendAddr(i), backendPort: b.backendPort(i), proto: b.proto(i), listenerId: b.listenerId(i), targetId: b.targetId(i),
            packetsIn: b.packetsIn(i), bytesIn: b.bytesIn(i),
          };
          this.open.set(id, { open, event: undefined, missing: 0 });
        } else this.untracked++;
      } else if (this.sweptClose(id, b.openNs(i))) {
        b.drop(i);
      } else {
        this.open.delete(id);
      }
    }
  }

  private sweptClose(id: string, openNs: number): boolean {
    return (this.closed.size > 0 && this.closed.get(id) === openNs) || (this.closedBefore.size > 0 && this.closedBefore.get(id) === openNs);
  }

  /** onBatch for records given as objects (tests): returns those to deliver. */
  onEvents(events: readonly ConnEvent[]): ConnEvent[] {
    const b = ConnBatch.of(events);
    this.onBatch(b);
    return events.filter((_, i) => b.keep[i] === 1);
  }

  /** The sweep closes a flow: true the first time for this flow (id, open time). */
  private markClosed(id: string, openNs: number): boolean {
    if (this.sweptClose(id, openNs)) return false;
    this.open.delete(id);
    this.closed.set(id, openNs);
    if (this.closed.size >= this.maxClosedMemory / 2) {
      this.closedBefore = this.closed;
      this.closed = new Map();
    }
    return true;
  }

  /** One snapshot of lb_flows taken at nowNs (CLOCK_MONOTONIC), with the active generation's timeouts. */
  sweep(entries: readonly ConntrackEntry[], nowNs: bigint, timeouts: Partial<FlowTimeouts> = {}): SweepResult {
    const t = {
      tcpIdleSec: timeouts.tcpIdleSec || DEFAULTS.tcpIdleSec, tcpFinSec: timeouts.tcpFinSec || DEFAULTS.tcpFinSec,
      udpIdleSec: timeouts.udpIdleSec || DEFAULTS.udpIdleSec,
    };
    const seen = new Set<string>();
    const closes: ConnEvent[] = [];
    const deleteKeys: FlowKey[] = [];
    for (const { id, key, value, rev, event } of openFlows(entries, nowNs)) {
      seen.add(id);
      const fin = (value.state & (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND)) !== 0;
      const sec = fin ? t.tcpFinSec : key.proto === IPPROTO_TCP ? t.tcpIdleSec : t.udpIdleSec;
      const last = rev && rev.value.lastSeenNs > value.lastSeenNs ? rev.value.lastSeenNs : value.lastSeenNs;
      const idle = nowNs > last ? nowNs - last : 0n;
      if (idle > BigInt(sec) * NS_PER_SEC) {
        event.reason = fin ? 'fin' : 'idle-timeout';
        if (this.markClosed(id, Number(event.openNs))) closes.push(event);
        deleteKeys.push(key);
        if (rev) deleteKeys.push(rev.key);
        continue;
      }
      const known = this.open.get(id);
      if (known) {
        known.event = event;
        known.open = undefined;
        known.missing = 0;
      } else if (this.open.size < this.maxTracked) {
        this.open.set(id, { open: undefined, event, missing: 0 });
      }
    }
    const now = Number(nowNs);
    for (const [id, tr] of this.open) {
      if (seen.has(id)) continue;
      // Opened after the snapshot was taken: not missing.
      if (tr.open && tr.open.tsNs >= now) continue;
      tr.missing++;
      if (tr.missing < 2) continue;
      const close: ConnEvent = { ...trackedEvent(tr), type: 'close', reason: 'lru-eviction', tsNs: nowNs };
      if (this.markClosed(id, Number(close.openNs))) closes.push(close);
    }
    return { closes, deleteKeys };
  }

  /**
   * Ends the open flows of a snapshot that `match` picks (a drain's timeout: the flows still on the
   * target): their closes, with `reason` and the counters of both entries, and both entries to delete.
   */
  end(entries: readonly ConntrackEntry[], nowNs: bigint, match: (e: ConnEvent) => boolean, reason: CloseReason): SweepResult {
    const closes: ConnEvent[] = [];
    const deleteKeys: FlowKey[] = [];
    for (const { id, key, rev, event } of openFlows(entries, nowNs)) {
      if (!match(event)) continue;
      event.reason = reason;
      if (this.markClosed(id, Number(event.openNs))) closes.push(event);
      deleteKeys.push(key);
      if (rev) deleteKeys.push(rev.key);
    }
    return { closes, deleteKeys };
  }
}

/** The forward entries whose close was not emitted yet, each with its reverse entry and its close (reason unset). */
function* openFlows(entries: readonly ConntrackEntry[], nowNs: bigint): Generator<{ id: string; key: FlowKey; value: ConntrackEntry['value']; rev: ConntrackEntry | undefined; event: ConnEvent }> {
  const reverse = new Map<string, ConntrackEntry>();
  for (const e of entries) if (e.value.dir === LB_DIR_REVERSE) reverse.set(flowId(e.key.proto, e.key.saddr, e.key.sport, e.key.daddr, e.key.dport), e);
  for (const { key, value } of entries) {
    if (value.dir !== LB_DIR_FORWARD) continue;
    if (((value.ev ?? 0n) & BigInt(LB_CT_EV_CLOSED)) !== 0n) continue; // its close is out already
    const r = reverse.get(flowId(key.proto, value.natAddr, value.natPort, key.saddr, key.sport));
    const rev = r && r.value.natAddr === key.daddr && r.value.natPort === key.dport ? r : undefined;
    const event: ConnEvent = {
      type: 'close', tsNs: nowNs, openNs: value.openNs ?? 0n, client: key.saddr, clientPort: key.sport, vip: key.daddr, vipPort: key.dport,
      backend: value.natAddr, backendPort: value.natPort, proto: key.proto, listenerId: value.listenerId ?? 0, targetId: value.targetId,
      reason: '', packetsIn: value.packets ?? 0n, bytesIn: value.bytes ?? 0n, packetsOut: rev?.value.packets ?? 0n, bytesOut: rev?.value.bytes ?? 0n,
    };
    yield { id: flowId(key.proto, key.saddr, key.sport, key.daddr, key.dport), key, value, rev, event };
  }
}
