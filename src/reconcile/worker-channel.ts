// One worker thread of the daemon and its conversation: one request at a time, each with a
// deadline. The prepare worker (prepare-worker.ts) and the apply worker (apply-worker.ts) are
// both one of these; they differ in what they ask and in the error a failed request becomes.
//
// A worker that misses its deadline, crashes or runs out of heap is terminated, and the request
// fails only once the thread has stopped: a failed apply's caller then holds the instance lock
// while nothing writes the maps any more, and recovery of the journal left behind cannot race
// the interrupted transaction. The daemon's process never dies with its worker; the next request
// starts a fresh one.

import { Worker, type MessagePort } from 'node:worker_threads';
import { errorFromWire, errorToWire, type WorkerReply } from './prepare-protocol.js';

export interface WorkerChannelOptions {
  /** The worker's name in messages: "the <name> worker ...". */
  name: string;
  /** A module URL, or with `eval` the source of a script. */
  entry: URL | string;
  eval: boolean;
  timeoutMs: number;
  /** The worker's old-generation heap limit in MiB. */
  maxHeapMb: number;
  /** The error a request fails with when the worker failed (timeout, crash, out of memory). */
  failure(message: string, data: Record<string, unknown>): Error;
}

interface Pending {
  what: string;
  resolve(parts: ArrayBuffer[]): void;
  reject(err: Error): void;
}

export class WorkerChannel {
  private worker: Worker | undefined;
  private pending: Pending | undefined;
  /** Workers started so far: a failed worker is never reused. */
  started = 0;

  constructor(private readonly o: WorkerChannelOptions) {}

  /** True while a worker runs (it may hold state from earlier requests). */
  get alive(): boolean {
    return this.worker !== undefined;
  }

  /** Sends one request (`what` names it in errors); resolves with the reply's slices. */
  request(message: unknown, transfer: ArrayBuffer[], what: string): Promise<ArrayBuffer[]> {
    const w = this.worker ?? (this.worker = this.spawn());
    return new Promise<ArrayBuffer[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        void this.fail(w, `the ${this.o.name} worker did not answer ${what} within ${this.o.timeoutMs} ms; it was stopped`, { reason: 'timeout', timeoutMs: this.o.timeoutMs });
      }, this.o.timeoutMs);
      timer.unref();
      this.pending = {
        what,
        resolve: (parts) => { clearTimeout(timer); resolve(parts); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      };
      w.postMessage(message, transfer);
    });
  }

  /** Ends the worker, if any (a request in flight fails once it stopped). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    const p = this.pending;
    this.pending = undefined;
    if (w) await w.terminate().catch(() => undefined);
    p?.reject(this.o.failure(`the ${this.o.name} worker was stopped`, { reason: 'stopped', step: p.what }));
  }

  private spawn(): Worker {
    const w = new Worker(this.o.entry, {
      eval: this.o.eval,
      resourceLimits: { maxOldGenerationSizeMb: this.o.maxHeapMb },
      // The worker logs nothing of its own; its errors come back as replies.
      stdout: false,
      stderr: false,
    });
    this.started += 1;
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      if (w !== this.worker) return;
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (reply.ok) p.resolve(reply.parts);
      else p.reject(errorFromWire(reply.error));
    });
    w.on('error', (err) => {
      if (w !== this.worker) return;
      const oom = (err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY';
      const during = this.pending?.what ?? 'no request';
      void this.fail(w, oom
        ? `the ${this.o.name} worker ran out of memory (heap limit ${this.o.maxHeapMb} MiB) during ${during}`
        : `the ${this.o.name} worker failed during ${during}: ${err.message}`, { reason: oom ? 'out-of-memory' : 'crashed' });
    });
    w.on('exit', (code) => {
      if (w !== this.worker) return;
      void this.fail(w, `the ${this.o.name} worker exited (code ${code}) during ${this.pending?.what ?? 'no request'}`, { reason: 'exited', exitCode: code });
    });
    return w;
  }

  /** The request in flight fails, once the worker stopped; the next request starts a fresh one. */
  private async fail(w: Worker, message: string, data: Record<string, unknown>): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    if (this.worker === w) this.worker = undefined;
    await w.terminate().catch(() => undefined);
    p?.reject(this.o.failure(message, { ...data, step: p.what }));
  }
}

/**
 * The worker's side: answers each request on `port` with `handle`'s slices (transferred, not
 * copied), or with its error, which the daemon's side throws again as its class.
 */
export function serveRequests<R>(port: MessagePort, handle: (req: R) => Promise<ArrayBuffer[]>): void {
  port.on('message', (req: R) => {
    handle(req).then(
      (parts) => port.postMessage({ ok: true, parts } satisfies WorkerReply, parts),
      (err: unknown) => port.postMessage({ ok: false, error: errorToWire(err) } satisfies WorkerReply),
    );
  });
}
