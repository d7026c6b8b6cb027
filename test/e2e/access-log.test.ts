// Connection events end to end: the built CLI runs `lb daemon --config FILE` in the LB namespace
// of a sandbox topology (1 client, 3 backends running backend-server) with settings.access-log and
// settings.metrics on. Real HTTP connections through the VIP, each from a known source port:
//   1. N connections -> N conn-open and N conn-close lines (JSON), each with the client's address
//      and port and the backend that answered it, bytes both ways, reason fin;
//   2. settings.metrics: the daemon serves its metrics at the configured port and path (latency
//      histogram, connection counters, lb_up, lb_info), and `lb status` shows the percentiles;
//   3. a UDP flow left idle is closed by the daemon's conntrack sweep (reason idle-timeout);
//   4. an access log that cannot be written is reported in the status, and the daemon goes on;
//   5. a drain that times out ends the flows still on its target: their close says reason drain;
//   6. CLF lines after a reload, written out when the daemon stops (SIGTERM).
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { VIP, createTopology, udpRequest, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { runCliAsync } from '../lib/cli.js';
import { DaemonProcess, httpInNs, lbStatus, metric, metricSum } from './lib/daemon.js';
import { applyConfig, liveWeights, requests, tearDownRuntimeSandbox, webProxy } from './lib/runtime.js';
import { startStream } from './lib/clients.js';
import { decodeFlow, decodeFlowKey, LB_DIR_FORWARD } from '../../src/core/abi.js';
import { DataPlane } from '../../src/dataplane/index.js';

if (process.getuid?.() !== 0) throw new Error('access-log.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `al-${process.pid}-${randomBytes(3).toString('hex')}`;
const OPS = 9280;
const METRICS = 9281;
const N = 24;

const config = (log: string): string => `proxies:
${webProxy(VIP)}  - name: dns
    listen: {interfaces: [veth-c1], port: 53, address: ${VIP}, protocol: udp}
    default-target: {ip: 10.202.1.2, port: 9000}
settings:
  udp-timeout-sec: 2
  stats-enabled: true
  metrics: {enabled: true, address: 127.0.0.1, port: ${METRICS}, path: /lb-metrics}
  access-log: ${log}
`;

type Line = Record<string, unknown>;
const jsonLines = (file: string): Line[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);

describe('connection events in the daemon: access log, metrics, status', () => {
  let root = '';
  let file = '';
  let log = '';
  let topo: Topology | undefined;
  let daemon: DaemonProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-access-log-'));
    file = join(root, 'lb.yaml');
    log = join(root, 'logs', 'access.log');
    // Veths with kernel defaults (not the sandbox's tuned ones): what users' hosts have.
    topo = await createTopology({ variant: 'default-veth', backends: 3, clients: 1 });
    await topo.startBackendServers();
    writeFileSync(file, config(`{enabled: true, format: json, path: ${log}}`));
    daemon = new DaemonProcess(topo.lbNs, instance, ['--config', file, '--poll', '1h', '--drift-interval', '1h', '--retry-interval', '200ms',
      '--ops-listen', `127.0.0.1:${OPS}`]);
    await daemon.started();
    await waitUntil(() => (Object.keys(liveWeights(instance)).length >= 3 ? true : undefined), { timeoutMs: 20_000, intervalMs: 50, what: 'the first apply' });
  });

  afterAll(() => tearDownRuntimeSandbox({ daemon, topo, instance, root }));

  it('N connections through the VIP: N conn-open and N conn-close lines with the right client and backend', async () => {
    const answers = await requests(t(), N);
    expect(answers.filter((a) => a.name).length, JSON.stringify(answers.filter((a) => !a.name))).toBe(N);
    const client = t().clients[0]!.address;
    const backendOf = new Map(t().backends.map((b) => [b.name, `${b.address}:8080`]));
    const ports = new Set(answers.map((a) => a.localPort));
    const mine = (): Line[] => jsonLines(log).filter((l) => ports.has(Number(String(l['client']).split(':')[1])));
    const lines = await waitUntil(() => {
      const l = mine();
      return l.filter((x) => x['event'] === 'conn-close').length >= N ? l : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100, what: `${N} conn-close lines in ${log}` });
    const opens = lines.filter((l) => l['event'] === 'conn-open');
    const closes = lines.filter((l) => l['event'] === 'conn-close');
    expect([opens.length, closes.length]).toEqual([N, N]);
    for (const a of answers) {
      const c = `${client}:${a.localPort}`;
      const open = opens.find((l) => l['client'] === c);
      const close = closes.find((l) => l['client'] === c);
      expect(open, `conn-open of ${c}`).toMatchObject({ proxy: 'web', proto: 'tcp', vip: `${VIP}:80`, backend: backendOf.get(a.name!) });
      expect(close, `conn-close of ${c}`).toMatchObject({ proxy: 'web', backend: backendOf.get(a.name!), reason: 'fin' });
      expect(Number(close!['bytes_in'])).toBeGreaterThan(0);
      expect(Number(close!['bytes_out'])).toBeGreaterThan(0);
      expect(Number(close!['packets_out'])).toBeGreaterThanOrEqual(3);
      expect(Number(close!['duration_ms'])).toBeGreaterThanOrEqual(0);
    }
  });

  it('settings.metrics: latency histograms and connection counters at the configured address and path; percentiles in lb status', async () => {
    const res = await httpInNs(t().lbNs, METRICS, '/lb-metrics');
    expect(res.status).toBe(200);
    const text = res.body;
    expect(metricSum(text, 'lb_connections_total')).toBeGreaterThanOrEqual(N);
    expect(metricSum(text, 'lb_backend_latency_seconds_count')).toBeGreaterThanOrEqual(N);
    expect(metric(text, 'lb_up')).toBe(1);
    expect(text).toMatch(new RegExp(`^lb_info\\{version="[^"]+",instance="${instance}",node="[^"]+"\\} 1$`, 'm'));
    expect(metric(text, 'lb_events_dropped_total', { stage: 'ring' })).toBe(0);
    expect((await httpInNs(t().lbNs, METRICS, '/metrics')).status, 'only the configured path').toBe(404);
    expect((await httpInNs(t().lbNs, OPS, '/healthz')).status, '--ops-listen keeps the health endpoints').toBe(200);

    const traffic = (await lbStatus(instance)).status?.traffic;
    expect(traffic?.metrics).toMatchObject({ enabled: true, listening: `127.0.0.1:${METRICS}` });
    const backends = (traffic?.backends ?? []).filter((b) => b.proxy === 'web');
    expect(backends.map((b) => b.backend).sort()).toEqual(['10.202.1.2:8080', '10.202.2.2:8080', '10.202.3.2:8080']);
    expect(backends.reduce((n, b) => n + b.closed, 0)).toBeGreaterThanOrEqual(N);
    for (const b of backends.filter((x) => x.closed > 0)) {
      expect(b.latency.p50, `${b.backend} p50`).not.toBeNull();
      expect(b.latency.p99! >= b.latency.p50!).toBe(true);
    }
  });

  it('lb top --once --format json: rates over one interval, per proxy and backend, and the recent closes', async () => {
    let done = false;
    const top = runCliAsync(['--instance', instance, 'top', '--once', '--interval', '2s', '--format', 'json'], { ns: t().lbNs, timeoutMs: 20_000 })
      .finally(() => { done = true; });
    // Connections all through the interval (bounded): their rate shows.
    for (let i = 0; i < 100 && !done; i++) await requests(t(), 3);
    const r = await top;
    expect(r.code, r.stderr).toBe(0);
    const view = JSON.parse(r.stdout) as { rows: Array<{ proxy: string; backend: string; connPerSec: number; p50: number | null }>; recentCloses: Array<{ reason: string }> };
    expect(view.rows.filter((x) => x.proxy === 'web').map((x) => x.backend).sort()).toEqual(['10.202.1.2:8080', '10.202.2.2:8080', '10.202.3.2:8080']);
    expect(view.rows.reduce((n, x) => n + x.connPerSec, 0)).toBeGreaterThan(0);
    expect(view.recentCloses.length).toBeGreaterThan(0);
  });

  it('a UDP flow nobody sends on again: its close comes from the conntrack sweep, reason idle-timeout', async () => {
    const r = await udpRequest(t().clients[0]!.ns, VIP, 53, 'ping', { timeoutMs: 3000 });
    expect(r.reply, 'the UDP backend answered').not.toBeNull();
    const c = `${t().clients[0]!.address}:${r.localPort}`;
    const lines = await waitUntil(() => {
      const l = jsonLines(log).filter((x) => x['client'] === c);
      return l.some((x) => x['event'] === 'conn-close') ? l : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200, what: `the idle close of ${c}` });
    expect(lines.map((x) => [x['event'], x['proxy'], x['proto'], x['backend'], x['reason']])).toEqual([
      ['conn-open', 'dns', 'udp', '10.202.1.2:9000', undefined],
      ['conn-close', 'dns', 'udp', '10.202.1.2:9000', 'idle-timeout'],
    ]);
    const close = lines[1]!;
    expect([close['packets_in'], close['packets_out']]).toEqual([1, 1]);
    expect(Number(close['duration_ms'])).toBeGreaterThanOrEqual(2000);
  });

  it('a drain that times out ends the flows still on its target: the close says reason drain, the conntrack entries are gone', async () => {
    const port = 19_101;
    const stream = startStream(t(), t().clients[0]!.ns, VIP, 80, '/stream?ms=120000', port);
    const backendOf = new Map(t().backends.map((b) => [b.name, `${b.address}:8080`]));
    let target: string | undefined;
    try {
      const first = await waitUntil(() => stream.lines()[0], { timeoutMs: 10_000, intervalMs: 20, what: 'the first stream line' });
      target = backendOf.get(first.name)!;
      const r = await runCliAsync(['--instance', instance, 'drain', 'web', target, '--timeout', '1s']);
      expect(r.code, r.stderr).toBe(0);
      const c = `${t().clients[0]!.address}:${port}`;
      const close = await waitUntil(() => jsonLines(log).find((l) => l['client'] === c && l['event'] === 'conn-close'),
        { timeoutMs: 20_000, intervalMs: 100, what: `the close of ${c} when the drain times out` });
      expect(close).toMatchObject({ proxy: 'web', backend: target, reason: 'drain' });
      expect(Number(close['bytes_out'])).toBeGreaterThan(0);
      expect((await lbStatus(instance)).status?.runtime?.drains).toMatchObject([{ proxy: 'web', targetId: target, status: 'timed-out' }]);
      const dp = DataPlane.open({ instance });
      try {
        const onTarget = dp.maps.lb_flows.lookupBatch().map(([k, v]) => ({ key: decodeFlowKey(k), value: decodeFlow(v) }))
          .filter((e) => e.value.dir === LB_DIR_FORWARD && e.key.sport === port && `${e.value.natAddr}:${e.value.natPort}` === target);
        expect(onTarget).toEqual([]);
      } finally {
        dp.close();
      }
    } finally {
      await stream.proc.stop(1000);
      if (target) await runCliAsync(['--instance', instance, 'undrain', 'web', target]);
    }
  });

  it('an access log that cannot be written is reported in the status; the daemon serves on', async () => {
    // A path under a regular file: neither the directory nor the file can ever be created.
    const blocker = join(root, 'not-a-dir');
    writeFileSync(blocker, '');
    await applyConfig(instance, file, config(`{enabled: true, format: json, path: ${join(blocker, 'access.log')}}`));
    const answers = await requests(t(), 4);
    expect(answers.filter((a) => a.name).length).toBe(4);
    const s = await waitUntil(async () => {
      const st = (await lbStatus(instance)).status?.traffic?.accessLog;
      return st?.error ? st : undefined;
    }, { timeoutMs: 15_000, intervalMs: 100, what: 'the access log error in the status' });
    expect(s.error).toContain(join(blocker, 'access.log'));
    expect(s.dropped).toBeGreaterThan(0);
    expect(daemon!.proc.running).toBe(true);
  });

  it('CLF lines after a reload are written out by SIGTERM', async () => {
    const clf = join(root, 'clf', 'access.log');
    await applyConfig(instance, file, config(`{enabled: true, format: clf, path: ${clf}}`));
    const answers = await requests(t(), 3);
    await daemon!.stop(10_000);
    const text = readFileSync(clf, 'utf8');
    const client = t().clients[0]!.address;
    for (const a of answers) {
      expect(text).toMatch(new RegExp(`^${client.replace(/\./g, '\\.')} - - \\[[^\\]]+\\] "OPEN tcp ${VIP.replace(/\./g, '\\.')}:80 [0-9.]+:8080" - - proxy=web client_port=${a.localPort}$`, 'm'));
      expect(text).toMatch(new RegExp(`"CLOSE tcp [^"]+" fin \\d+ proxy=web duration=[0-9.]+ bytes_in=\\d+ client_port=${a.localPort}$`, 'm'));
    }
  });
});
