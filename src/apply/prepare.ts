// Everything an apply needs, computed before anything is written: the config (read, checked,
// digested), the desired state compiled from it and encoded for this host, the live state, and
// the plan between them. `lb plan`, `lb apply` and the reconcile loop share it.
//
// Two halves, so a caller that already checked the config does not read and parse it again:
// checkConfigAt() reads, parses and checks once; planCheckedConfig() plans a checked config. The
// reconcile loop checks in its validate step and plans under the lock; `lb plan` / `lb apply`
// call preparePlan(), which is both in a row.
// Reads only; the caller holds the instance lock so the live state cannot move underneath.

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { compileConfig, type RuntimeInputs } from '../core/compile/compile.js';
import { encodeState, type EncodeResult } from '../core/compile/encode.js';
import { checkConfig } from '../core/config/check.js';
import { ConfigError } from '../core/config/config-error.js';
import { isError, type Diagnostic } from '../core/config/diagnostics.js';
import type { LbConfig } from '../core/config/types.js';
import { readConfigSources } from '../source/load-config.js';
import type { ConfigSource } from '../core/config/check.js';
import { choosePaths } from '../dataplane/data-paths.js';
import { interfaceIndex } from '../dataplane/index.js';
import { isLbError } from '../core/errors.js';
import { diffStates, type Plan } from '../core/plan/plan.js';
import { readLive, type LiveState } from '../state/live.js';
import type { LogicalState } from '../core/state.js';

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
  /** The ifindex of an interface, undefined when there is none of that name. */
  ifindex(name: string): number | undefined;
  choosePaths: typeof choosePaths;
}

export const KERNEL_PLAN_HOST: PlanHost = {
  readLive: (instance, warn) => readLive(instance, warn ? { warn } : {}),
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

/** Plans a checked config without reading it again. Throws ConfigError when it does not compile. */
export function planCheckedConfig(checked: CheckedConfig, options: PlanCheckedOptions): PreparedPlan {
  const host = options.host ?? KERNEL_PLAN_HOST;
  const compiled = compileConfig(checked.config, options.inputs);
  if (compiled.diagnostics.some(isError)) throw new ConfigError('compile', compiled.diagnostics);

  // The data path of each interface is chosen here, on the host, so the plan shows it and why.
  compiled.state.paths = host.choosePaths(compiled.state.interfaces, compiled.state.paths);
  const live = host.readLive(options.instance, options.warn);
  const ifindexes: Record<string, number> = {};
  const encoded = encodeState(compiled.state, {
    ifindex: (name) => {
      const index = host.ifindex(name);
      if (index !== undefined) ifindexes[name] = index;
      return index;
    },
    liveTargetIds: live.targetIds,
  });
  for (const [name, index] of Object.entries(ifindexes)) {
    const p = compiled.state.paths?.[name];
    if (p) p.ifindex = index;
  }
  return {
    instance: options.instance,
    configPath: checked.configPath,
    configFiles: checked.files,
    configDigest: checked.configDigest,
    revision: options.revision ?? null,
    warnings: [...checked.warnings, ...compiled.diagnostics],
    desired: compiled.state,
    encoded,
    ifindexes,
    live,
    plan: diffStates(compiled.state, live.state),
  };
}
