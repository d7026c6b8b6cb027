// The apply worker's work (apply-protocol.ts has the conversation): the transaction and its
// read-back, and drift checks, on the kernel of the daemon's process but off its event loop.
// What the transaction remembers between applies for the delta apply (src/apply/delta.ts) lives
// in this thread's module state, so it lasts as long as the worker; a fresh worker takes the full
// path once, as a fresh process does. Kept apart from the entry (apply-worker-main.ts) so tests
// run it in-process, or in a worker of their own with a progress hook (serveApplyWork).

import { serialize } from 'node:v8';
import type { MessagePort } from 'node:worker_threads';
import type { ApplyRequest } from '../apply/index.js';
import { inProcessApplyAndRead, inProcessReadDrift } from './applied-read.js';
import { requestOf, type ApplyWorkerRequest, type HeldState, type WorkerApplied } from './apply-protocol.js';
import { kernelSyncParts } from './engine.js';
import { errorToWire } from './prepare-protocol.js';
import { deserializeSliced, serializeSliced } from './transfer.js';
import { serveRequests } from './worker-channel.js';

export interface ApplyWorkOptions {
  /** The transaction's progress lines (tests: a hook that stops the worker at a chosen point). */
  log?: (line: string) => void;
}

export class ApplyWork {
  private held: { id: number; state: HeldState } | undefined;

  constructor(private readonly opts: ApplyWorkOptions = {}) {}

  async handle(req: ApplyWorkerRequest): Promise<ArrayBuffer[]> {
    if (req.state) this.held = { id: req.id, state: await deserializeSliced<HeldState>(req.state) };
    const held = this.held;
    if (!held || held.id !== req.id) throw new Error(`apply worker: state #${req.id} is not held here (${held ? `#${held.id} is` : 'none is'})`);
    const log = this.opts.log;
    const parts = kernelSyncParts(req.instance, { ...(req.objectDir !== undefined ? { objectDir: req.objectDir } : {}), ...(log ? { log } : {}) });
    const request = requestOf(held.state);
    const desired = held.state.desired;
    if (req.type === 'drift') return [...serializeSliced(inProcessReadDrift(parts, request, desired))];
    const applied = inProcessApplyAndRead(parts, request, desired, req.reencode);
    // What is live from here on, verified or not: a heal of it later starts from there.
    const reencoded = applied.request !== request && !sameEncoding(applied.request, request);
    if (reencoded) held.state = { ...held.state, request: { ...held.state.request, generation: applied.request.generation, targetIds: applied.request.targetIds } };
    const out: WorkerApplied = {
      result: applied.result,
      readBack: 'error' in applied.readBack ? { error: errorToWire(applied.readBack.error) } : applied.readBack,
      mark: applied.mark,
      ...(reencoded ? { reencoded: { generation: applied.request.generation, targetIds: applied.request.targetIds } } : {}),
    };
    return [...serializeSliced(out)];
  }
}

function sameEncoding(a: ApplyRequest, b: ApplyRequest): boolean {
  return serialize([a.generation, a.targetIds ?? null]).equals(serialize([b.generation, b.targetIds ?? null]));
}

/** Answers the daemon's requests on `port` with `work`. */
export function serveApplyWork(port: MessagePort, work: ApplyWork): void {
  serveRequests<ApplyWorkerRequest>(port, (req) => work.handle(req));
}
