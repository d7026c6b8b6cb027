// The SNI acceptor's connections in the daemon's connection event stream (src/observe/events):
// one conn-open when the backend accepted, one conn-close when the relay ended, shaped as the data
// plane's records (proxy, listener, client, VIP, backend, bytes, reason, duration) plus the route
// that chose the backend and the name the client sent. The access log, the latency histograms,
// the per-backend counters and `lb top` then show them with the rest. Batched over BATCH_MS.

import { IPPROTO_TCP } from '../core/abi.js';
import type { ConnRecord, EventHub } from '../observe/events/event-hub.js';
import type { AcceptorConn, AcceptorEnd, AcceptorEvents } from './acceptor.js';

/** `atNs`: when it happened (CLOCK_MONOTONIC), if before now (the native door reports in batches). */
export function acceptorRecord(c: AcceptorConn, end?: AcceptorEnd, atNs?: bigint): ConnRecord {
  const now = process.hrtime.bigint();
  const at = end?.atNs ?? atNs;
  const tsNs = at !== undefined && at <= now ? at : now;
  const timeMs = Date.now() - Math.round(Number(now - tsNs) / 1e6);
  return {
    type: end ? 'close' : 'open',
    tsNs, openNs: c.acceptedNs,
    client: c.client, clientPort: c.clientPort, vip: c.vip, vipPort: c.vipPort, backend: c.backend, backendPort: c.backendPort,
    proto: IPPROTO_TCP, listenerId: 0, targetId: 0,
    reason: end ? end.reason : '',
    // bytesIn: client -> backend, as the data plane counts its forward entry.
    packetsIn: 0n, bytesIn: BigInt(end?.up ?? 0), packetsOut: 0n, bytesOut: BigInt(end?.down ?? 0),
    proxy: c.proxy, listener: c.listener, timeMs, openMs: c.acceptedMs,
    durationSec: end ? Number(tsNs - c.acceptedNs) / 1e9 : 0,
    acceptor: { route: c.route, serverName: c.serverName },
  };
}

/** How long a record may wait for others to share its batch, and how many a batch holds at most. */
const BATCH_MS = 25;
const BATCH_MAX = 256;

/**
 * The acceptor's events that publish its connections to the hub (the daemon's wiring). Records
 * made within BATCH_MS go out as one batch (in the order they were made; each keeps the time it
 * was made): a batch's encoding and every sink's call are paid once per batch, not per
 * connection. Per event-loop turn was about one record a batch at a few hundred connections a
 * second, and a batch's fixed cost was ~50 us of the daemon's CPU per connection (bench sni).
 * `flush()` publishes what waits now.
 */
export function acceptorConnEvents(hub: Pick<EventHub, 'publish'>): AcceptorEvents & { flush(): void } {
  let waiting: ConnRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    const records = waiting;
    waiting = [];
    hub.publish(records);
  };
  const add = (r: ConnRecord): void => {
    waiting.push(r);
    if (waiting.length >= BATCH_MAX) flush();
    else timer ??= setTimeout(flush, BATCH_MS);
  };
  return {
    opened: (c, atNs) => add(acceptorRecord(c, undefined, atNs)),
    closed: (c, end) => add(acceptorRecord(c, end)),
    flush,
  };
}
