// FlowTracker: the closes no packet announces (idle flows, LRU evictions) found in snapshots of
// lb_flows, and duplicate closes dropped. Snapshots are built as decodeFlow returns them.
import { describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_CT_EV_CLOSED, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_DIR_REVERSE, type ConnEvent } from '../../../src/core/abi.js';
import type { ConntrackEntry } from '../../../src/dataplane/unanswered-flows.js';
import { FlowTracker } from '../../../src/observe/events/flow-tracker.js';

const S = 1_000_000_000n;
const NOW = 10_000n * S;

function pair(port: number, o: { proto?: number; lastSeen?: bigint; state?: number; ev?: bigint; packets?: bigint } = {}): ConntrackEntry[] {
  const proto = o.proto ?? IPPROTO_TCP;
  const last = o.lastSeen ?? NOW;
  return [
    {
      key: { saddr: '172.16.0.1', daddr: '10.100.0.1', sport: port, dport: 80, proto },
      value: { lastSeenNs: last, natAddr: '10.0.0.1', natPort: 8080, targetId: 3, dir: LB_DIR_FORWARD, state: o.state ?? 0, listenerId: 2, openNs: 5n * S, packets: o.packets ?? 7n, bytes: 700n, ev: o.ev ?? 0n },
    },
    {
      key: { saddr: '10.0.0.1', daddr: '172.16.0.1', sport: 8080, dport: port, proto },
      value: { lastSeenNs: last, natAddr: '10.100.0.1', natPort: 80, targetId: 3, dir: LB_DIR_REVERSE, state: 0, packets: 5n, bytes: 5000n },
    },
  ];
}

function open(port: number, tsNs = 5n * S): ConnEvent {
  return {
    type: 'open', tsNs, openNs: tsNs, client: '172.16.0.1', clientPort: port, vip: '10.100.0.1', vipPort: 80, backend: '10.0.0.1', backendPort: 8080,
    proto: IPPROTO_TCP, listenerId: 2, targetId: 3, reason: '', packetsIn: 1n, bytesIn: 60n, packetsOut: 0n, bytesOut: 0n,
  };
}

describe('FlowTracker', () => {
  it('closes a flow idle past its timeout with the counters of both entries, and asks to delete both entries', () => {
    const t = new FlowTracker();
    const { closes, deleteKeys } = t.sweep([...pair(1000, { lastSeen: NOW - 301n * S }), ...pair(1001, { lastSeen: NOW - 299n * S })], NOW);
    expect(closes).toHaveLength(1);
    expect(closes[0]).toMatchObject({ type: 'close', reason: 'idle-timeout', clientPort: 1000, packetsIn: 7n, bytesIn: 700n, packetsOut: 5n, bytesOut: 5000n, listenerId: 2, openNs: 5n * S, tsNs: NOW });
    expect(deleteKeys.map((k) => [k.sport, k.dport])).toEqual([[1000, 80], [8080, 1000]]);
  });

  it('uses the generation timeouts: UDP idle, and the FIN timeout once a side sent FIN (reason fin)', () => {
    const t = new FlowTracker();
    const { closes } = t.sweep([
      ...pair(2000, { proto: IPPROTO_UDP, lastSeen: NOW - 31n * S }),
      ...pair(2001, { state: LB_CT_FIN_CLIENT, lastSeen: NOW - 11n * S }),
      ...pair(2002, { lastSeen: NOW - 31n * S }),
    ], NOW, { udpIdleSec: 30, tcpFinSec: 10 });
    expect(closes.map((c) => [c.clientPort, c.reason])).toEqual([[2000, 'idle-timeout'], [2001, 'fin']]);
  });

  it('leaves flows whose close the kernel emitted (LB_CT_EV_CLOSED) to the kernel', () => {
    const t = new FlowTracker();
    expect(t.sweep(pair(3000, { lastSeen: NOW - 1000n * S, ev: BigInt(LB_CT_EV_CLOSED) }), NOW).closes).toEqual([]);
  });

  it('a known flow missing from two snapshots in a row is closed as lru-eviction with its last counters', () => {
    const t = new FlowTracker();
    expect(t.onEvents([open(4000)])).toHaveLength(1);
    t.sweep(pair(4000, { packets: 9n }), NOW);
    expect(t.sweep([], NOW + S).closes, 'first miss: a close may still be in the ring').toEqual([]);
    const { closes } = t.sweep([], NOW + 2n * S);
    expect(closes).toHaveLength(1);
    expect(closes[0]).toMatchObject({ type: 'close', reason: 'lru-eviction', clientPort: 4000, packetsIn: 9n, tsNs: NOW + 2n * S });
    expect(t.tracked).toBe(0);
  });

  it('a close from the ring after the first miss cancels the eviction', () => {
    const t = new FlowTracker();
    t.onEvents([open(5000)]);
    t.sweep([], NOW);
    const close: ConnEvent = { ...open(5000), type: 'close', reason: 'fin', tsNs: NOW };
    expect(t.onEvents([close])).toHaveLength(1);
    expect(t.sweep([], NOW + S).closes).toEqual([]);
    // The same tuple opened again is a new flow.
    expect(t.onEvents([open(5000, NOW + 2n * S), { ...close, openNs: NOW + 2n * S }])).toHaveLength(2);
  });

  it('the ring\'s close of a flow the sweep closed already is dropped; the same tuple opened again is a new flow', () => {
    const t = new FlowTracker();
    t.onEvents([open(5001)]);
    expect(t.sweep(pair(5001, { lastSeen: NOW - 301n * S }), NOW).closes).toHaveLength(1);
    const kernelClose: ConnEvent = { ...open(5001), type: 'close', reason: 'idle-timeout', tsNs: NOW };
    expect(t.onEvents([kernelClose]), 'duplicate').toHaveLength(0);
    expect(t.onEvents([open(5001, NOW + S), { ...kernelClose, openNs: NOW + S }])).toHaveLength(2);
  });

  it('end(): the matching open flows close with the given reason and both entries go; a later ring close of one is dropped', () => {
    const t = new FlowTracker();
    t.onEvents([open(7000), open(7001)]);
    const entries = [...pair(7000), ...pair(7001), ...pair(7002, { ev: BigInt(LB_CT_EV_CLOSED) })];
    const { closes, deleteKeys } = t.end(entries, NOW, (e) => e.clientPort !== 7001, 'drain');
    expect(closes.map((c) => [c.clientPort, c.reason, c.packetsIn, c.bytesOut])).toEqual([[7000, 'drain', 7n, 5000n]]);
    expect(deleteKeys.map((k) => [k.sport, k.dport])).toEqual([[7000, 80], [8080, 7000]]);
    expect(t.tracked).toBe(1);
    expect(t.onEvents([{ ...open(7000), type: 'close', reason: 'rst-client', tsNs: NOW }]), 'the kernel close after the drain').toHaveLength(0);
  });

  it('an open newer than the snapshot is not missing from it', () => {
    const t = new FlowTracker();
    t.onEvents([open(6000, NOW + 5n * S)]);
    t.sweep([], NOW);
    t.sweep([], NOW + S);
    expect(t.tracked).toBe(1);
  });
});
