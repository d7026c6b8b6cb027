// The reconciler's hands on the kernel: the same functions `lb plan` / `lb apply` use (the
// instance lock, recovery of an interrupted apply, checkConfigAt, planCheckedConfig,
// runTransaction, readLive), behind one small interface so the loop's decisions can be tested
// without a data plane.
//
// The daemon's engine checks and plans in a worker thread (prepare-worker.ts) so its event loop
// keeps serving; without `worker` (tests, tools) both run in-process, as `lb plan` does.
//
// applyRequestOf() is the one place a PreparedPlan becomes an ApplyRequest; `lb apply` builds the
// same request inline (src/cli/commands/apply.ts).

import { recoverInstance, runTransaction, withInstanceLock, type ApplyRequest, type ApplyResult, type RecoveryResult } from '../apply/index.js';
import { checkConfigAt, KERNEL_PLAN_HOST, planCheckedConfig, type CheckedConfig, type PlanHost, type PreparedPlan } from '../apply/prepare.js';
import { encodeState } from '../core/compile/encode.js';
import type { RuntimeInputs } from '../core/compile/compile.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import type { PlanSummary } from '../core/plan/plan.js';
import type { LiveState } from '../state/live.js';
import type { LogicalState } from '../core/state.js';
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
}

export interface PrepareRequest {
  /** The config as the validate step read and checked it: prepare does not read it again. */
  config: CheckedConfig;
  revision: string;
  inputs: RuntimeInputs;
  warn?: (message: string) => void;
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
  /** The transaction (caller holds the lock). */
  apply(req: ApplyRequest): ApplyResult;
  /**
   * The same applied state encoded for the host as it is now: an interface deleted and created
   * again has a new ifindex, and listener keys carry it. Target ids are kept.
   */
  reencode(req: ApplyRequest): ApplyRequest;
  readLive(): LiveState;
  /** Ends what the engine runs beside the loop (the prepare worker). */
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
  return { summary: p.plan.summary, changes: planLines(p.plan), warnings: p.warnings, desired: p.desired, configDigest: p.configDigest, request: applyRequestOf(p) };
}

export interface KernelEngineOptions {
  objectDir?: string;
  host?: PlanHost;
  /** Check and plan in a worker thread with these options (the daemon); absent: in-process. */
  worker?: PrepareWorkerOptions;
}

/** The engine on the real kernel for one instance. */
export function kernelEngine(instance: string, opts: KernelEngineOptions = {}): ReconcileEngine {
  const host = opts.host ?? KERNEL_PLAN_HOST;
  const worker = opts.worker ? new PrepareWorker(opts.worker) : undefined;
  return {
    check: (configPath) => (worker ? worker.check(configPath) : checkConfigAt(configPath)),
    withLock: (fn) => withInstanceLock(instance, fn),
    recover: () => recoverInstance(instance),
    prepare: async (req) => {
      const options = { instance, revision: req.revision, inputs: req.inputs, host, ...(req.warn ? { warn: req.warn } : {}) };
      if (!worker) return plannedRevisionOf(planCheckedConfig(req.config, options));
      const { planned } = await worker.plan(req.config, options);
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
      };
    },
    apply: (req) => runTransaction({ ...req, ...(opts.objectDir ? { objectDir: opts.objectDir } : {}) }),
    reencode: (req) => reencodeRequest(req, (name) => host.ifindex(name)),
    readLive: () => host.readLive(instance),
    close: async () => { await worker?.close(); },
  };
}

/** An apply request whose generation is encoded again from its desired state with these ifindexes. */
export function reencodeRequest(req: ApplyRequest, ifindex: (name: string) => number | undefined): ApplyRequest {
  if (req.desired === undefined) return req;
  const encoded = encodeState(req.desired, { ifindex, liveTargetIds: new Map(req.targetIds ?? []) });
  return { ...req, generation: encoded.generation, targetIds: encoded.targetIds };
}
