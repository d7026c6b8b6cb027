// What the daemon's thread and its prepare worker say to each other (prepare-worker.ts is the
// daemon's side, prepare-worker-main.ts the worker's). Everything here is plain data: structured
// clone carries it, or it travels in slices (transfer.ts).
//
// One conversation per reconcile run, one request at a time:
//   check    {configPath}               -> checked  (CheckedConfig, sliced)
//   compile  {inputs, checked?}         -> questions (HostQuestions: interfaces, requested paths)
//   finish   {facts}                    -> planned  (WorkerPlan, sliced)
// The host facts (data paths, ifindexes, live maps) are I/O and are gathered on the daemon's
// thread between compile and finish; the worker reads only the config files.

import type { RuntimeInputs } from '../core/compile/compile.js';
import { ConfigError } from '../core/config/config-error.js';
import type { Diagnostic, DiagnosticStage } from '../core/config/diagnostics.js';
import type { LbConfig, Target } from '../core/config/types.js';
import { LbError, type ErrorCode, ERROR_CODES } from '../core/errors.js';
import type { EncodeResult } from '../core/compile/encode.js';
import type { PlanSummary } from '../core/plan/plan.js';
import type { LogicalState } from '../core/state.js';

export type WorkerRequest =
  | { type: 'check'; configPath: string }
  | { type: 'compile'; inputs: ArrayBuffer[]; checked?: ArrayBuffer[] }
  | { type: 'finish'; facts: ArrayBuffer[] };

export type WorkerReply =
  | { ok: true; parts: ArrayBuffer[] }
  | { ok: false; error: WireError };

/** The daemon's side of a plan made in the worker: what the loop keeps and shows. */
export interface WorkerPlan {
  desired: LogicalState;
  encoded: EncodeResult;
  ifindexes: Record<string, number>;
  compileDiagnostics: Diagnostic[];
  summary: PlanSummary;
  /** The plan's change lines as the status and the log show them (planLines). */
  changes: string[];
}

// ---- runtime inputs as data -------------------------------------------------------------------

/**
 * The runtime's answers for one config, as data: RuntimeInputs are functions, which cannot cross
 * to the worker. `weights` holds effectiveWeight for every target the compiler asks about, in the
 * order walkTargets visits them (null: the configured weight); `resolved` the DNS answer per host.
 */
export interface InputTable {
  weights?: Array<number | null>;
  resolved?: Record<string, string[] | null>;
}

/** Every (proxy, group, target) compileConfig asks the runtime about, in one fixed order. */
function walkTargets(config: LbConfig, visit: (proxy: string, group: string, target: Target) => void): void {
  for (const proxy of config.proxies) {
    for (const t of proxy.defaultTarget.targets) visit(proxy.name, 'default', t);
    for (const route of proxy.sourceRoutes) for (const t of route.targets.targets) visit(proxy.name, route.prefix, t);
  }
}

/** Proxies asked about between two pauses: the runtime's functions cost tens of microseconds a call. */
const PROXIES_PER_PAUSE = 500;

/**
 * Asks the runtime's functions every question compiling this config will ask (the daemon's
 * thread), pausing every few hundred proxies so the event loop is not held for the whole config.
 */
export async function tabulateInputs(config: LbConfig, inputs: RuntimeInputs, pause: () => Promise<void> = async () => {}): Promise<InputTable> {
  const table: InputTable = {};
  const weightOf = inputs.effectiveWeight;
  const resolve = inputs.resolve;
  const weights: Array<number | null> = [];
  const resolved: Record<string, string[] | null> = {};
  for (let from = 0; from < config.proxies.length; from += PROXIES_PER_PAUSE) {
    if (from > 0) await pause();
    walkTargets({ ...config, proxies: config.proxies.slice(from, from + PROXIES_PER_PAUSE) }, (proxy, group, t) => {
      if (weightOf) weights.push(weightOf(proxy, group, t) ?? null);
      if (resolve && t.kind === 'host' && !Object.hasOwn(resolved, t.host)) resolved[t.host] = resolve(t.host) ?? null;
    });
  }
  if (weightOf) table.weights = weights;
  if (resolve) table.resolved = resolved;
  return table;
}

/** The runtime's answers as functions again, over the worker's own copy of the same config. */
export function inputsFromTable(config: LbConfig, table: InputTable): RuntimeInputs {
  const inputs: RuntimeInputs = {};
  const weights = table.weights;
  if (weights) {
    const byTarget = new Map<Target, number | null>();
    let i = 0;
    walkTargets(config, (_p, _g, t) => { byTarget.set(t, weights[i++] ?? null); });
    if (i !== weights.length) throw new Error(`prepare worker: ${weights.length} runtime weights for ${i} targets (the config differs from the one tabulated)`);
    inputs.effectiveWeight = (_proxy, _group, target) => byTarget.get(target) ?? undefined;
  }
  const resolved = table.resolved;
  if (resolved) inputs.resolve = (host) => (Object.hasOwn(resolved, host) ? resolved[host] ?? undefined : undefined);
  return inputs;
}

// ---- errors across the boundary ---------------------------------------------------------------

export interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  data?: Record<string, unknown>;
}

export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const out: WireError = { name: err.name, message: err.message, ...(err.stack !== undefined ? { stack: err.stack } : {}) };
  if (err instanceof LbError) {
    out.code = err.code;
    try {
      out.data = structuredClone(err.data);
    } catch {
      // Data that cannot be cloned stays behind; the message says what failed.
    }
  }
  return out;
}

/** The error as the daemon's code expects it: a ConfigError, an LbError of its code, or an Error. */
export function errorFromWire(w: WireError): Error {
  const data = w.data ?? {};
  let err: Error;
  if (w.name === 'ConfigError' && typeof data['stage'] === 'string' && Array.isArray(data['diagnostics'])) {
    err = new ConfigError(data['stage'] as DiagnosticStage, data['diagnostics'] as Diagnostic[]);
  } else if (w.code !== undefined && Object.hasOwn(ERROR_CODES, w.code)) {
    err = new LbError(w.code as ErrorCode, w.message, data);
  } else {
    err = new Error(w.message);
    err.name = w.name;
  }
  if (w.stack !== undefined) err.stack = `${err.stack ?? ''}\n    --- in the prepare worker ---\n${w.stack}`;
  return err;
}
