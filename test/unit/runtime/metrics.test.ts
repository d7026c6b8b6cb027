import { describe, expect, it } from 'vitest';
import { initialCircuitState, stepCircuit, type CircuitState } from '../../../src/runtime/circuit-breaker.js';
import { applyDnsAnswer, initialDnsState } from '../../../src/runtime/dns.js';
import { healthCheckSpecs } from '../../../src/runtime/health/specs.js';
import { initialHealthState, type HealthState } from '../../../src/runtime/health/state.js';
import { collectRuntimeMetrics, healthLatencyObservations, RUNTIME_METRICS } from '../../../src/runtime/metrics.js';
import { config } from './helpers.js';

const CFG = config(`
proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: tcp, interval-ms: 1000, timeout-ms: 500}
    default-target: [{ip: 10.0.0.1, port: 8080}, {host: pool.internal, port: 9000}]
settings:
  circuit-breaker: {enabled: true, min-requests: 4, window-size-ms: 10000}
  load-balancing: {algorithm: least-connections}
`);

describe('runtime metrics', () => {
  it('names every metric as the original did', () => {
    expect(Object.keys(RUNTIME_METRICS).sort()).toEqual([
      'lb_algorithm', 'lb_backend_connections', 'lb_backend_health', 'lb_circuit_breaker_error_rate',
      'lb_circuit_breaker_state', 'lb_dns_resolution_status', 'lb_health_check_latency_seconds',
    ]);
  });

  it('collects gauges per proxy and backend from the snapshots', () => {
    const dnsState = applyDnsAnswer(initialDnsState('pool.internal'), { ok: true, addresses: ['10.1.0.1'] }, 1);
    const dns = new Map([['pool.internal', applyDnsAnswer(dnsState, { ok: false, error: 'ETIMEOUT' }, 2)]]);
    const health = new Map<string, HealthState>();
    for (const s of healthCheckSpecs(CFG, () => ['10.1.0.1'])) {
      health.set(s.key, { ...initialHealthState(), status: s.addr === '10.0.0.1' ? 'unhealthy' : 'recovering', recoveryStep: s.addr === '10.0.0.1' ? 0 : 2 });
    }
    const cs = stepCircuit(initialCircuitState(), { type: 'sample', attempts: 4, failures: 1 }, { ...CFG.settings.circuitBreaker }, 1000).state;
    const circuits = new Map<string, CircuitState>([['10.0.0.1:8080', cs]]);
    const m = collectRuntimeMetrics({ config: CFG, health, circuits, dns, activeFlows: new Map([['10.0.0.1:8080', 7]]), now: 2000 });
    const l = (ip: string, port: number): Record<string, string> => ({ proxy_name: 'web', target_ip: ip, target_port: String(port) });
    expect(m.lb_backend_health).toEqual([{ labels: l('10.0.0.1', 8080), value: 0 }, { labels: l('10.1.0.1', 9000), value: 0.5 }]);
    expect(m.lb_circuit_breaker_state).toEqual([{ labels: l('10.0.0.1', 8080), value: 0 }, { labels: l('10.1.0.1', 9000), value: 0 }]);
    expect(m.lb_circuit_breaker_error_rate[0]).toEqual({ labels: l('10.0.0.1', 8080), value: 0.25 });
    expect(m.lb_backend_connections).toEqual([{ labels: l('10.0.0.1', 8080), value: 7 }, { labels: l('10.1.0.1', 9000), value: 0 }]);
    expect(m.lb_algorithm).toEqual([{ labels: {}, value: 1 }]);
    expect(m.lb_dns_resolution_status).toEqual([{ labels: { proxy_name: 'web', hostname: 'pool.internal' }, value: 0 }]);
  });

  it('turns a health check event into one latency observation per proxy', () => {
    const spec = healthCheckSpecs(CFG, () => [])[0]!;
    expect(healthLatencyObservations({ spec, result: { ok: true, latencyMs: 12 } }))
      .toEqual([{ labels: { proxy_name: 'web', target_id: '10.0.0.1:8080' }, seconds: 0.012 }]);
  });
});
