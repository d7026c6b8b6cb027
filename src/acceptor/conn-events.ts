// The SNI acceptor's connections in the daemon's connection event stream (src/observe/events):
// one conn-open when the backend accepted, one conn-close when the relay ended, shaped as the data
// plane's records (proxy, listener, client, VIP, backend, bytes, reason, duration) plus the route
// that chose the backend and the name the client sent. The access log, the latency histograms,
// the per-backend counters and `lb top` then show them with the rest. Batched per event-loop turn.

import { IPPROTO_TCP } from '../core/abi.js';
import type { ConnRecord, EventHub } from '../observe/events/event-hub.js';
import type { AcceptorCloseReason, AcceptorConn, AcceptorEvents } from './acceptor.js';

export function acceptorRecord(c: AcceptorConn, end?: { up: number; down: number; reason: AcceptorCloseReason }): ConnRecord {
  const nowNs = process.hrtime.bigint();
  const nowMs = Date.now();
  return {
    type: end ? 'close' : 'open',
    tsNs: nowNs, openNs: c.acceptedNs,
    client: c.client, clientPort: c.clientPort, vip: c.vip, vipPort: c.vipPort, backend: c.backend, backendPort: c.backendPort,
    proto: IPPROTO_TCP, listenerId: 0, targetId: 0,
    reason: end ? end.reason : '',
    // bytesIn: client -> backend, as the data plane counts its forward entry.
    packetsIn: 0n, bytesIn: BigInt(end?.up ?? 0), packetsOut: 0n, bytesOut: BigInt(end?.down ?? 0),
    proxy: c.proxy, listener: c.listener, timeMs: nowMs, openMs: c.acceptedMs,
    durationSec: end ? Number(nowNs - c.acceptedNs) / 1e9 : 0,
    acceptor: { route: c.route, serverName: c.serverName },
  };
}

/**
 * The acceptor's events that publish its connections to the hub (the daemon's wiring). Records
 * made in one turn of the event loop go out as one batch (setImmediate, in the order they were
 * made; each keeps the time it was made): a batch's encoding and every sink's call are paid once
 * per batch, not per connection. `flush()` publishes what waits now.
 */
export function acceptorConnEvents(hub: Pick<EventHub, 'publish'>): AcceptorEvents & { flush(): void } {
  let waiting: ConnRecord[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (waiting.length === 0) return;
    const records = waiting;
    waiting = [];
    hub.publish(records);
  };
  const add = (r: ConnRecord): void => {
    waiting.push(r);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  return {
    opened: (c) => add(acceptorRecord(c)),
    closed: (c, end) => add(acceptorRecord(c, end)),
    flush,
  };
}
