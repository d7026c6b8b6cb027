// The reconciler's hands on the kernel: the same functions `lb plan` / `lb apply` use (the
// instance lock, recovery of an interrupted apply, checkConfigAt, planCheckedConfig,
// runTransaction, readLive), behind one small interface so the loop's decisions can be tested
// without a data plane. Its plans differ in one way: the live side is the state the loop applied
// last while the maps still stand where that apply left them (src/state/known-live.ts).
//
// The daemon's engine checks and plans in a worker thread (prepare-worker.ts), and applies, reads
// back and checks drift in another (apply-worker.ts), so its event loop keeps serving; without
// `worker` (tests, tools) all of it runs in-process, as `lb plan` and `lb apply` do.
//
// applyRequestOf() is the one place a PreparedPlan becomes an ApplyRequest; `lb apply` builds the
// same request inline (src/cli/commands/apply.ts).

import { recoverInstance, runTransaction, withInstanceLock, type ApplyRequest, type RecoveryResult } from '../apply/index.js';
import {
  checkConfigAt, compileChecked, gatherHostFactsKnowing, hostQuestionsOf, KERNEL_PLAN_HOST, planWithFacts, type CheckedConfig, type LiveSource, type PlanHost, type PreparedPlan,
} from '../apply/prepare.js';
import { encodeState } from '../core/compile/encode.js';
import type { RuntimeInputs } from '../core/compile/compile.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import type { PlanSummary } from '../core/plan/plan.js';
import type { LogicalState } from '../core/state.js';
import { readLiveMark, type KnownLive } from '../state/known-live.js';
import { inProcessApplyAndRead, inProcessReadDrift, type AppliedRead, type DriftRead, type SyncEngineParts } from './applied-read.js';
import { ApplyWorker } from './apply-worker.js';
import { PrepareWorker, type PrepareWorkerOptions } from './prepare-worker.js';
import { planLines } from './status.js';

/** What the loop needs of a plan: the diff to show, and exactly what to apply. */
export interface PlannedRevision {
  summary: PlanSummary;
  /** The plan's change lines, as the status and the log show them (planLines). */
  changes: string[];
  warnings: Diagnostic[];
  desired: LogicalState;
  configDigest: string;
  request: ApplyRequest;
  /** What the plan diffed against: the state the loop applied last (`known`, still live), or the maps read. */
  liveFrom: LiveSource;
}

export interface PrepareRequest {
  /** The config as the validate step read and checked it: prepare does not read it again. */
  config: CheckedConfig;
  revision: string;
  inputs: RuntimeInputs;
  warn?: (message: string) => void;
  /** The state the loop applied and verified last, and where the maps stood then: planned against while still live. */
  known?: KnownLive;
}

export interface ReconcileEngine {
  /** The validate step: read the config (file or directory), parse, schema, semantic checks. Throws ConfigError. */
  check(configPath: string): Promise<CheckedConfig>;
  /** Runs fn holding the instance lock (LB_APPLY_LOCKED when another lb process holds it). */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Resolves a journal left by an interrupted apply (caller holds the lock). */
  recover(): RecoveryResult | null;
  /** Compile the config with the runtime inputs, encode it for this host, diff against live. */
  prepare(req: PrepareRequest): Promise<PlannedRevision>;
  /**
   * The transaction, then a read of the live maps compared with the request (caller holds the
   * lock). With `reencode`, the request is first encoded for the host as it is now: an interface
   * deleted and created again has a new ifindex, and listener keys carry it (target ids are kept).
   * Throws when the apply failed; a failed read-back is in the answer.
   */
  applyAndRead(req: ApplyRequest, desired: LogicalState, opts: { reencode: boolean }): Promise<AppliedRead>;
  /** Reads the live maps and compares them with what `req` applied (caller holds the lock). */
  readDrift(req: ApplyRequest, desired: LogicalState): Promise<DriftRead>;
  /** Ends what the engine runs beside the loop (its workers). */
  close?(): Promise<void>;
}

/** The ApplyRequest `lb apply` makes of a prepared plan. */
export function applyRequestOf(p: PreparedPlan): ApplyRequest {
  return {
    instance: p.instance,
    generation: p.encoded.generation,
    interfaces: p.desired.interfaces,
    desired: p.desired,
    targetIds: p.encoded.targetIds,
    revision: p.revision,
    configDigest: p.configDigest,
  };
}

export function plannedRevisionOf(p: PreparedPlan): PlannedRevision {
  return { summary: p.plan.summary, changes: planLines(p.plan), warnings: p.warnings, desired: p.desired, configDigest: p.configDigest, request: applyRequestOf(p), liveFrom: 'maps' };
}

/** planCheckedConfig of the loop: the live side from what it knows when that still holds (gatherHostFactsKnowing). */
function planKnowing(instance: string, host: PlanHost, req: PrepareRequest): PlannedRevision {
  const compiled = compileChecked(req.config, req.inputs);
  const { facts, liveFrom } = gatherHostFactsKnowing(host, instance, hostQuestionsOf(compiled.state), req.known, req.warn);
  const planned = planWithFacts(compiled, facts);
  return {
    summary: planned.plan.summary, changes: planLines(planned.plan), warnings: [...req.config.warnings, ...planned.compileDiagnostics],
    desired: planned.desired, configDigest: req.config.configDigest, liveFrom,
    request: {
      instance, generation: planned.encoded.generation, interfaces: planned.desired.interfaces, desired: planned.desired,
      targetIds: planned.encoded.targetIds, revision: req.revision, configDigest: req.config.configDigest,
    },
  };
}

export interface KernelEngineOptions {
  objectDir?: string;
  host?: PlanHost;
  /** Check and plan in a worker thread with these options, apply in another (the daemon); absent: in-process. */
  worker?: PrepareWorkerOptions;
  /** The apply worker's deadline per request (default DEFAULT_APPLY_TIMEOUT_MS). */
  applyTimeoutMs?: number;
}

/** The engine on the real kernel for one instance. */
export function kernelEngine(instance: string, opts: KernelEngineOptions = {}): ReconcileEngine {
  const host = opts.host ?? KERNEL_PLAN_HOST;
  const worker = opts.worker ? new PrepareWorker(opts.worker) : undefined;
  const applier = opts.worker
    ? new ApplyWorker({ instance, ...(opts.objectDir !== undefined ? { objectDir: opts.objectDir } : {}), ...(opts.applyTimeoutMs !== undefined ? { timeoutMs: opts.applyTimeoutMs } : {}) })
    : undefined;
  const parts = kernelSyncParts(instance, { host, ...(opts.objectDir !== undefined ? { objectDir: opts.objectDir } : {}) });
  return {
    check: (configPath) => (worker ? worker.check(configPath) : checkConfigAt(configPath)),
    withLock: (fn) => withInstanceLock(instance, fn),
    recover: () => recoverInstance(instance),
    prepare: async (req) => {
      if (!worker) return planKnowing(instance, host, req);
      const options = { instance, inputs: req.inputs, host, ...(req.warn ? { warn: req.warn } : {}), ...(req.known ? { known: req.known } : {}) };
      const { planned, liveFrom } = await worker.plan(req.config, options);
      return {
        summary: planned.summary,
        changes: planned.changes,
        warnings: [...req.config.warnings, ...planned.compileDiagnostics],
        desired: planned.desired,
        configDigest: req.config.configDigest,
        request: {
          instance, generation: planned.encoded.generation, interfaces: planned.desired.interfaces, desired: planned.desired,
          targetIds: planned.encoded.targetIds, revision: req.revision, configDigest: req.config.configDigest,
        },
        liveFrom,
      };
    },
    applyAndRead: async (req, desired, { reencode }) => (applier ? applier.applyAndRead(req, desired, reencode) : inProcessApplyAndRead(parts, req, desired, reencode)),
    readDrift: async (req, desired) => (applier ? applier.readDrift(req, desired) : inProcessReadDrift(parts, req, desired)),
    close: async () => { await Promise.all([worker?.close(), applier?.close()]); },
  };
}

/** The transaction, the read of the live maps and the encoding anew, on the calling thread. */
export function kernelSyncParts(instance: string, opts: { host?: PlanHost; objectDir?: string; log?: (line: string) => void } = {}): SyncEngineParts {
  const host = opts.host ?? KERNEL_PLAN_HOST;
  return {
    apply: (req) => runTransaction({ ...req, ...(opts.objectDir !== undefined ? { objectDir: opts.objectDir } : {}), ...(opts.log ? { log: opts.log } : {}) }),
    readLive: () => host.readLive(instance),
    mark: () => readLiveMark(instance),
    reencode: (req) => reencodeRequest(req, (name) => host.ifindex(name)),
  };
}

/** An apply request whose generation is encoded again from its desired state with these ifindexes. */
export function reencodeRequest(req: ApplyRequest, ifindex: (name: string) => number | undefined): ApplyRequest {
  if (req.desired === undefined) return req;
  const encoded = encodeState(req.desired, { ifindex, liveTargetIds: new Map(req.targetIds ?? []) });
  return { ...req, generation: encoded.generation, targetIds: encoded.targetIds };
}
