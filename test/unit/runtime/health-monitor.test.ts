// The monitor's scheduling with a fake probe and fake timers (the real probes: test/integration/runtime).
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HealthCheck } from '../../../src/core/config/types.js';
import type { ProbeTarget } from '../../../src/runtime/health/checkers.js';
import { HealthMonitor, type HealthChangeEvent } from '../../../src/runtime/health/monitor.js';
import { healthCheckSpecs, healthKey, type HealthCheckSpec } from '../../../src/runtime/health/specs.js';
import { config } from './helpers.js';

const check: HealthCheck = { type: 'tcp', path: '/health', expectedCodes: [200], intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2, port: null };
const spec = (addr: string, c: HealthCheck = check): HealthCheckSpec =>
  ({ key: healthKey(addr, 80, c), addr, targetPort: 80, port: 80, check: c, users: [{ proxy: 'p', targetId: `${addr}:80` }] });

describe('HealthMonitor scheduling', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('jitters the first run over the interval, then runs every interval', async () => {
    vi.useFakeTimers();
    const runs: [string, number][] = [];
    const m = new HealthMonitor({ random: () => 0.5, probe: async (t) => { runs.push([t.addr, Date.now()]); return { ok: true, latencyMs: 1 }; } });
    const t0 = Date.now();
    m.setSpecs([spec('10.0.0.1')]);
    m.start();
    await vi.advanceTimersByTimeAsync(2600);
    await m.stop();
    // first at 0.5 x 1000, then every 1000 x (0.95 + 0.1 x 0.5)
    expect(runs.map(([, t]) => t - t0)).toEqual([500, 1500, 2500]);
  });

  it('never has more than `concurrency` probes in flight', async () => {
    vi.useFakeTimers();
    let inflight = 0;
    let peak = 0;
    const m = new HealthMonitor({
      concurrency: 3, random: () => 0,
      probe: async () => { inflight++; peak = Math.max(peak, inflight); await new Promise((r) => setTimeout(r, 200)); inflight--; return { ok: true, latencyMs: 200 }; },
    });
    m.setSpecs(Array.from({ length: 10 }, (_, i) => spec(`10.0.0.${i + 1}`)));
    m.start();
    await vi.advanceTimersByTimeAsync(3000);
    const stopped = m.stop(); // waits for the probes in flight, which wait for (fake) time
    await vi.advanceTimersByTimeAsync(500);
    await stopped;
    expect(peak).toBe(3);
    expect([...m.snapshot().values()].every((s) => s.status === 'healthy')).toBe(true);
  });

  it('emits change and check events; a removed spec stops and forgets its state', async () => {
    let up = true;
    const m = new HealthMonitor({ probe: async (t: ProbeTarget) => (up || t.addr !== '10.0.0.1' ? { ok: true, latencyMs: 1 } : { ok: false, latencyMs: 1, error: 'ECONNREFUSED' }) });
    const changes: HealthChangeEvent[] = [];
    let checks = 0;
    m.on('change', (e) => changes.push(e));
    m.on('check', () => { checks++; });
    const a = spec('10.0.0.1');
    m.setSpecs([a, spec('10.0.0.2')]);
    await m.checkNow();
    up = false;
    await m.checkNow(a.key);
    await m.checkNow(a.key);
    expect(changes.map((c) => `${c.spec.addr} ${c.previous.status}->${c.state.status}`)).toEqual([
      '10.0.0.1 unknown->healthy', '10.0.0.2 unknown->healthy', '10.0.0.1 healthy->unhealthy',
    ]);
    expect(checks).toBe(4);
    expect(m.state(a.key)).toMatchObject({ status: 'unhealthy', lastError: 'ECONNREFUSED' });
    m.setSpecs([spec('10.0.0.2')]);
    expect(m.state(a.key)).toBeUndefined();
    expect(m.specs().map((s) => s.addr)).toEqual(['10.0.0.2']);
  });

  it('a probe that throws counts as a failure', async () => {
    const m = new HealthMonitor({ probe: async () => { throw new Error('bug'); } });
    const s = spec('10.0.0.1', { ...check, unhealthyThreshold: 1 });
    m.setSpecs([s]);
    await m.checkNow();
    expect(m.state(s.key)).toMatchObject({ status: 'unhealthy', lastError: 'probe failed: Error: bug' });
  });
});

describe('healthCheckSpecs', () => {
  it('checks each endpoint once per distinct check, with every user; hosts at each address; unchecked targets not at all', () => {
    const cfg = config(`
proxies:
  - name: a
    listen: {interfaces: [eth0], port: 80}
    health-check: {type: http, path: /ready, interval-ms: 2000, timeout-ms: 500, port: 9999}
    default-target: [{ip: 10.0.0.1, port: 80}, {host: pool.internal, port: 80}]
    source-routes: [{source: 10.9.0.0/16, target: {ip: 10.0.0.1, port: 80}}]
  - name: b
    listen: {interfaces: [eth0], port: 81}
    health-check: {type: http, path: /ready, interval-ms: 2000, timeout-ms: 500, port: 9999}
    default-target: {ip: 10.0.0.1, port: 80}
  - name: c
    listen: {interfaces: [eth0], port: 82}
    default-target: {ip: 10.0.0.1, port: 80}
`);
    const specs = healthCheckSpecs(cfg, (h) => (h === 'pool.internal' ? ['10.2.0.1', '10.2.0.2'] : undefined));
    expect(specs.map((s) => `${s.addr}:${s.port} ${s.host ?? '-'} ${s.users.map((u) => u.proxy).join(',')}`)).toEqual([
      '10.0.0.1:9999 - a,b', '10.2.0.1:9999 pool.internal a', '10.2.0.2:9999 pool.internal a',
    ]);
  });
});
