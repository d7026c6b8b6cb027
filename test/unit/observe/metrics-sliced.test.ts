// The per-backend and per-target metric families are rendered in slices (sliced-family.ts): the
// text must be what prom-client's registry writes for the same series, and the daemon's event
// loop must get turns while a large scrape is rendered.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { DaemonMetrics, type DataPlaneSample } from '../../../src/observe/metrics.js';
import { SlicedFamily, type FamilySeries } from '../../../src/observe/sliced-family.js';
import { ConnStats } from '../../../src/observe/conn-stats.js';
import type { ConnRecord } from '../../../src/observe/events/event-hub.js';
import { batchOf } from '../../lib/conn-batch.js';
import { config } from '../runtime/helpers.js';

function dataPlane(backends: number): DataPlaneSample {
  return {
    stats: { xdp_rx: 10n, redirect: 7n },
    backends: Array.from({ length: backends }, (_, i) => ({
      backend: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:80`, packets: BigInt(i), bytes: BigInt(i * 60), newFlows: 2n, closedFlows: 1n,
      ...(i % 2 === 0 ? { rateLimited: BigInt(i % 7) } : {}),
    })),
    rateLimits: { sourceLimited: 9, backendSpilled: 4, backendLimited: 1, topSources: [{ addr: '172.16.0.9', limited: 9 }] },
  };
}

function connections(): ConnStats {
  const rec = (type: 'open' | 'close', proxy: string, port: number, listenerId: number): ConnRecord => ({
    type, tsNs: 0n, openNs: 0n, client: '172.16.0.1', clientPort: port, vip: '10.100.0.1', vipPort: 80, backend: '10.0.0.1', backendPort: 8080, proto: 6,
    listenerId, targetId: 1, reason: type === 'close' ? 'fin' : '', packetsIn: 2n, bytesIn: 100n, packetsOut: 3n, bytesOut: 1000n,
    proxy, listener: `eth0 10.100.0.${listenerId}:80/tcp`, timeMs: 1000, openMs: 990, durationSec: 0.01,
  });
  const stats = new ConnStats();
  stats.add(batchOf([rec('open', 'web', 1, 1), rec('close', 'web', 1, 1), rec('open', 'api', 2, 2)]));
  return stats;
}

describe('sliced metric families', () => {
  it('write what prom-client writes for the same series, escapes and odd values included', async () => {
    const series: FamilySeries[] = [
      { labels: { backend: 'a"b\\c\nd' }, value: 1 },
      { labels: { backend: 'x', n: 3 }, value: Number.NaN },
      { labels: {}, value: Number.POSITIVE_INFINITY },
      { labels: { backend: 'y' }, value: -Infinity },
      { metricName: 'lb_test_total_sum', labels: { backend: 'z' }, value: 0.1 + 0.2 },
    ];
    const odd = new SlicedFamily('lb_test_total', 'help with \\ and\nnewline', 'counter', () => series);
    const registry = new Registry();
    registry.registerMetric(odd as never);
    const steps = odd.text();
    let r = steps.next();
    while (!r.done) r = steps.next();
    expect(r.value).toBe(await registry.getSingleMetricAsString('lb_test_total'));
  });

  it('make the daemon\'s text equal to the registry\'s own rendering of every family', async () => {
    const cfg = config(`proxies:
  - name: web
    listen: {interfaces: [eth0], port: 80}
    default-target:
      - {ip: 10.0.0.1, port: 8080}
      - {host: api.test, port: 8080}
settings:
  load-balancing: {algorithm: least-connections}
  circuit-breaker: {enabled: true}
`);
    const stats = connections();
    const m = new DaemonMetrics({ processMetrics: false, readDataPlane: () => dataPlane(1200), info: { version: '1', instance: 'i', node: 'n' } });
    m.setRuntimeSource(() => ({ config: cfg, activeFlows: new Map([['10.0.0.1:8080', 7]]), now: 0 }));
    m.setConnectionSource(() => stats.backends());
    m.healthCheck({ proxy_name: 'web', target_id: '10.0.0.1:8080' }, 0.003);
    m.reconcile('applied', 0.2);
    const text = await m.text();
    expect(text).toBe(await m.registry.metrics()); // the registry renders the sources the scrape read, in one go
    expect(text).toContain('lb_backend_packets_total{backend="10.0.4.175:80"} 1199');
    expect(text).toContain('lb_backend_rate_limited_total{backend="10.0.4.174:80"} 1');
    expect(text).not.toContain('lb_backend_rate_limited_total{backend="10.0.4.175:80"}');
    expect(text).toContain('lb_connections_total{proxy="api",backend="10.0.0.1:8080"} 1');
    expect(text).toContain('lb_backend_latency_seconds_count{proxy="web",backend="10.0.0.1:8080"} 1');
    expect(text).toContain('lb_algorithm 1');
    // Prometheus' own parser and linter accept it (promtool reads the exposition on stdin).
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    expect(check.error).toBeUndefined();
    expect(`${check.stdout}${check.stderr}`).toBe('');
    expect(check.status).toBe(0);
  });

  it('shows lb_algorithm 0 without a runtime, as prom-client\'s unlabelled gauge', async () => {
    const m = new DaemonMetrics({ processMetrics: false });
    const text = await m.text();
    expect(text).toContain('lb_algorithm 0');
    expect(text).toBe(await m.registry.metrics());
  });

  it('let the event loop turn between slices of a large scrape, and share one build between concurrent scrapes', async () => {
    let clock = 0;
    let reads = 0;
    // Every reading of the slice clock is 20 ms later: every step of a sliced family ends its slice.
    const m = new DaemonMetrics({ processMetrics: false, sliceNow: () => (clock += 20), readDataPlane: () => { reads += 1; return dataPlane(5000); } });
    let turns = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      turns += 1;
      setImmediate(spin);
    };
    setImmediate(spin);
    const [a, b] = await Promise.all([m.text(), m.text()]);
    done = true;
    expect(a).toBe(b);
    expect(reads).toBe(1);
    // 5 families of 5,000 series (2,500 for the rate limited), a step every 500: at least 45 pauses.
    expect(turns).toBeGreaterThanOrEqual(45);
  });
});
