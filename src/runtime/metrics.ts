// The runtime's metrics as plain data, named and labelled as in the original (clj-ebpf-lb
// lb.metrics.collector). The daemon registers RUNTIME_METRICS in prom-client (gauges through a
// collect() callback that calls collectRuntimeMetrics; the histogram observed on each
// HealthMonitor 'check' event through healthLatencyObservations). No prom-client import here.
//
// Values:
// - lb_backend_health: the health share of the weight: 1 healthy, unknown or not checked; 0
//   unhealthy; 0.25/0.5/0.75 recovering (the original had only 1/0; a ramp is worth seeing).
// - lb_circuit_breaker_state: 0 closed, 1 half-open, 2 open (as the original); only while enabled.
// - lb_circuit_breaker_error_rate: failures/attempts in the window, 0.0-1.0.
// - lb_backend_connections: active flows per backend (the least-connections input).
// - lb_algorithm: 0 weighted-random, 1 least-connections.
// - lb_dns_resolution_status: 1 resolved by the last attempt, 0 stale or never resolved.

import type { LbConfig } from '../core/config/types.js';
import { circuitErrorRate, circuitStateValue, type CircuitState } from './circuit-breaker.js';
import type { DnsHostState } from './dns.js';
import type { HealthCheckEvent } from './health/monitor.js';
import { healthKey } from './health/specs.js';
import { healthFraction, type HealthState } from './health/state.js';
import { GROUPS_PER_STEP } from './effective-weight.js';
import { backendKey, configGroups } from './keys.js';
import { runWhole } from './slices.js';

export type MetricName =
  | 'lb_backend_health' | 'lb_health_check_latency_seconds' | 'lb_circuit_breaker_state'
  | 'lb_circuit_breaker_error_rate' | 'lb_backend_connections' | 'lb_algorithm' | 'lb_dns_resolution_status';

export interface MetricDefinition {
  name: MetricName;
  type: 'gauge' | 'histogram';
  help: string;
  labelNames: readonly string[];
  buckets?: readonly number[];
}

/** Health checks take ms to seconds: 1 ms .. 10 s. */
export const HEALTH_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

const BACKEND_LABELS = ['proxy_name', 'target_ip', 'target_port'] as const;

export const RUNTIME_METRICS: Readonly<Record<MetricName, MetricDefinition>> = {
  lb_backend_health: { name: 'lb_backend_health', type: 'gauge', help: 'Backend health (1=healthy, 0=unhealthy, 0.25-0.75 recovering)', labelNames: BACKEND_LABELS },
  lb_health_check_latency_seconds: {
    name: 'lb_health_check_latency_seconds', type: 'histogram', help: 'Health check latency in seconds',
    labelNames: ['proxy_name', 'target_id'], buckets: HEALTH_LATENCY_BUCKETS,
  },
  lb_circuit_breaker_state: { name: 'lb_circuit_breaker_state', type: 'gauge', help: 'Circuit breaker state (0=closed, 1=half-open, 2=open)', labelNames: BACKEND_LABELS },
  lb_circuit_breaker_error_rate: { name: 'lb_circuit_breaker_error_rate', type: 'gauge', help: 'Circuit breaker error rate in the window (0.0-1.0)', labelNames: BACKEND_LABELS },
  lb_backend_connections: { name: 'lb_backend_connections', type: 'gauge', help: 'Active connection count per backend for load balancing decisions', labelNames: BACKEND_LABELS },
  lb_algorithm: { name: 'lb_algorithm', type: 'gauge', help: 'Current load balancing algorithm (0=weighted-random, 1=least-connections)', labelNames: [] },
  lb_dns_resolution_status: { name: 'lb_dns_resolution_status', type: 'gauge', help: 'DNS resolution status (1=resolved, 0=failed)', labelNames: ['proxy_name', 'hostname'] },
};

export interface MetricSample {
  labels: Record<string, string>;
  value: number;
}

export type GaugeName = Exclude<MetricName, 'lb_health_check_latency_seconds'>;

export interface RuntimeMetricsInput {
  config: LbConfig;
  health?: ReadonlyMap<string, HealthState>;
  circuits?: ReadonlyMap<string, CircuitState>;
  activeFlows?: ReadonlyMap<string, number>;
  /** DnsResolver.snapshot(). */
  dns?: ReadonlyMap<string, DnsHostState>;
  /** For the breaker's sliding window, ms. */
  now: number;
}

/** Every gauge's samples now, sorted by labels. */
export function collectRuntimeMetrics(input: RuntimeMetricsInput): Record<GaugeName, MetricSample[]> {
  return runWhole(collectRuntimeMetricsInSteps(input));
}

/**
 * collectRuntimeMetrics as steps of GROUPS_PER_STEP groups (run in slices by the daemon's
 * /metrics: 20,000 targets took 30-80 ms in one go).
 */
export function* collectRuntimeMetricsInSteps(input: RuntimeMetricsInput): Generator<void, Record<GaugeName, MetricSample[]>> {
  const { config } = input;
  const out: Record<GaugeName, MetricSample[]> = {
    lb_backend_health: [], lb_circuit_breaker_state: [], lb_circuit_breaker_error_rate: [],
    lb_backend_connections: [], lb_algorithm: [], lb_dns_resolution_status: [],
  };
  const seen = new Set<string>();
  const dnsSeen = new Set<string>();
  let groups = 0;
  for (const { proxy, group } of configGroups(config)) {
    if (++groups % GROUPS_PER_STEP === 0) yield;
    for (const t of group.targets) {
      if (t.kind === 'host' && !dnsSeen.has(`${proxy.name}\u0000${t.host}`)) {
        dnsSeen.add(`${proxy.name}\u0000${t.host}`);
        const st = input.dns?.get(t.host);
        out.lb_dns_resolution_status.push({ labels: { proxy_name: proxy.name, hostname: t.host }, value: st?.status === 'ok' ? 1 : 0 });
      }
      const addrs = t.kind === 'ip' ? [t.ip] : [...(input.dns?.get(t.host)?.addresses ?? [])];
      for (const addr of addrs) {
        const key = `${proxy.name}\u0000${backendKey(addr, t.port)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const labels = { proxy_name: proxy.name, target_ip: addr, target_port: String(t.port) };
        const hs = t.healthCheck ? input.health?.get(healthKey(addr, t.port, t.healthCheck, t.kind === 'host' ? t.host : undefined)) : undefined;
        out.lb_backend_health.push({ labels, value: healthFraction(hs) });
        if (config.settings.circuitBreaker.enabled) {
          const cs = input.circuits?.get(backendKey(addr, t.port));
          out.lb_circuit_breaker_state.push({ labels, value: cs ? circuitStateValue(cs.status) : 0 });
          out.lb_circuit_breaker_error_rate.push({ labels, value: cs ? circuitErrorRate(cs, config.settings.circuitBreaker, input.now).rate : 0 });
        }
        out.lb_backend_connections.push({ labels, value: input.activeFlows?.get(backendKey(addr, t.port)) ?? 0 });
      }
    }
  }
  out.lb_algorithm.push({ labels: {}, value: config.settings.loadBalancing.algorithm === 'least-connections' ? 1 : 0 });
  for (const list of Object.values(out)) {
    yield;
    sortByLabels(list);
  }
  return out;
}

/** The lb_health_check_latency_seconds observations of one check: one per proxy that uses it. */
export function healthLatencyObservations(event: Pick<HealthCheckEvent, 'spec' | 'result'>): { labels: { proxy_name: string; target_id: string }; seconds: number }[] {
  const proxies = [...new Set(event.spec.users.map((u) => u.proxy))];
  const targetId = backendKey(event.spec.addr, event.spec.targetPort);
  return proxies.map((proxy) => ({ labels: { proxy_name: proxy, target_id: targetId }, seconds: event.result.latencyMs / 1000 }));
}

/** Sorts by the label values joined in order, each key made once (not twice per comparison). */
function sortByLabels(list: MetricSample[]): void {
  const keyed = list.map((m) => ({ key: Object.values(m.labels).join('\u0000'), m }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 0; i < keyed.length; i++) list[i] = keyed[i]!.m;
}
