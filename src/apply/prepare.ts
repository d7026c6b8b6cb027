// Everything an apply needs, computed before anything is written: the config (read, checked,
// digested), the desired state compiled from it and encoded for this host, the live state, and
// the plan between them. `lb plan`, `lb apply` and (later) the reconcile loop share it.
// Reads only; the caller holds the instance lock so the live state cannot move underneath.

import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { compileConfig, type RuntimeInputs } from '../core/compile/compile.js';
import { encodeState, type EncodeResult } from '../core/compile/encode.js';
import { checkConfig } from '../core/config/check.js';
import { ConfigError } from '../core/config/config-error.js';
import { isError, type Diagnostic } from '../core/config/diagnostics.js';
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

export interface PrepareOptions {
  instance: string;
  configPath: string;
  revision?: string | null;
  inputs?: RuntimeInputs;
  warn?: (message: string) => void;
}

export function configDigest(sources: readonly ConfigSource[]): string {
  const h = createHash('sha256');
  for (const s of sources) h.update(`${s.file}\0${s.text.length}\0${s.text}\0`);
  return `sha256:${h.digest('hex')}`;
}

/** Throws ConfigError (every diagnostic) when the config is invalid or does not compile. */
export async function preparePlan(options: PrepareOptions): Promise<PreparedPlan> {
  const sources = await readConfigSources(options.configPath);
  const checked = checkConfig(sources);
  if (!checked.ok) throw new ConfigError(checked.stage, checked.diagnostics);
  const compiled = compileConfig(checked.config, options.inputs);
  if (compiled.diagnostics.some(isError)) throw new ConfigError('compile', compiled.diagnostics);

  // The data path of each interface is chosen here, on the host, so the plan shows it and why.
  compiled.state.paths = choosePaths(compiled.state.interfaces, compiled.state.paths);
  const live = readLive(options.instance, options.warn ? { warn: options.warn } : {});
  const ifindexes: Record<string, number> = {};
  const encoded = encodeState(compiled.state, {
    ifindex: (name) => {
      try {
        return (ifindexes[name] = interfaceIndex(name));
      } catch (err) {
        if (isLbError(err, 'LB_NET_IFACE')) return undefined;
        throw err;
      }
    },
    liveTargetIds: live.targetIds,
  });
  for (const [name, index] of Object.entries(ifindexes)) {
    const p = compiled.state.paths?.[name];
    if (p) p.ifindex = index;
  }
  return {
    instance: options.instance,
    configPath: resolve(options.configPath),
    configFiles: checked.config.files,
    configDigest: configDigest(sources),
    revision: options.revision ?? null,
    warnings: [...checked.warnings, ...compiled.diagnostics],
    desired: compiled.state,
    encoded,
    ifindexes,
    live,
    plan: diffStates(compiled.state, live.state),
  };
}
