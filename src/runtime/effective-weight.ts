// The effective weight of every target of every group, from the runtime's state. Pure.
//
// effectiveWeights() is the one place the rules live; buildRuntimeInputs() applies it to each
// group of a config (default target, source routes, SNI routes: docs/design.md §1, every group) and hands
// compileConfig its RuntimeInputs.
//
// Per target, in this order:
//   base     = configured weight (least-connections with `weighted: false`: DEFAULT_WEIGHT when > 0)
//   drained  -> 0 (operator intent; never overridden)
//   fraction = mean over the target's endpoints of health x circuit
//              health:  unchecked/unknown/healthy 1, recovering 0.25/0.5/0.75, unhealthy 0
//              circuit: closed 1, half-open 0.1 (test traffic), open 0
//              an ip target has one endpoint; a host target one per resolved address
//   weight   = fraction == 0 ? 0 : max(1, round(base x fraction))
//              (the floor of 1 keeps a weight-1 target ramping and a half-open target probing)
// Per group:
//   fail open: when the group's configured weights are not all 0 and every target came out 0 for
//   health or circuit reasons, every non-drained target gets its base weight back. Sending new
//   flows to backends that may be down beats dropping all of them: a check can be wrong (a broken
//   health endpoint, a network split between the LB and the backends only), a real outage loses
//   nothing more, and the breaker's and checks' state stays visible as "fail-open" in status.
//   A group drained on purpose (every target drained) stays at 0.
//   least-connections: leastConnectionsWeights() over the weights above (least-connections.ts).
//
// DNS targets (resolve): an address of a host whose every use is down (health unhealthy or circuit
// open) is left out of the answer, so compile shares the target's weight among the live addresses;
// if that would leave none, every address is returned (the target's weight, 0 or failed open,
// decides). The target's weight carries the mean fraction of its addresses, so a host with one of
// two addresses down counts half, like two ip targets with one down. Within the host, live
// addresses share equally (a recovering address gets an equal share: compile has no per-address
// weight hook).

import { MAX_WEIGHT, type GroupName, type RuntimeInputs } from '../core/compile/compile.js';
import { DEFAULT_WEIGHT } from '../core/config/defaults.js';
import type { LbConfig, Settings, Target } from '../core/config/types.js';
import { circuitFraction, type CircuitState, type CircuitStatus } from './circuit-breaker.js';
import type { DrainState } from './drain.js';
import { healthKey } from './health/specs.js';
import { healthFraction, type HealthState } from './health/state.js';
import { backendKey, configGroups, drainKey, weightKey } from './keys.js';
import { leastConnectionsWeights } from './least-connections.js';
import { runSliced, runWhole } from './slices.js';

export interface EndpointView {
  /** null: not health checked. */
  health: Pick<HealthState, 'status' | 'recoveryStep'> | null;
  /** undefined: no breaker state (closed). */
  circuit: CircuitStatus | undefined;
}

export interface TargetWeightInput {
  /** Configured weight, 0..MAX_WEIGHT. */
  weight: number;
  draining: boolean;
  /** One per backend address; empty (an unresolved host): treated as one healthy endpoint. */
  endpoints: readonly EndpointView[];
  /** Active flows (mean per address for a host target); used by least-connections only. */
  activeFlows: number;
}

export interface GroupWeightOptions {
  algorithm: Settings['loadBalancing']['algorithm'];
  weighted: boolean;
}

export interface TargetWeight {
  weight: number;
  configured: number;
  /** health x circuit share 0..1 (1 for a drained target: the drain is what zeroes it). */
  fraction: number;
  draining: boolean;
  /** The group failed open and this target got its base weight back. */
  failOpen: boolean;
  /** Least-connections rescaled it. */
  leastConnections: boolean;
}

/** THE rule set: effective weights of one group's targets, in input order. */
export function effectiveWeights(targets: readonly TargetWeightInput[], options: GroupWeightOptions): TargetWeight[] {
  const lc = options.algorithm === 'least-connections';
  const out = targets.map((t): TargetWeight => {
    const configured = clampWeight(t.weight);
    const base = lc && !options.weighted && configured > 0 ? DEFAULT_WEIGHT : configured;
    const fraction = endpointFraction(t.endpoints);
    const weight = t.draining || base === 0 || fraction === 0 ? 0 : Math.max(1, Math.round(base * fraction));
    return { weight, configured: base, fraction, draining: t.draining, failOpen: false, leastConnections: false };
  });
  const anyConfigured = out.some((w) => w.configured > 0);
  const allZero = out.every((w) => w.weight === 0);
  if (anyConfigured && allZero && out.some((w) => w.configured > 0 && !w.draining)) {
    for (const w of out) if (!w.draining && w.configured > 0) { w.weight = w.configured; w.failOpen = true; }
  }
  if (lc) {
    const lcWeights = leastConnectionsWeights(out.map((w, i) => ({ weight: w.weight, active: targets[i]!.activeFlows })));
    out.forEach((w, i) => { w.weight = lcWeights[i]!; w.leastConnections = true; });
  }
  return out;
}

function endpointFraction(endpoints: readonly EndpointView[]): number {
  if (endpoints.length === 0) return 1;
  let sum = 0;
  for (const e of endpoints) sum += (e.health ? healthFraction(e.health) : 1) * circuitFraction(e.circuit === undefined ? undefined : { status: e.circuit });
  return sum / endpoints.length;
}

function clampWeight(w: number): number {
  return Number.isFinite(w) ? Math.min(MAX_WEIGHT, Math.max(0, Math.round(w))) : 0;
}

/** What the runtime knows now: the snapshots of its services, plain data. */
export interface RuntimeSnapshot {
  config: LbConfig;
  /** HealthMonitor.snapshot(): health key -> state. Missing keys are `unknown` (full weight). */
  health?: ReadonlyMap<string, HealthState>;
  /** DrainManager.snapshot(): drainKey(proxy, target id) -> state (any status counts as drained). */
  drains?: ReadonlyMap<string, DrainState>;
  /** CircuitBreakers.snapshot(): backend "addr:port" -> state. Ignored while the breaker is disabled. */
  circuits?: ReadonlyMap<string, CircuitState>;
  /** Active flows per backend "addr:port". Read by least-connections only. */
  activeFlows?: ReadonlyMap<string, number>;
  /** DnsResolver.answers(): host -> last known good addresses. */
  dns?: ReadonlyMap<string, readonly string[]>;
}

export interface ExplainedWeight extends TargetWeight {
  proxy: string;
  group: GroupName;
  targetId: string;
}

export interface BuiltRuntimeInputs extends Required<RuntimeInputs> {
  /** weightKey(proxy, group, target id) -> weight and why, for every target of every group (status). */
  weights: ReadonlyMap<string, ExplainedWeight>;
}

/** Target groups between two step boundaries of a sliced walk (tens of microseconds of work). */
export const GROUPS_PER_STEP = 100;

/** RuntimeInputs for compileConfig from one consistent snapshot (computed eagerly: the hooks are lookups). */
export function buildRuntimeInputs(snapshot: RuntimeSnapshot): BuiltRuntimeInputs {
  return runWhole(buildInSlices(snapshot));
}

/**
 * buildRuntimeInputs in slices with `pause` between them (slices.ts): the daemon's thread builds the
 * inputs of 10,000 proxies (50-100 ms in one go) while its event loop keeps serving between slices.
 * The snapshot's maps are the services' copies, so every slice sees the same state.
 */
export function buildRuntimeInputsYielding(snapshot: RuntimeSnapshot, pause: () => Promise<void>): Promise<BuiltRuntimeInputs> {
  return runSliced(buildInSlices(snapshot), pause);
}

/** The build, yielding (nothing) after every GROUPS_PER_STEP groups. */
function* buildInSlices(snapshot: RuntimeSnapshot): Generator<void, BuiltRuntimeInputs> {
  const { config } = snapshot;
  const breakerOn = config.settings.circuitBreaker.enabled;
  const circuitOf = (addr: string, port: number): CircuitStatus | undefined =>
    breakerOn ? snapshot.circuits?.get(backendKey(addr, port))?.status : undefined;
  const addressesOf = (host: string): readonly string[] => snapshot.dns?.get(host) ?? [];
  const endpointsOf = (t: Target): EndpointView[] => {
    const addrs = t.kind === 'ip' ? [t.ip] : addressesOf(t.host);
    const check = t.healthCheck;
    return addrs.map((addr) => ({
      health: check
        ? (snapshot.health?.get(healthKey(addr, t.port, check, t.kind === 'host' ? t.host : undefined)) ?? { status: 'unknown', recoveryStep: 0 })
        : null,
      circuit: circuitOf(addr, t.port),
    }));
  };
  const activeOf = (t: Target): number => {
    const addrs = t.kind === 'ip' ? [t.ip] : addressesOf(t.host);
    if (addrs.length === 0) return 0;
    return addrs.reduce((sum, a) => sum + (snapshot.activeFlows?.get(backendKey(a, t.port)) ?? 0), 0) / addrs.length;
  };

  const options: GroupWeightOptions = { algorithm: config.settings.loadBalancing.algorithm, weighted: config.settings.loadBalancing.weighted };
  const weights = new Map<string, ExplainedWeight>();
  // Addresses of each host with a live use (fraction > 0 for some target using that address).
  const liveAddrs = new Map<string, Set<string>>();
  let groups = 0;
  for (const { proxy, name, group } of configGroups(config)) {
    if (++groups % GROUPS_PER_STEP === 0) yield;
    const inputs = group.targets.map((t): TargetWeightInput => ({
      weight: t.weight,
      draining: snapshot.drains?.has(drainKey(proxy.name, t.id)) ?? false,
      endpoints: endpointsOf(t),
      activeFlows: activeOf(t),
    }));
    effectiveWeights(inputs, options).forEach((w, i) => {
      const t = group.targets[i]!;
      weights.set(weightKey(proxy.name, name, t.id), { ...w, proxy: proxy.name, group: name, targetId: t.id });
      if (t.kind !== 'host') return;
      const live = liveAddrs.get(t.host) ?? new Set<string>();
      liveAddrs.set(t.host, live);
      const addrs = addressesOf(t.host);
      inputs[i]!.endpoints.forEach((e, j) => {
        if ((e.health ? healthFraction(e.health) : 1) * circuitFraction(e.circuit ? { status: e.circuit } : undefined) > 0) live.add(addrs[j]!);
      });
    });
  }

  return {
    weights,
    effectiveWeight: (proxy, group, target) => weights.get(weightKey(proxy, group, target.id))?.weight,
    resolve: (host) => {
      const all = snapshot.dns?.get(host);
      if (all === undefined) return undefined;
      const live = liveAddrs.get(host);
      const kept = live ? all.filter((a) => live.has(a)) : [...all];
      return kept.length > 0 ? kept : [...all];
    },
  };
}
