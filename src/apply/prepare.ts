// Everything an apply needs, computed before anything is written: the config (read, checked,
// digested), the desired state compiled from it and encoded for this host, the live state, and
// the plan between them. `lb plan`, `lb apply` and the reconcile loop share it.
//
// Two halves, so a caller that already checked the config does not read and parse it again:
// checkConfigAt() reads, parses and checks once; planCheckedConfig() plans a checked config. The
// reconcile loop checks in its validate step and plans under the lock; `lb plan` / `lb apply`
// call both in a row (preparePlan() is that pair), adding the warnings only a plan by hand gets.
// Reads only; the caller holds the instance lock so the live state cannot move underneath.

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { compileConfig, type CompileResult, type RuntimeInputs } from '../core/compile/compile.js';
import { encodeState, type EncodeResult } from '../core/compile/encode.js';
import { checkConfig } from '../core/config/check.js';
import { ConfigError } from '../core/config/config-error.js';
import { isError, type Diagnostic } from '../core/config/diagnostics.js';
import type { LbConfig } from '../core/config/types.js';
import { readConfigSources } from '../source/load-config.js';
import type { ConfigSource } from '../core/config/check.js';
import { choosePaths, type ChosenPath } from '../dataplane/data-paths.js';
import { interfaceIndex } from '../dataplane/index.js';
import { isLbError } from '../core/errors.js';
import { diffStates, type Plan } from '../core/plan/plan.js';
import { readLive, type LiveState } from '../state/live.js';
import { readKnownLive, type KnownLive, type LiveView } from '../state/known-live.js';
import type { InterfacePath, LogicalState } from '../core/state.js';

export interface PreparedPlan {
  instance: string;
  /** Absolute path of the config file or directory. */
  configPath: string;
  configFiles: string[];
  /** "sha256:<hex>" over the config files' names and contents, in merge order. */
  configDigest: string;
  revision: string | null;
  /** Config and compile warnings. */
  warnings: Diagnostic[];
  desired: LogicalState;
  /** The desired state as map content for this host (ids assigned against the live state). */
  encoded: EncodeResult;
  /** ifindex of every interface the encoding used, to catch an interface re-created before a saved plan is applied. */
  ifindexes: Record<string, number>;
  live: LiveState;
  plan: Plan;
}

/** A config read, parsed and checked once: what the plan is made of, and its digest. */
export interface CheckedConfig {
  /** Absolute path of the config file or directory. */
  configPath: string;
  config: LbConfig;
  /** Config warnings (compile warnings come with the plan). */
  warnings: Diagnostic[];
  files: string[];
  /** "sha256:<hex>" over the config files' names and contents, in merge order. */
  configDigest: string;
}

/** What a plan asks of the host. The kernel's by default; tests plan against a fake host. */
export interface PlanHost {
  readLive(instance: string, warn?: (message: string) => void): LiveState;
  /** The live state from what this process applied, or null when the maps moved since (src/state/known-live.ts). */
  readKnownLive?(instance: string, known: KnownLive, warn?: (message: string) => void): LiveView | null;
  /** The ifindex of an interface, undefined when there is none of that name. */
  ifindex(name: string): number | undefined;
  choosePaths: typeof choosePaths;
}

export const KERNEL_PLAN_HOST: PlanHost = {
  readLive: (instance, warn) => readLive(instance, warn ? { warn } : {}),
  readKnownLive: (instance, known, warn) => readKnownLive(instance, known, warn ? { warn } : {}),
  ifindex: (name) => {
    try {
      return interfaceIndex(name);
    } catch (err) {
      if (isLbError(err, 'LB_NET_IFACE')) return undefined;
      throw err;
    }
  },
  choosePaths,
};

export interface PlanCheckedOptions {
  instance: string;
  revision?: string | null;
  inputs?: RuntimeInputs;
  warn?: (message: string) => void;
  host?: PlanHost;
}

export interface PrepareOptions extends PlanCheckedOptions {
  configPath: string;
}

export function configDigest(sources: readonly ConfigSource[]): string {
  const h = createHash('sha256');
  for (const s of sources) h.update(`${s.file}\0${s.text.length}\0${s.text}\0`);
  return `sha256:${h.digest('hex')}`;
}

/**
 * Reads the config (file or directory), parses and checks it: the one read of a plan. Throws
 * ConfigError with every diagnostic.
 */
export async function checkConfigAt(configPath: string): Promise<CheckedConfig> {
  const sources = await readConfigSources(configPath);
  const checked = checkConfig(sources);
  if (!checked.ok) throw new ConfigError(checked.stage, checked.diagnostics);
  return {
    configPath: resolve(configPath),
    config: checked.config,
    warnings: checked.warnings,
    files: checked.config.files,
    configDigest: configDigest(sources),
  };
}

/** Reads, checks and plans the config at a path (`lb plan`, `lb apply`). Throws ConfigError. */
export async function preparePlan(options: PrepareOptions): Promise<PreparedPlan> {
  const { configPath, ...plan } = options;
  return planCheckedConfig(await checkConfigAt(configPath), plan);
}

/**
 * Plans a checked config without reading it again. Throws ConfigError when it does not compile.
 * The three parts in a row: compile (pure), the host's facts (I/O), encode and diff (pure). The
 * daemon runs the pure parts in its prepare worker (src/reconcile/prepare-worker.ts).
 */
export function planCheckedConfig(checked: CheckedConfig, options: PlanCheckedOptions): PreparedPlan {
  const host = options.host ?? KERNEL_PLAN_HOST;
  const compiled = compileChecked(checked, options.inputs);
  const { facts, live } = gatherHostFacts(host, options.instance, hostQuestionsOf(compiled.state), options.warn);
  const planned = planWithFacts(compiled, facts);
  return {
    instance: options.instance,
    configPath: checked.configPath,
    configFiles: checked.files,
    configDigest: checked.configDigest,
    revision: options.revision ?? null,
    warnings: [...checked.warnings, ...planned.compileDiagnostics],
    desired: planned.desired,
    encoded: planned.encoded,
    ifindexes: planned.ifindexes,
    live,
    plan: planned.plan,
  };
}

/** Compiles a checked config with the runtime inputs. Throws ConfigError on any compile error. */
export function compileChecked(checked: CheckedConfig, inputs?: RuntimeInputs): CompileResult {
  const compiled = compileConfig(checked.config, inputs);
  if (compiled.diagnostics.some(isError)) throw new ConfigError('compile', compiled.diagnostics);
  return compiled;
}

/** What a plan needs of the host, as plain data (it crosses to the prepare worker). */
export interface HostFacts {
  /** The data path chosen for each interface of the compiled state. */
  paths: Record<string, ChosenPath>;
  /** ifindex of each interface of the compiled state that exists on this host. */
  ifindexes: Record<string, number>;
  /** "addr:port" -> target id of the live state: kept ids keep flows on their backends. */
  liveTargetIds: Map<string, number>;
  /** The live state in operator terms, to diff against. */
  liveState: LogicalState;
}

/** What of the compiled state the host is asked about (small: it crosses back from the prepare worker). */
export interface HostQuestions {
  interfaces: string[];
  /** The data paths the config asks for, per interface. */
  paths: Record<string, InterfacePath>;
  /** Every interface the encoding looks up: the state's and its listeners'. */
  ifindexNames: string[];
}

export function hostQuestionsOf(state: LogicalState): HostQuestions {
  return {
    interfaces: state.interfaces,
    paths: state.paths ?? {},
    ifindexNames: [...new Set([...state.interfaces, ...state.listeners.map((l) => l.iface)])],
  };
}

/** The I/O of a plan: data paths (netlink), interface indexes, the live maps. */
export function gatherHostFacts(host: PlanHost, instance: string, q: HostQuestions, warn?: (message: string) => void): { facts: HostFacts; live: LiveState } {
  // The data path of each interface is chosen here, on the host, so the plan shows it and why.
  const paths = host.choosePaths(q.interfaces, q.paths);
  const live = host.readLive(instance, warn);
  return { facts: factsOf(host, q, paths, live), live };
}

/** Where a plan's live side came from: the process's memory of its last apply, or the maps. */
export type LiveSource = 'memory' | 'maps';

/**
 * gatherHostFacts for a process that applied before (the daemon): the live side is what it
 * applied, while the maps show nothing moved since (src/state/known-live.ts); else the maps are read.
 */
export function gatherHostFactsKnowing(host: PlanHost, instance: string, q: HostQuestions, known: KnownLive | undefined,
  warn?: (message: string) => void): { facts: HostFacts; liveFrom: LiveSource } {
  const paths = host.choosePaths(q.interfaces, q.paths);
  const view = known !== undefined && host.readKnownLive ? host.readKnownLive(instance, known, warn) : null;
  if (view !== null) return { facts: factsOf(host, q, paths, view), liveFrom: 'memory' };
  return { facts: factsOf(host, q, paths, host.readLive(instance, warn)), liveFrom: 'maps' };
}

function factsOf(host: PlanHost, q: HostQuestions, paths: Record<string, ChosenPath>, live: LiveView): HostFacts {
  const ifindexes: Record<string, number> = {};
  for (const name of q.ifindexNames) {
    const index = host.ifindex(name);
    if (index !== undefined) ifindexes[name] = index;
  }
  return { paths, ifindexes, liveTargetIds: live.targetIds, liveState: live.state };
}

/** A plan's pure half: the compiled state encoded with the host's facts, and its diff against the live state. */
export interface PlannedState {
  desired: LogicalState;
  encoded: EncodeResult;
  /** ifindex of every interface the encoding used. */
  ifindexes: Record<string, number>;
  compileDiagnostics: Diagnostic[];
  plan: Plan;
}

/** Encodes the compiled state for the host the facts describe and diffs it against the live state. Pure. */
export function planWithFacts(compiled: CompileResult, facts: HostFacts): PlannedState {
  const state = compiled.state;
  state.paths = facts.paths;
  const ifindexes: Record<string, number> = {};
  const encoded = encodeState(state, {
    ifindex: (name) => {
      const index = Object.hasOwn(facts.ifindexes, name) ? facts.ifindexes[name] : undefined;
      if (index !== undefined) ifindexes[name] = index;
      return index;
    },
    liveTargetIds: facts.liveTargetIds,
  });
  for (const [name, index] of Object.entries(ifindexes)) {
    const p = state.paths[name];
    if (p) p.ifindex = index;
  }
  return { desired: state, encoded, ifindexes, compileDiagnostics: compiled.diagnostics, plan: diffStates(state, facts.liveState) };
}
