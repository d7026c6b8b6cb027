// The SNI acceptor's connections in the daemon's connection event stream (src/observe/events):
// one conn-open when the backend accepted, one conn-close when the relay ended, shaped as the data
// plane's records (proxy, listener, client, VIP, backend, bytes, reason, duration) plus the route
// that chose the backend and the name the client sent. The access log, the latency histograms,
// the per-backend counters and `lb top` then show them with the rest. Batched over BATCH_MS.

import { AcceptorRecords, type ConnBatch } from '../observe/events/conn-batch.js';
import type { AcceptorEvents } from './acceptor.js';

/** How long a record may wait for others to share its batch, and how many a batch holds at most. */
const BATCH_MS = 25;
const BATCH_MAX = 256;

/** `atNs` (CLOCK_MONOTONIC) if it is not after now (the native door reports in batches), else now; as a number. */
function eventNs(atNs: bigint | undefined): number {
  const now = process.hrtime.bigint();
  return Number(atNs !== undefined && atNs <= now ? atNs : now);
}

/**
 * The acceptor's events that publish its connections to the hub (the daemon's wiring). Records
 * made within BATCH_MS go out as one batch (in the order they were made; each keeps the time it
 * was made): a batch's delivery and every sink's call are paid once per batch, not per
 * connection. Per event-loop turn was about one record a batch at a few hundred connections a
 * second, and a batch's fixed cost was ~50 us of the daemon's CPU per connection (bench sni).
 * The records are written in place as they come (AcceptorRecords). `flush()` publishes what waits now.
 */
export function acceptorConnEvents(hub: { publish(batch: ConnBatch): void }): AcceptorEvents & { flush(): void } {
  const waiting = new AcceptorRecords();
  let timer: NodeJS.Timeout | undefined;
  let checking = false;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const batch = waiting.take();
    if (batch) hub.publish(batch);
  };
  // The wait is armed only for records still waiting once the current task is done: the door's
  // acceptor reports a batch's records and flushes them in one task, so its batches never pay for
  // a timer made and cleared (under load, about a tenth of the daemon's time was node:timers).
  const armIfWaiting = (): void => {
    checking = false;
    if (waiting.count > 0) timer ??= setTimeout(flush, BATCH_MS);
  };
  const added = (): void => {
    if (waiting.count >= BATCH_MAX) flush();
    else if (!checking && timer === undefined) {
      checking = true;
      queueMicrotask(armIfWaiting);
    }
  };
  return {
    opened: (c, atNs) => {
      waiting.add(c, eventNs(atNs), Number(c.acceptedNs));
      added();
    },
    closed: (c, end) => {
      // bytesIn: client -> backend, as the data plane counts its forward entry.
      waiting.add(c, eventNs(end.atNs), Number(c.acceptedNs), { bytesIn: end.up, bytesOut: end.down, reason: end.reason });
      added();
    },
    flush,
  };
}
