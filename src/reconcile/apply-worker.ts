// The daemon's side of its apply worker: the transaction, its read-back and the drift checks'
// reads run in a worker thread, so /healthz, the webhooks and the control socket keep answering
// while 10,000 proxies are written and read back (seconds of synchronous bpf() calls). The
// worker's side: apply-work.ts; the conversation: apply-protocol.ts.
//
// One worker for the daemon's life, not one per run: the transaction's memory of the last applies
// (the delta apply, src/apply/delta.ts) lives in it, and it holds the applied state the loop asks
// about, so a drift check sends an id, not the state. What it is sent and what it answers is
// (de)serialized here in slices with turns of the event loop between them (transfer.ts).
//
// The instance lock is the daemon's: the caller holds it (withInstanceLock, a flock of the
// process) for the whole request, and the worker is a thread of the same process. A request that
// misses its deadline, or a worker that crashes or runs out of heap, fails with LB_APPLY_FAILED
// only once the thread has stopped (worker-channel.ts): nothing writes the maps any more when the
// caller releases the lock. A transaction cut short leaves its journal; the next run's recovery
// (src/apply/recover.ts, under the lock) finishes or rolls it back, as after a crash of `lb apply`.
// The next request starts a fresh worker, whose first apply takes the full path.

import type { ApplyRequest } from '../apply/index.js';
import { LbError } from '../core/errors.js';
import type { LogicalState } from '../core/state.js';
import type { AppliedRead, DriftRead } from './applied-read.js';
import { heldStateOf, type ApplyWorkerRequest, type WorkerApplied } from './apply-protocol.js';
import { errorFromWire } from './prepare-protocol.js';
import { deserializeSliced, sliced, yieldToEventLoop } from './transfer.js';
import { WorkerChannel } from './worker-channel.js';

/** How long one apply and its read-back (or a drift check) may take by default. */
export const DEFAULT_APPLY_TIMEOUT_MS = 120_000;
/** The worker's heap limit by default (old generation, MiB). */
export const DEFAULT_APPLY_HEAP_MB = 1024;

export interface ApplyWorkerOptions {
  instance: string;
  objectDir?: string;
  /** Milliseconds one request may take before the worker is terminated (default 120 s). */
  timeoutMs?: number;
  maxHeapMb?: number;
  /** The worker's code (tests): a module URL, or with `eval` the source of a script. */
  entry?: URL | string;
  eval?: boolean;
}

export class ApplyWorker {
  private readonly channel: WorkerChannel;
  private nextId = 1;
  /** The request whose state the current worker holds, under which id. */
  private holds: { id: number; request: ApplyRequest; worker: number } | undefined;

  constructor(private readonly o: ApplyWorkerOptions) {
    this.channel = new WorkerChannel({
      name: 'apply',
      entry: o.entry ?? new URL('./apply-worker-main.js', import.meta.url),
      eval: o.eval ?? false,
      timeoutMs: o.timeoutMs ?? DEFAULT_APPLY_TIMEOUT_MS,
      maxHeapMb: o.maxHeapMb ?? DEFAULT_APPLY_HEAP_MB,
      failure: (message, data) => new LbError('LB_APPLY_FAILED',
        `${message}; an apply it cut short is finished or rolled back by the next run's recovery of its journal`, { instance: o.instance, ...data }),
    });
  }

  /** Workers started so far (a failed worker is not reused). */
  get started(): number {
    return this.channel.started;
  }

  /** Applies `request` (encoded anew first with `reencode`) and reads the live maps back. The caller holds the lock. */
  async applyAndRead(request: ApplyRequest, desired: LogicalState, reencode: boolean): Promise<AppliedRead> {
    const addressed = await this.address(request, desired);
    const out = await deserializeSliced<WorkerApplied>(
      await this.request({ type: 'apply', ...addressed, reencode }, `apply${reencode ? ' (encoded anew)' : ''} and read-back`), yieldToEventLoop);
    const applied = out.reencoded ? { ...request, ...out.reencoded } : request;
    this.holds = { id: addressed.id, request: applied, worker: this.channel.started };
    return { request: applied, result: out.result, readBack: 'error' in out.readBack ? { error: errorFromWire(out.readBack.error) } : out.readBack, mark: out.mark };
  }

  /** Reads the live maps and compares them with what `request` applied. */
  async readDrift(request: ApplyRequest, desired: LogicalState): Promise<DriftRead> {
    const addressed = await this.address(request, desired);
    const out = await deserializeSliced<DriftRead>(await this.request({ type: 'drift', ...addressed }, 'drift check (read of the live maps)'), yieldToEventLoop);
    this.holds = { id: addressed.id, request, worker: this.channel.started };
    return out;
  }

  async close(): Promise<void> {
    this.holds = undefined;
    await this.channel.close();
  }

  /** The id of the state in the worker, and the state itself when this worker does not hold it. */
  private async address(request: ApplyRequest, desired: LogicalState): Promise<Pick<ApplyWorkerRequest, 'id' | 'state'>> {
    const h = this.holds;
    if (h && h.request === request && h.worker === this.channel.started && this.channel.alive) return { id: h.id };
    this.holds = undefined;
    return { id: this.nextId++, state: await sliced(heldStateOf(request, desired)) };
  }

  private request(req: ({ type: 'apply'; reencode: boolean } | { type: 'drift' }) & Pick<ApplyWorkerRequest, 'id' | 'state'>, what: string): Promise<ArrayBuffer[]> {
    const full = { ...req, instance: this.o.instance, ...(this.o.objectDir !== undefined ? { objectDir: this.o.objectDir } : {}) } as ApplyWorkerRequest;
    return this.channel.request(full, full.state ?? [], what);
  }
}
