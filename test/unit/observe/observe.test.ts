// The daemon's logs keep secrets out (fields and text), the metrics render what the reconciler and
// the data plane report, and the ops endpoints answer /healthz, /readyz and /metrics.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets } from '../../../src/observe/logger.js';
import { DaemonMetrics } from '../../../src/observe/metrics.js';
import { ConnStats } from '../../../src/observe/conn-stats.js';
import type { ConnRecord } from '../../../src/observe/events/event-hub.js';
import { batchOf } from '../../lib/conn-batch.js';
import { config } from '../runtime/helpers.js';
import { OpsServer, type Readiness } from '../../../src/observe/ops-server.js';

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>>; text: () => string } {
  let buf = '';
  const stream = new Writable({ write(chunk, _enc, cb) { buf += String(chunk); cb(); } });
  return { stream, text: () => buf, lines: () => buf.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger', () => {
  it('redacts secret fields at any of the first levels, and credentials inside text', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream, base: { instance: 'x' } });
    log.info({
      token: 'tok-1', webhookSecret: 'hook-2',
      request: { headers: { authorization: 'Basic dXNlcjpzZWNyZXQ=', 'x-hub-signature-256': 'sha256=abc', accept: '*/*' } },
      auth: { password: 'pw-3', username: 'alice' },
      url: 'https://alice:s3cr3t@git.example.com/ops/lb.git',
      note: 'sent Authorization: Bearer abc.def.ghi and token=zzz9',
    }, 'fetching https://bob:hunter2@git.example.com/x.git');
    const text = out.text();
    for (const secret of ['tok-1', 'hook-2', 'dXNlcjpzZWNyZXQ=', 'sha256=abc', 'pw-3', 's3cr3t', 'hunter2', 'abc.def.ghi', 'zzz9']) expect(text).not.toContain(secret);
    const [line] = out.lines();
    expect(line).toMatchObject({ level: 'info', instance: 'x', token: '[redacted]', auth: { username: 'alice', password: '[redacted]' } });
    expect(line!.url).toBe('https://[redacted]@git.example.com/ops/lb.git');
    expect(line!.msg).toBe('fetching https://[redacted]@git.example.com/x.git');
    expect((line!.request as { headers: Record<string, string> }).headers.accept).toBe('*/*');
  });

  it('scrubSecrets leaves ordinary text alone', () => {
    expect(scrubSecrets('applied revision main@0123456789ab: 1 changed')).toBe('applied revision main@0123456789ab: 1 changed');
    expect(scrubSecrets('http://127.0.0.1:9000/config.git')).toBe('http://127.0.0.1:9000/config.git');
  });
});

describe('metrics', () => {
  it('renders reconciler metrics and data-plane counters read at scrape time', async () => {
    let reads = 0;
    let clock = 0;
    const m = new DaemonMetrics({
      processMetrics: false,
      monotonicNow: () => clock,
      readDataPlane: () => {
        reads += 1;
        return {
          stats: { xdp_rx: 10n + BigInt(reads), redirect: 7n },
          backends: [{ backend: '10.0.0.1:80', packets: 5n, bytes: 300n, newFlows: 2n, closedFlows: 1n, rateLimited: 4n }],
          rateLimits: { sourceLimited: 9, backendSpilled: 4, backendLimited: 1, topSources: [{ addr: '172.16.0.9', limited: 9 }] },
        };
      },
    });
    m.reconcile('applied', 0.2);
    m.reconcile('noop', 0.01);
    m.appliedRevision('a'.repeat(40));
    m.appliedRevision('b'.repeat(40));
    m.driftDetected();
    m.webhook('github', 'accepted');
    m.webhook('github', 'unauthorized');
    const t1 = await m.text();
    expect(t1).toContain('lb_reconcile_total{result="applied"} 1');
    expect(t1).toContain('lb_reconcile_total{result="noop"} 1');
    expect(t1).toContain('lb_reconcile_total{result="stalled"} 0');
    expect(t1).toMatch(/lb_reconcile_duration_seconds_count\{result="applied"\} 1/);
    expect(t1).toContain(`lb_last_applied_revision_info{revision="${'b'.repeat(40)}"} 1`);
    expect(t1).not.toContain('a'.repeat(40));
    expect(t1).toContain('lb_drift_detected_total 1');
    expect(t1).toContain('lb_webhook_requests_total{provider="github",result="unauthorized"} 1');
    expect(t1).toContain('lb_packets_total{reason="xdp_rx"} 11');
    expect(t1).toContain('lb_backend_bytes_total{backend="10.0.0.1:80"} 300');
    expect(t1).toContain('lb_backend_new_flows_total{backend="10.0.0.1:80"} 2');
    expect(t1).toContain('lb_dataplane_up 1');
    expect(t1).toContain('lb_backend_rate_limited_total{backend="10.0.0.1:80"} 4');
    expect(t1).toContain('lb_rate_limited_flows_total{scope="source",action="dropped"} 9');
    expect(t1).toContain('lb_rate_limited_flows_total{scope="backend",action="spilled"} 4');
    expect(t1).toContain('lb_rate_limited_flows_total{scope="backend",action="dropped"} 1');
    expect(t1).toContain('lb_rate_limited_source_flows_total{source="172.16.0.9"} 9');
    expect(t1).toContain('# TYPE lb_packets_total counter');
    clock += 500;
    expect(await m.text()).toContain('lb_packets_total{reason="xdp_rx"} 11');
    expect(reads).toBe(1); // scrapes within a second share one read of the maps
    clock += 500;
    const t2 = await m.text();
    expect(reads).toBe(2); // a second later: read again
    expect(t2).toContain('lb_packets_total{reason="xdp_rx"} 12');
  });

  it('renders the runtime gauges at scrape time and the health-check latency histogram', async () => {
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
    const m = new DaemonMetrics({ processMetrics: false });
    expect(await m.text()).not.toMatch(/^lb_backend_health\{/m);
    m.setRuntimeSource(() => ({ config: cfg, activeFlows: new Map([['10.0.0.1:8080', 7]]), now: 0 }));
    m.healthCheck({ proxy_name: 'web', target_id: '10.0.0.1:8080' }, 0.003);
    const t = await m.text();
    expect(t).toContain('lb_algorithm 1');
    expect(t).toContain('lb_backend_connections{proxy_name="web",target_ip="10.0.0.1",target_port="8080"} 7');
    expect(t).toContain('lb_backend_health{proxy_name="web",target_ip="10.0.0.1",target_port="8080"} 1');
    expect(t).toContain('lb_circuit_breaker_state{proxy_name="web",target_ip="10.0.0.1",target_port="8080"} 0');
    expect(t).toContain('lb_dns_resolution_status{proxy_name="web",hostname="api.test"} 0');
    expect(t).toContain('lb_health_check_latency_seconds_bucket{le="0.005",proxy_name="web",target_id="10.0.0.1:8080"} 1');
  });

  it('renders the connection counters and lb_backend_latency_seconds from ConnStats at scrape time', async () => {
    const rec = (type: 'open' | 'close', durationSec: number, port: number): ConnRecord => ({
      type, tsNs: 0n, openNs: 0n, client: '172.16.0.1', clientPort: port, vip: '10.100.0.1', vipPort: 80, backend: '10.0.0.1', backendPort: 8080, proto: 6,
      listenerId: 1, targetId: 1, reason: type === 'close' ? 'fin' : '', packetsIn: 2n, bytesIn: 100n, packetsOut: 3n, bytesOut: 1000n,
      proxy: 'web', listener: 'eth0 10.100.0.1:80/tcp', timeMs: 1000, openMs: 1000 - durationSec * 1000, durationSec,
    });
    const stats = new ConnStats();
    const m = new DaemonMetrics({ processMetrics: false });
    m.setConnectionSource(() => stats.backends());
    stats.add(batchOf([rec('open', 0, 1), rec('open', 0, 2), rec('close', 0.003, 1), rec('close', 0.04, 2)]));
    const t = await m.text();
    const labels = 'proxy="web",backend="10.0.0.1:8080"';
    expect(t).toContain(`lb_connections_total{${labels}} 2`);
    expect(t).toContain(`lb_connections_closed_total{${labels},reason="fin"} 2`);
    expect(t).toContain(`lb_bytes_total{${labels},direction="out"} 2000`);
    // Cumulative buckets: 3 ms falls in (2.5 ms, 5 ms], 40 ms in (25 ms, 50 ms].
    expect(t).toContain(`lb_backend_latency_seconds_bucket{${labels},le="0.0025"} 0`);
    expect(t).toContain(`lb_backend_latency_seconds_bucket{${labels},le="0.005"} 1`);
    expect(t).toContain(`lb_backend_latency_seconds_bucket{${labels},le="0.05"} 2`);
    expect(t).toContain(`lb_backend_latency_seconds_bucket{${labels},le="+Inf"} 2`);
    expect(t).toContain(`lb_backend_latency_seconds_count{${labels}} 2`);
    expect(t).toMatch(new RegExp(`^lb_backend_latency_seconds_sum\\{${labels}\\} 0\\.043`, 'm'));
    expect(t).toContain('# TYPE lb_backend_latency_seconds histogram');
  });

  it('an instance without a data plane renders no data-plane series', async () => {
    const m = new DaemonMetrics({ processMetrics: false, readDataPlane: () => null });
    const t = await m.text();
    expect(t).toContain('lb_dataplane_up 0');
    expect(t).not.toMatch(/^lb_packets_total\{/m);
  });
});

describe('ops endpoints', () => {
  let server: OpsServer | undefined;
  afterEach(async () => { await server?.close(); });

  it('answers /healthz, /readyz (503 with the reason, then 200) and /metrics; 404 and 405 otherwise', async () => {
    let readiness: Readiness = { ready: false, reason: 'the first reconcile has not completed' };
    const metrics = new DaemonMetrics({ processMetrics: false });
    metrics.reconcile('applied', 0.1);
    server = new OpsServer({ metrics, readiness: () => readiness });
    const { port } = await server.listen(0, '127.0.0.1');
    const get = async (path: string, method = 'GET') => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
      return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
    };
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toMatchObject({ status: 503, body: 'not ready: the first reconcile has not completed\n' });
    readiness = { ready: true, reason: 'revision main@0123 is live' };
    expect(await get('/readyz')).toMatchObject({ status: 200, body: 'ready: revision main@0123 is live\n' });
    const m = await get('/metrics');
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/^text\/plain/);
    expect(m.body).toContain('lb_reconcile_total{result="applied"} 1');
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
  });
});
