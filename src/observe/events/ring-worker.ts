// The events worker: drains the lb_events ring in batches and posts each batch (records back to
// back, transferred, not copied) to the daemon's thread. It blocks in epoll_wait when the ring is
// empty, which is why it is a thread of its own. The daemon's queue is bounded: while `limit`
// batches are in flight the worker stops reading and the ring holds the records; a ring that
// fills makes the kernel drop and count (LB_EVS_DROPPED), and the data plane never waits.

import { parentPort, workerData } from 'node:worker_threads';
import { RingReader } from './ring-reader.js';
import { CTL_INFLIGHT, CTL_STOP, type RingWorkerData, type RingWorkerMessage } from './ring-protocol.js';

const data = workerData as RingWorkerData;
const ctl = new Int32Array(data.control);
const port = parentPort!;

function post(msg: RingWorkerMessage, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

let reader: RingReader;
try {
  reader = new RingReader(data.path, data.ringBytes, data.recordSize, data.wakeFd);
} catch (err) {
  post({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(0);
}
post({ kind: 'ready' });

const recordSlot = data.recordSize + 8; // header + record, already a multiple of 8
while (Atomics.load(ctl, CTL_STOP) === 0) {
  if (Atomics.load(ctl, CTL_INFLIGHT) >= data.maxInflight) {
    // The daemon's thread is behind: let the ring hold the records until it catches up.
    Atomics.wait(ctl, CTL_INFLIGHT, Atomics.load(ctl, CTL_INFLIGHT), 20);
    continue;
  }
  const pending = Math.min(Math.ceil(reader.pendingBytes() / recordSlot), data.maxBatch);
  if (pending === 0) {
    reader.wait(data.waitMs);
    continue;
  }
  const batch = reader.read(pending);
  if (batch.count === 0) {
    reader.wait(1); // a record is being written: look again shortly
    continue;
  }
  Atomics.add(ctl, CTL_INFLIGHT, 1);
  post({ kind: 'batch', buf: batch.buf, count: batch.count }, [batch.buf]);
  // A small batch: the kernel wakes this thread for nearly every record while it keeps up, and a
  // message per few records costs the daemon's thread (and the machine: two thread wake-ups) more
  // than the records. Let them gather for a moment (the ring holds ~47,000; 10 ms at 200,000/s is
  // 2,000; an access log line is at most that late).
  if (batch.count < data.maxBatch / 8) Atomics.wait(ctl, CTL_STOP, 0, data.gatherMs);
}
// Stopping (SIGTERM, a reload without events): what the ring holds now is posted too, so the
// daemon's last flush of the access log has the closes of connections that ended just before.
// Bounded: at most 64 batches, and only what is there (nothing new is waited for).
for (let n = 0; n < 64; n++) {
  const pending = Math.min(Math.ceil(reader.pendingBytes() / recordSlot), data.maxBatch);
  if (pending === 0) break;
  const batch = reader.read(pending);
  if (batch.count === 0) break;
  Atomics.add(ctl, CTL_INFLIGHT, 1);
  post({ kind: 'batch', buf: batch.buf, count: batch.count }, [batch.buf]);
}
reader.close();
// After every batch: the daemon's thread sees it once it has handled them all.
post({ kind: 'stopped' });
