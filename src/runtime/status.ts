// The runtime's state as one JSON-ready value for `lb status` and the status report. Pure.

import type { GroupName } from '../core/compile/compile.js';
import { circuitErrorRate, type CircuitMode, type CircuitStatus } from './circuit-breaker.js';
import type { DnsHostState } from './dns.js';
import type { DrainState } from './drain.js';
import { GROUPS_PER_STEP, type BuiltRuntimeInputs, type RuntimeSnapshot } from './effective-weight.js';
import { healthKey } from './health/specs.js';
import type { HealthStatus } from './health/state.js';
import { backendKey, configGroups, weightKey } from './keys.js';
import { runSliced, runWhole } from './slices.js';

export interface TargetStatus {
  proxy: string;
  group: GroupName;
  targetId: string;
  configuredWeight: number;
  effectiveWeight: number;
  /** Per backend address (ip target: one; host target: its addresses). */
  backends: { backend: string; health: HealthStatus | 'unchecked'; recoveryStep: number; lastError: string | null; lastLatencyMs: number | null; circuit: CircuitStatus | 'disabled' }[];
  draining: boolean;
  failOpen: boolean;
}

export interface RuntimeStatus {
  algorithm: string;
  targets: TargetStatus[];
  drains: DrainState[];
  circuits: { backend: string; status: CircuitStatus; mode: CircuitMode; errorRate: number; attempts: number; failures: number; reason: string | null; changedAt: number | null }[];
  dns: DnsHostState[];
}

export type StatusSnapshot = RuntimeSnapshot & { dnsStates?: ReadonlyMap<string, DnsHostState> };

export function runtimeStatus(snapshot: StatusSnapshot, built: BuiltRuntimeInputs, now: number): RuntimeStatus {
  return runWhole(statusInSlices(snapshot, built, now));
}

/**
 * runtimeStatus in slices with `pause` between them (slices.ts): a row per target of 10,000 proxies
 * takes 50-200 ms in one go, which the daemon's event loop must not wait for.
 */
export function runtimeStatusYielding(snapshot: StatusSnapshot, built: BuiltRuntimeInputs, now: number, pause: () => Promise<void>): Promise<RuntimeStatus> {
  return runSliced(statusInSlices(snapshot, built, now), pause);
}

function* statusInSlices(snapshot: StatusSnapshot, built: BuiltRuntimeInputs, now: number): Generator<void, RuntimeStatus> {
  const { config } = snapshot;
  const breakerOn = config.settings.circuitBreaker.enabled;
  const targets: TargetStatus[] = [];
  let groups = 0;
  for (const { proxy, name, group } of configGroups(config)) {
    if (++groups % GROUPS_PER_STEP === 0) yield;
    for (const t of group.targets) {
      const w = built.weights.get(weightKey(proxy.name, name, t.id));
      const addrs = t.kind === 'ip' ? [t.ip] : [...(snapshot.dns?.get(t.host) ?? [])];
      targets.push({
        proxy: proxy.name, group: name, targetId: t.id, configuredWeight: t.weight, effectiveWeight: w?.weight ?? t.weight,
        backends: addrs.map((addr) => {
          const hs = t.healthCheck ? snapshot.health?.get(healthKey(addr, t.port, t.healthCheck, t.kind === 'host' ? t.host : undefined)) : undefined;
          const cs = breakerOn ? snapshot.circuits?.get(backendKey(addr, t.port)) : undefined;
          return {
            backend: backendKey(addr, t.port),
            health: t.healthCheck ? (hs?.status ?? 'unknown') : 'unchecked',
            recoveryStep: hs?.recoveryStep ?? 0, lastError: hs?.lastError ?? null, lastLatencyMs: hs?.lastLatencyMs ?? null,
            circuit: breakerOn ? (cs?.status ?? 'closed') : 'disabled',
          };
        }),
        draining: w?.draining ?? false,
        failOpen: w?.failOpen ?? false,
      });
    }
  }
  const circuits = breakerOn
    ? [...(snapshot.circuits ?? new Map())].sort(([a], [b]) => (a < b ? -1 : 1)).map(([backend, cs]) => {
      const r = circuitErrorRate(cs, config.settings.circuitBreaker, now);
      return { backend, status: cs.status, mode: cs.mode, errorRate: r.rate, attempts: r.attempts, failures: r.failures, reason: cs.reason, changedAt: cs.changedAt };
    })
    : [];
  return {
    algorithm: config.settings.loadBalancing.algorithm,
    targets,
    drains: [...(snapshot.drains?.values() ?? [])].sort((a, b) => (a.proxy + a.targetId < b.proxy + b.targetId ? -1 : 1)),
    circuits,
    dns: [...(snapshot.dnsStates?.values() ?? [])].sort((a, b) => (a.host < b.host ? -1 : 1)),
  };
}
