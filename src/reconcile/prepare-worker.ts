// The daemon's side of its prepare worker: reading, parsing, checking, compiling, encoding and
// diffing a config run in a worker thread, so the daemon's event loop keeps serving /healthz,
// webhooks and the control socket while a large config is prepared (docs/daemon.md, "Off the
// event loop"). The worker's side: prepare-work.ts; the conversation: prepare-protocol.ts.
//
// One worker per run: check starts a fresh one, which keeps its copy of the checked config for
// the compile that follows; the plan ends it. Every request has a deadline: a worker that does
// not answer in time is terminated and the run fails with LB_DAEMON_PREPARE, as does a worker
// that dies (out of memory against its heap limit, a crash). The applied revision keeps serving;
// the next run starts a fresh worker. The daemon's process never dies with its worker.
//
// The host's facts (data paths via netlink, interface indexes, the live maps via bpf()) are I/O
// and are gathered here, on the daemon's thread, between the worker's compile and its plan. The
// live side is the state the loop applied last while the maps still stand where that apply left
// them (src/state/known-live.ts); else the maps are read and decoded.

import { gatherHostFactsKnowing, KERNEL_PLAN_HOST, type CheckedConfig, type HostQuestions, type LiveSource, type PlanHost } from '../apply/prepare.js';
import type { RuntimeInputs } from '../core/compile/compile.js';
import { LbError } from '../core/errors.js';
import type { KnownLive } from '../state/known-live.js';
import { tabulateInputs, type WorkerPlan, type WorkerRequest } from './prepare-protocol.js';
import { deserializeSliced, sliced, yieldToEventLoop } from './transfer.js';
import { WorkerChannel } from './worker-channel.js';

/** How long one request to the worker may take by default (check; compile; encode and diff). */
export const DEFAULT_PREPARE_TIMEOUT_MS = 30_000;
/** The worker's heap limit by default (old generation, MiB): a hostile config ends the worker, not the daemon. */
export const DEFAULT_PREPARE_HEAP_MB = 1024;

export interface PrepareWorkerOptions {
  /** Milliseconds one request may take before the worker is terminated (default 30 s). */
  timeoutMs?: number;
  /** The worker's old-generation heap limit in MiB (default 1024). */
  maxHeapMb?: number;
  /**
   * The worker's code (tests): a module URL, or with `eval` the source of a script. Default: the
   * compiled prepare-worker-main.js beside this module.
   */
  entry?: URL | string;
  eval?: boolean;
}

export interface WorkerPlanOptions {
  instance: string;
  inputs: RuntimeInputs;
  host?: PlanHost;
  warn?: (message: string) => void;
  /** The state the loop applied last: the live side while the maps still stand where it left them. */
  known?: KnownLive;
}

export class PrepareWorker {
  private readonly channel: WorkerChannel;
  /** The checked config whose copy the current worker holds. */
  private holds: CheckedConfig | undefined;

  constructor(opts: PrepareWorkerOptions = {}) {
    this.channel = new WorkerChannel({
      name: 'prepare',
      entry: opts.entry ?? new URL('./prepare-worker-main.js', import.meta.url),
      eval: opts.eval ?? false,
      timeoutMs: opts.timeoutMs ?? DEFAULT_PREPARE_TIMEOUT_MS,
      maxHeapMb: opts.maxHeapMb ?? DEFAULT_PREPARE_HEAP_MB,
      failure: (message, data) => new LbError('LB_DAEMON_PREPARE', message, data),
    });
  }

  /** Workers started so far (tests and the log: a failed worker is not reused). */
  get started(): number {
    return this.channel.started;
  }

  /** Reads, parses and checks the config in a fresh worker. Throws ConfigError, or LB_DAEMON_PREPARE. */
  async check(configPath: string): Promise<CheckedConfig> {
    await this.close();
    const parts = await this.request({ type: 'check', configPath });
    const checked = await deserializeSliced<CheckedConfig>(parts, yieldToEventLoop);
    this.holds = checked;
    return checked;
  }

  /**
   * Compiles and plans a checked config: the worker compiles with the runtime's answers, this
   * thread gathers the host's facts, the worker encodes and diffs. Ends the worker.
   */
  async plan(checked: CheckedConfig, opts: WorkerPlanOptions): Promise<{ planned: WorkerPlan; liveFrom: LiveSource }> {
    try {
      let sent: ArrayBuffer[] | undefined;
      if (!this.channel.alive || this.holds !== checked) {
        // Not the config this worker checked: a fresh worker gets a copy.
        await this.close();
        sent = await sliced(checked);
      }
      const inputs = await sliced(await tabulateInputs(checked.config, opts.inputs, yieldToEventLoop));
      const questions = await deserializeSliced<HostQuestions>(
        await this.request({ type: 'compile', inputs, ...(sent ? { checked: sent } : {}) }), yieldToEventLoop);
      const { facts, liveFrom } = gatherHostFactsKnowing(opts.host ?? KERNEL_PLAN_HOST, opts.instance, questions, opts.known, opts.warn);
      const planned = await deserializeSliced<WorkerPlan>(await this.request({ type: 'finish', facts: await sliced(facts) }), yieldToEventLoop);
      return { planned, liveFrom };
    } finally {
      await this.close();
    }
  }

  /** Ends the worker, if any (a request in flight fails). */
  async close(): Promise<void> {
    this.holds = undefined;
    await this.channel.close();
  }

  private request(req: WorkerRequest): Promise<ArrayBuffer[]> {
    const transfer = req.type === 'check' ? [] : [...(req.type === 'compile' ? [...req.inputs, ...(req.checked ?? [])] : req.facts)];
    const what = req.type === 'check' ? 'check (read, parse, schema and semantic checks)' : req.type === 'compile' ? 'compile' : 'plan (encode and diff)';
    return this.channel.request(req, transfer, what);
  }
}
