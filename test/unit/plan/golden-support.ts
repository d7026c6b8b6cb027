// Shared by the golden-plan and round-trip tests: a fixed host (interface names <-> ifindexes)
// and the live side of a case, made the way the daemon sees it: compile the "before" config,
// encode it into one generation, decode that generation back.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { compileConfig, type RuntimeInputs } from '../../../src/core/compile/compile.js';
import { decodeGeneration } from '../../../src/core/compile/decode.js';
import { encodeState } from '../../../src/core/compile/encode.js';
import type { Diagnostic } from '../../../src/core/config/diagnostics.js';
import { loadConfig } from '../../../src/source/load-config.js';
import { EMPTY_STATE, listenerKey, type LogicalState } from '../../../src/core/state.js';

export const PLANS_DIR = 'test/fixtures/plans';

/** The test host: lo=1, eth0=2, eth1=3, ... */
const HOST = ['lo', 'eth0', 'eth1', 'eth2', 'eth3'];
export const ifindex = (name: string): number | undefined => (HOST.includes(name) ? HOST.indexOf(name) + 1 : undefined);
export const ifname = (index: number): string | undefined => HOST[index - 1];

export function planCases(): string[] {
  return readdirSync(PLANS_DIR, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** The config path of one side (`before` or `after`): NAME.yaml, NAME.edn or the directory NAME/. */
export function configPath(dir: string, side: 'before' | 'after'): string | undefined {
  for (const candidate of [`${side}.yaml`, `${side}.edn`, side]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  return undefined;
}

export async function compilePath(path: string, inputs?: RuntimeInputs): Promise<{ state: LogicalState; diagnostics: Diagnostic[] }> {
  const { config, warnings } = await loadConfig(path);
  const compiled = compileConfig(config, inputs);
  return { state: compiled.state, diagnostics: [...warnings, ...compiled.diagnostics] };
}

/** What the daemon would read back after applying `state`: encode, then decode with the inventory's owners. */
export function roundTrip(state: LogicalState): LogicalState {
  const { generation } = encodeState(state, { ifindex, liveTargetIds: new Map() });
  const owners = new Map(state.listeners.map((l) => [listenerKey(l), l.proxy]));
  return decodeGeneration(generation, { ifname, proxyOf: (key) => owners.get(key) ?? null, interfaces: state.interfaces, paths: state.paths });
}

export async function liveState(dir: string): Promise<LogicalState> {
  const path = configPath(dir, 'before');
  return path === undefined ? EMPTY_STATE : roundTrip((await compilePath(path)).state);
}
