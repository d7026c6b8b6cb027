// The daemon's side of the events worker: starts it on the instance's pinned lb_events ring,
// wraps each batch it posts (records back to back, read in place: ConnBatch) for the listener,
// then tells the worker the batch is done (the in-flight count bounds the queue between the two
// threads). Nothing here blocks: the worker does the waiting.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { LAYOUTS, LB_EVENTS_RING_BYTES, LB_MAP_EVENTS } from '../../core/abi.js';
import { instanceDir } from '../../dataplane/bpffs.js';
import { packageRoot } from '../../package-root.js';
import { libc } from '../../sys/libc.js';
import { ConnBatch } from './conn-batch.js';
import { CTL_INFLIGHT, CTL_SLOTS, CTL_STOP, type RingWorkerData, type RingWorkerMessage } from './ring-protocol.js';

export interface EventStreamOptions {
  instance: string;
  /**
   * Receives every batch, in ring order. A promise is backpressure: no further batch is handed
   * over, nor its in-flight slot given back to the worker, until it settles; the records wait in
   * the ring meanwhile.
   */
  onEvents: (batch: ConnBatch) => void | Promise<void>;
  /** The worker could not map the ring, or died. */
  onError?: (message: string) => void;
  /** Most records per batch (default 4096). */
  maxBatch?: number;
  /** Batches queued toward this thread before the worker leaves records in the ring (default 8). */
  maxInflight?: number;
}

/** The worker's compiled entry: next to this module in dist/, or dist/ of the package under tsx/vitest. */
function workerEntry(): URL {
  const here = new URL('./ring-worker.js', import.meta.url);
  if (existsSync(here)) return here;
  return pathToFileURL(join(packageRoot(), 'dist/src/observe/events/ring-worker.js'));
}

export function eventsPinPath(instance: string): string {
  return join(instanceDir(instance), LB_MAP_EVENTS);
}

const EFD_CLOEXEC = 0o2000000;
/** What a write to an eventfd adds to its counter (a u64): any non-zero value makes it readable. */
const WAKE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

export class EventStream {
  /** Records delivered. */
  consumed = 0;
  batches = 0;
  /** Milliseconds this thread spent delivering batches (the listener's work included). */
  busyMs = 0;
  private readonly ctl: Int32Array;
  private stopped: Promise<void> | undefined;
  private workerStopped = false;
  private workerExited = false;
  private onStopped: (() => void) | undefined;
  /** Batches received and not yet handed to the listener (bounded by the worker's maxInflight). */
  private readonly waiting: Array<Extract<RingWorkerMessage, { kind: 'batch' }>> = [];
  private paused = false;

  private constructor(private readonly worker: Worker, private readonly opts: EventStreamOptions, control: SharedArrayBuffer, private readonly wakeFd: number) {
    this.ctl = new Int32Array(control);
    // The worker's wake-up descriptor lives as long as the worker (it is in the worker's epoll set);
    // closed once it exited, and never written after (its number may belong to another by then).
    worker.once('exit', () => {
      this.workerExited = true;
      libc().close(wakeFd);
    });
  }

  /** Starts the worker on the pinned ring; resolves once it mapped it (rejects if it cannot). */
  static async start(opts: EventStreamOptions): Promise<EventStream> {
    const size = LAYOUTS.lb_event.size;
    const control = new SharedArrayBuffer(CTL_SLOTS * 4);
    const wakeFd = libc().eventfd(0, EFD_CLOEXEC);
    if (wakeFd < 0) throw new Error('events worker: eventfd failed');
    const data: RingWorkerData = {
      path: eventsPinPath(opts.instance), ringBytes: LB_EVENTS_RING_BYTES, recordSize: size,
      maxBatch: opts.maxBatch ?? 4096, maxInflight: opts.maxInflight ?? 8, wakeFd, waitMs: 60_000, gatherMs: 10, control,
    };
    let worker: Worker;
    try {
      worker = new Worker(workerEntry(), { workerData: data });
    } catch (err) {
      libc().close(wakeFd);
      throw err;
    }
    const stream = new EventStream(worker, opts, control, wakeFd);
    await new Promise<void>((resolve, reject) => {
      const first = (msg: RingWorkerMessage): void => {
        worker.off('error', failed);
        if (msg.kind === 'ready') resolve();
        else reject(new Error(msg.kind === 'error' ? msg.message : `events worker: unexpected ${msg.kind}`));
        worker.on('message', (m: RingWorkerMessage) => stream.handle(m));
      };
      const failed = (err: Error): void => reject(err);
      worker.once('message', first);
      worker.once('error', failed);
    });
    worker.on('error', (err) => opts.onError?.(err.message));
    return stream;
  }

  private handle(msg: RingWorkerMessage): void {
    if (msg.kind === 'error') {
      this.opts.onError?.(msg.message);
      return;
    }
    if (msg.kind === 'stopped') {
      this.workerStopped = true;
      this.settleStop();
      return;
    }
    if (msg.kind !== 'batch') return;
    this.waiting.push(msg);
    if (!this.paused) this.drain();
  }

  /** The worker said it stopped (posting what the ring held), rather than being terminated or dying. */
  get stoppedCleanly(): boolean {
    return this.workerStopped;
  }

  /** stop() resolves once the worker said it stopped and every batch it posted was handled. */
  private settleStop(): void {
    if (this.workerStopped && this.waiting.length === 0 && !this.paused) this.onStopped?.();
  }

  /** Handles queued batches in order; a listener's promise pauses the queue until it settles. */
  private drain(): void {
    while (this.waiting.length > 0) {
      const msg = this.waiting.shift()!;
      const wait = this.deliver(msg);
      if (wait) {
        this.paused = true;
        void wait.catch(() => undefined).finally(() => {
          this.paused = false;
          this.release();
          this.drain();
        });
        return;
      }
      this.release();
    }
    this.settleStop();
  }

  private release(): void {
    Atomics.sub(this.ctl, CTL_INFLIGHT, 1);
    Atomics.notify(this.ctl, CTL_INFLIGHT);
  }

  private deliver(msg: Extract<RingWorkerMessage, { kind: 'batch' }>): Promise<void> | undefined {
    const t0 = performance.now();
    const batch = new ConnBatch(Buffer.from(msg.buf), msg.count);
    this.consumed += msg.count;
    this.batches++;
    try {
      const r: unknown = this.opts.onEvents(batch);
      return r instanceof Promise ? (r as Promise<void>) : undefined;
    } catch (err) {
      this.opts.onError?.(err instanceof Error ? err.message : String(err));
      return undefined;
    } finally {
      this.busyMs += performance.now() - t0;
    }
  }

  /**
   * Stops the worker: its wait ends at once (the wake-up descriptor), it posts what the ring still holds and
   * unmaps it; resolves once those batches went to the listener (a worker that does not answer in
   * 2 s is terminated, and what it held is lost).
   */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => void this.worker.terminate(), 2000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.onStopped = done;
      // A worker that exits without saying so (an error, terminated): nothing more will come.
      // One that said so resolves through settleStop once its batches are handled.
      this.worker.once('exit', () => { if (!this.workerStopped) done(); });
      Atomics.store(this.ctl, CTL_STOP, 1);
      Atomics.notify(this.ctl, CTL_INFLIGHT);
      if (!this.workerExited) libc().write(this.wakeFd, WAKE, WAKE.length);
    });
    return this.stopped;
  }
}
