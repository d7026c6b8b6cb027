// The reconciler's hands on the kernel: the same functions `lb plan` / `lb apply` use (the
// instance lock, recovery of an interrupted apply, planCheckedConfig, runTransaction, readLive), behind
// one small interface so the loop's decisions can be tested without a data plane.
//
// applyRequestOf() is the one place a PreparedPlan becomes an ApplyRequest; `lb apply` builds the
// same request inline (src/cli/commands/apply.ts).

import { recoverInstance, runTransaction, withInstanceLock, type ApplyRequest, type ApplyResult, type RecoveryResult } from '../apply/index.js';
import { checkConfigAt, KERNEL_PLAN_HOST, planCheckedConfig, type CheckedConfig, type PlanHost, type PreparedPlan } from '../apply/prepare.js';
import { encodeState } from '../core/compile/encode.js';
import type { RuntimeInputs } from '../core/compile/compile.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import type { Plan } from '../core/plan/plan.js';
import type { LiveState } from '../state/live.js';
import type { LogicalState } from '../core/state.js';

/** What the loop needs of a plan: the diff to show, and exactly what to apply. */
export interface PlannedRevision {
  plan: Plan;
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
  return { plan: p.plan, warnings: p.warnings, desired: p.desired, configDigest: p.configDigest, request: applyRequestOf(p) };
}

/** The engine on the real kernel for one instance. */
export function kernelEngine(instance: string, opts: { objectDir?: string; host?: PlanHost } = {}): ReconcileEngine {
  const host = opts.host ?? KERNEL_PLAN_HOST;
  return {
    withLock: (fn) => withInstanceLock(instance, fn),
    recover: () => recoverInstance(instance),
    prepare: async (req) => plannedRevisionOf(planCheckedConfig(req.config, {
      instance, revision: req.revision, inputs: req.inputs, host, ...(req.warn ? { warn: req.warn } : {}),
    })),
    apply: (req) => runTransaction({ ...req, ...(opts.objectDir ? { objectDir: opts.objectDir } : {}) }),
    reencode: (req) => reencodeRequest(req, (name) => host.ifindex(name)),
    readLive: () => host.readLive(instance),
  };
}

/** An apply request whose generation is encoded again from its desired state with these ifindexes. */
export function reencodeRequest(req: ApplyRequest, ifindex: (name: string) => number | undefined): ApplyRequest {
  if (req.desired === undefined) return req;
  const encoded = encodeState(req.desired, { ifindex, liveTargetIds: new Map(req.targetIds ?? []) });
  return { ...req, generation: encoded.generation, targetIds: encoded.targetIds };
}

/** The validate step's result: the config read, parsed and checked once. */
export type ValidatedConfig = CheckedConfig;

/**
 * The validate step: read the config (file or directory), parse, schema, semantic checks. Pure
 * apart from reading the files; throws ConfigError with every diagnostic.
 */
export function validateConfigAt(configPath: string): Promise<ValidatedConfig> {
  return checkConfigAt(configPath);
}
