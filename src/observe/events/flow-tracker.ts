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
// second one, same flow and same open time, is dropped. Pure: no I/O, the clock comes in.

import {
  IPPROTO_TCP, LB_CT_EV_CLOSED, LB_CT_FIN_BACKEND, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_DIR_REVERSE,
  type ConnEvent, type FlowKey,
} from '../../core/abi.js';
import type { ConntrackEntry } from '../../dataplane/unanswered-flows.js';
import type { FlowTimeouts } from '../../runtime/active-flows.js';

const NS_PER_SEC = 1_000_000_000n;
const DEFAULTS: FlowTimeouts = { tcpIdleSec: 300, tcpFinSec: 10, udpIdleSec: 60 };

interface Tracked {
  /** The flow as last known (an open record, or counters of the last snapshot). */
  event: ConnEvent;
  /** Snapshots in a row the flow was missing from. */
  missing: number;
}

export interface SweepResult {
  /** Closes to deliver (idle timeouts, evictions). */
  closes: ConnEvent[];
  /** Entries to delete from lb_flows (both entries of each idle flow). */
  deleteKeys: FlowKey[];
}

const flowId = (proto: number, client: string, cport: number, vip: string, vport: number): string => `${proto} ${client}:${cport} ${vip}:${vport}`;
const eventId = (e: ConnEvent): string => flowId(e.proto, e.client, e.clientPort, e.vip, e.vipPort);

export class FlowTracker {
  private readonly open = new Map<string, Tracked>();
  /**
   * Flows whose close was delivered, id -> open time, in two generations: when the current one is
   * full it becomes the previous one and the oldest is forgotten whole. (Evicting the oldest entry
   * of one Map one at a time walks the deleted slots at its front on every close.)
   */
  private closed = new Map<string, bigint>();
  private closedBefore = new Map<string, bigint>();
  /** Flows dropped from tracking because the table was full. */
  untracked = 0;

  constructor(private readonly maxTracked = 600_000, private readonly maxClosedMemory = 65_536) {}

  get tracked(): number {
    return this.open.size;
  }

  /** Open flows counted by a key of the caller's (e.g. proxy and backend). */
  countOpen(keyOf: (e: ConnEvent) => string): Map<string, number> {
    const out = new Map<string, number>();
    for (const { event } of this.open.values()) {
      const k = keyOf(event);
      out.set(k, (out.get(k) ?? 0) + 1);
    }
    return out;
  }

  /** Feeds records from the ring; returns those to deliver (duplicate closes removed). */
  onEvents(events: readonly ConnEvent[]): ConnEvent[] {
    const out: ConnEvent[] = [];
    for (const e of events) {
      const id = eventId(e);
      if (e.type === 'open') {
        this.closed.delete(id);
        this.closedBefore.delete(id);
        if (this.open.size < this.maxTracked || this.open.has(id)) this.open.set(id, { event: e, missing: 0 });
        else this.untracked++;
        out.push(e);
      } else if (this.markClosed(id, e.openNs)) {
        out.push(e);
      }
    }
    return out;
  }

  /** True the first time a flow (id, open time) closes. */
  private markClosed(id: string, openNs: bigint): boolean {
    if (this.closed.get(id) === openNs || this.closedBefore.get(id) === openNs) return false;
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
    const reverse = new Map<string, ConntrackEntry>();
    for (const e of entries) if (e.value.dir === LB_DIR_REVERSE) reverse.set(flowId(e.key.proto, e.key.saddr, e.key.sport, e.key.daddr, e.key.dport), e);
    const seen = new Set<string>();
    const closes: ConnEvent[] = [];
    const deleteKeys: FlowKey[] = [];
    for (const { key, value } of entries) {
      if (value.dir !== LB_DIR_FORWARD) continue;
      const id = flowId(key.proto, key.saddr, key.sport, key.daddr, key.dport);
      if (((value.ev ?? 0n) & BigInt(LB_CT_EV_CLOSED)) !== 0n) continue; // its close is out already
      seen.add(id);
      const rk = flowId(key.proto, value.natAddr, value.natPort, key.saddr, key.sport);
      const r = reverse.get(rk);
      const rev = r && r.value.natAddr === key.daddr && r.value.natPort === key.dport ? r : undefined;
      const event: ConnEvent = {
        type: 'close', tsNs: nowNs, openNs: value.openNs ?? 0n, client: key.saddr, clientPort: key.sport, vip: key.daddr, vipPort: key.dport,
        backend: value.natAddr, backendPort: value.natPort, proto: key.proto, listenerId: value.listenerId ?? 0, targetId: value.targetId,
        reason: '', packetsIn: value.packets ?? 0n, bytesIn: value.bytes ?? 0n, packetsOut: rev?.value.packets ?? 0n, bytesOut: rev?.value.bytes ?? 0n,
      };
      const fin = (value.state & (LB_CT_FIN_CLIENT | LB_CT_FIN_BACKEND)) !== 0;
      const sec = fin ? t.tcpFinSec : key.proto === IPPROTO_TCP ? t.tcpIdleSec : t.udpIdleSec;
      const last = rev && rev.value.lastSeenNs > value.lastSeenNs ? rev.value.lastSeenNs : value.lastSeenNs;
      const idle = nowNs > last ? nowNs - last : 0n;
      if (idle > BigInt(sec) * NS_PER_SEC) {
        event.reason = fin ? 'fin' : 'idle-timeout';
        if (this.markClosed(id, event.openNs)) closes.push(event);
        deleteKeys.push(key);
        if (rev) deleteKeys.push(rev.key);
        continue;
      }
      const known = this.open.get(id);
      if (known) {
        known.event = event;
        known.missing = 0;
      } else if (this.open.size < this.maxTracked) {
        this.open.set(id, { event, missing: 0 });
      }
    }
    for (const [id, tr] of this.open) {
      if (seen.has(id)) continue;
      // Opened after the snapshot was taken: not missing.
      if (tr.event.type === 'open' && tr.event.tsNs >= nowNs) continue;
      tr.missing++;
      if (tr.missing < 2) continue;
      const close: ConnEvent = { ...tr.event, type: 'close', reason: 'lru-eviction', tsNs: nowNs };
      if (this.markClosed(id, close.openNs)) closes.push(close);
    }
    return { closes, deleteKeys };
  }
}
