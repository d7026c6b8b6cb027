// What the events worker (ring-worker.ts) and the daemon's thread (event-stream.ts) exchange.

/** Int32 slots of the shared control array. */
export const CTL_STOP = 0;      // set to 1 by the daemon: the worker closes the ring and exits
export const CTL_INFLIGHT = 1;  // batches posted and not yet handled by the daemon
export const CTL_SLOTS = 2;

export interface RingWorkerData {
  /** The pinned lb_events map. */
  path: string;
  ringBytes: number;
  recordSize: number;
  /** Most records in one batch. */
  maxBatch: number;
  /** Batches the daemon may have queued before the worker stops reading the ring. */
  maxInflight: number;
  /** Pause after a small batch, so records arrive in batches rather than one message each. */
  gatherMs: number;
  /**
   * An eventfd the daemon's thread writes to when it stops the worker: in the worker's epoll set
   * beside the ring, so that an idle worker sleeps until a record or the stop comes, with no
   * periodic wake-up (one every 100 ms cost an idle daemon ~1.3 ms of CPU a second).
   */
  wakeFd: number;
  /** Longest epoll wait, a bound in case a wake-up is lost (a stop is woken at once by wakeFd). */
  waitMs: number;
  control: SharedArrayBuffer;
}

export type RingWorkerMessage =
  | { kind: 'ready' }
  | { kind: 'batch'; buf: ArrayBuffer; count: number }
  | { kind: 'error'; message: string }
  | { kind: 'stopped' };
