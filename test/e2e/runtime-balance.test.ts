// Runtime services end to end, part 2: DNS targets, least-connections, session persistence. The
// built CLI runs as `lb daemon --config FILE --dns-server 127.0.0.1:PORT` in the LB namespace of a
// sandbox topology (1 client with 50 extra addresses, 3 backends running backend-server); the DNS
// server is a tiny responder on 127.0.0.1 of that same namespace. One topology and one daemon for
// the whole file, in order:
//   1. a host target: changing the DNS answer moves traffic; a failing resolver keeps the last good
//      addresses (status stale, lb_dns_resolution_status 0); two A records share the weight;
//   2. least-connections: with 20 long-lived streams on one backend, new connections go to the other;
//   3. session persistence (Maglev): 50 client addresses keep their backends while another backend
//      fails, and all 50 are back on their first backends after it recovered.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { VIP, createTopology, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { runCli } from '../lib/cli.js';
import { DaemonProcess, metric, metricsText } from './lib/daemon.js';
import { NsDnsServer, applyConfig, holdStreams, liveWeights, requests, requestsFrom, runtimeOf, tally, tearDownRuntimeSandbox } from './lib/runtime.js';

if (process.getuid?.() !== 0) throw new Error('runtime-balance.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `rb-${process.pid}-${randomBytes(3).toString('hex')}`;
const OPS = 9180;
const B = ['10.202.1.2:8080', '10.202.2.2:8080', '10.202.3.2:8080'];
const CLIENTS = Array.from({ length: 50 }, (_, i) => `10.201.1.${100 + i}`);

const proxy = (targets: string, extra = ''): string => `proxies:
  - name: web
    listen: {interfaces: [veth-c1], port: 80, address: ${VIP}}
    default-target:
${targets}
${extra}settings:
  connection-timeout-sec: 60
`;
const ipTargets = (weights: number[]): string => weights.map((w, i) => `      - {ip: 10.202.${i + 1}.2, port: 8080, weight: ${w}}`).join('\n');

describe('runtime services in the daemon: DNS targets, least-connections, session persistence', () => {
  let root = '';
  let file = '';
  let topo: Topology | undefined;
  let dns: NsDnsServer | undefined;
  let daemon: DaemonProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const waitWeights = (pred: (w: Record<string, number>) => boolean, what: string, timeoutMs = 15_000): Promise<Record<string, number>> =>
    waitUntil(() => { const w = liveWeights(instance); return pred(w) ? w : undefined; }, { timeoutMs, intervalMs: 50, what });

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-runtime-balance-'));
    file = join(root, 'lb.yaml');
    topo = await createTopology({ backends: 3, clients: 1 });
    await topo.startBackendServers();
    for (const a of CLIENTS) await topo.exec(topo.clients[0]!.ns, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
    dns = new NsDnsServer(topo, topo.lbNs, join(root, 'dns.json'));
    await dns.start({ 'app.test': ['10.202.1.2'] });
    writeFileSync(file, proxy(ipTargets([100, 100, 100])));
    daemon = new DaemonProcess(topo.lbNs, instance, ['--config', file, '--poll', '1h', '--drift-interval', '1h', '--retry-interval', '200ms',
      '--ops-listen', `127.0.0.1:${OPS}`, '--dns-server', `127.0.0.1:${dns.port}`]);
    await daemon.started();
    await waitWeights((w) => w[B[0]!] === 100, 'the first apply');
  });

  afterAll(() => tearDownRuntimeSandbox({ daemon, topo, instance, root }));

  it('a DNS target follows its answer; a failing resolver keeps the last good addresses; two A records share the weight', async () => {
    await applyConfig(instance, file, proxy('      - {host: app.test, port: 8080, weight: 100, dns-refresh-seconds: 1}'));
    await waitWeights((w) => w[B[0]!] === 100 && Object.keys(w).length === 1, 'app.test -> 10.202.1.2 live');
    const first = tally(await requests(t(), 20));
    expect(first).toMatchObject({ counts: { b1: 20 }, failures: 0 });

    dns!.set({ 'app.test': ['10.202.2.2'] });
    const changedAt = Date.now();
    await waitWeights((w) => w[B[1]!] === 100 && !(B[0]! in w), 'app.test -> 10.202.2.2 live');
    console.log(`runtime: DNS answer changed -> applied after ${Date.now() - changedAt} ms (refresh 1 s)`);
    const moved = tally(await requests(t(), 20));
    expect(moved).toMatchObject({ counts: { b2: 20 }, failures: 0 });

    dns!.set({ 'app.test': ['10.202.1.2'] }, 'servfail');
    const stale = await waitUntil(async () => (await runtimeOf(instance)).dns.find((d) => d.host === 'app.test' && d.status === 'stale'),
      { timeoutMs: 10_000, intervalMs: 100, what: 'app.test stale' });
    expect(stale).toMatchObject({ addresses: ['10.202.2.2'], lastError: expect.stringMatching(/SERVFAIL/i) });
    const kept = tally(await requests(t(), 20));
    expect(kept).toMatchObject({ counts: { b2: 20 }, failures: 0 });
    expect(liveWeights(instance)).toEqual({ [B[1]!]: 100 });
    const m = await metricsText(t().lbNs, OPS);
    expect(metric(m, 'lb_dns_resolution_status', { proxy_name: 'web', hostname: 'app.test' })).toBe(0);
    const text = runCli(['--instance', instance, 'status']).stdout;
    expect(text).toMatch(/app\.test +stale +10\.202\.2\.2 +\S*SERVFAIL/i);

    dns!.set({ 'app.test': ['10.202.3.2', '10.202.1.2'] });
    await waitWeights((w) => w[B[0]!] === 50 && w[B[2]!] === 50, 'two A records at 50 each');
    expect(metric(await metricsText(t().lbNs, OPS), 'lb_dns_resolution_status', { proxy_name: 'web', hostname: 'app.test' })).toBe(1);
    const shared = tally(await requests(t(), 40));
    expect(shared.failures).toBe(0);
    expect(shared.counts.b1 ?? 0).toBeGreaterThan(0);
    expect(shared.counts.b3 ?? 0).toBeGreaterThan(0);
  });

  it('least-connections skews new connections away from a backend holding long-lived ones', async () => {
    await applyConfig(instance, file, proxy(ipTargets([100, 100]), '').replace('settings:\n', 'settings:\n  load-balancing: {algorithm: least-connections, update-interval-ms: 200}\n'));
    await waitWeights((w) => Object.keys(w).length === 2, 'two ip targets live');
    // b2 drained while the streams connect, so all of them land on b1.
    expect(runCli(['--instance', instance, 'drain', 'web', B[1]!]).code).toBe(0);
    const held = await holdStreams(t(), 20, '/stream?ms=30000');
    try {
      expect(new Set(held.names)).toEqual(new Set(['b1']));
      expect(runCli(['--instance', instance, 'undrain', 'web', B[1]!]).code).toBe(0);
      const w = await waitWeights((x) => x[B[1]!]! > 0 && x[B[0]!]! < x[B[1]!]! / 5, 'least-connections weights');
      // One at a time: the new connections' own flows barely count (least-connections weighs weight / (1 + active)).
      const r = tally(await requests(t(), 100, { concurrency: 1 }));
      const share = (r.counts.b2 ?? 0) / 100;
      console.log(`runtime: least-connections with 20 streams on b1: weights ${JSON.stringify(w)}; 100 new connections ${JSON.stringify(r.counts)}`);
      expect(r.failures, r.errors.join('; ')).toBe(0);
      expect(share).toBeGreaterThan(0.85); // configured 100/100 would give 50 %
      const m = await metricsText(t().lbNs, OPS);
      expect(metric(m, 'lb_algorithm')).toBe(1);
      // The 20 held streams, plus any of the requests just sent to b1 whose closing flow is still
      // in conntrack (FIN seen, inside the FIN timeout) when the metric is sampled.
      const b1Connections = metric(m, 'lb_backend_connections', { proxy_name: 'web', target_ip: '10.202.1.2', target_port: '8080' });
      expect(b1Connections).toBeGreaterThanOrEqual(20);
      expect(b1Connections).toBeLessThanOrEqual(20 + (r.counts.b1 ?? 0));
      expect((await runtimeOf(instance)).algorithm).toBe('least-connections');
    } finally {
      await held.proc.stop(2000);
    }
  });

  it('session persistence: 50 clients keep their backends while another backend fails, and all return after it recovers', async () => {
    await applyConfig(instance, file, proxy(ipTargets([100, 100, 100]),
      '    session-persistence: true\n    health-check: {type: http, path: /health, interval-ms: 1000, timeout-ms: 500, healthy-threshold: 1, unhealthy-threshold: 1}\n'));
    await waitWeights((w) => Object.keys(w).length === 3 && Object.values(w).every((x) => x === 100), 'three targets at 100');
    await waitUntil(async () => (await runtimeOf(instance)).targets.every((x) => x.backends[0]!.health === 'healthy'), { timeoutMs: 10_000, what: 'all healthy' });

    const before = await requestsFrom(t(), CLIENTS);
    const again = await requestsFrom(t(), CLIENTS);
    expect(again).toEqual(before); // the same client address, the same backend
    const per = (m: Record<string, string>): Record<string, number> => Object.values(m).reduce<Record<string, number>>((acc, n) => ({ ...acc, [n]: (acc[n] ?? 0) + 1 }), {});
    expect(Object.values(before).every((n) => /^b[123]$/.test(n))).toBe(true);
    // Fail the backend with the most clients (so the others' clients are what is checked).
    const [victim] = Object.entries(per(before)).sort((a, b) => b[1] - a[1])[0]!;
    const vi = Number(victim.slice(1)) - 1;
    await t().backends[vi]!.server!.stop();
    await waitWeights((w) => w[B[vi]!] === 0, `${victim} at weight 0`);
    const during = await requestsFrom(t(), CLIENTS);
    const others = CLIENTS.filter((c) => before[c] !== victim);
    const movedOthers = others.filter((c) => during[c] !== before[c]);
    const victims = CLIENTS.filter((c) => before[c] === victim);
    console.log(`runtime: persistence: before ${JSON.stringify(per(before))}; ${victim} failed: ${JSON.stringify(per(during))}; ` +
      `${movedOthers.length} of ${others.length} other clients moved`);
    expect(Object.values(during).filter((n) => n.startsWith('error'))).toEqual([]);
    expect(movedOthers).toEqual([]);
    expect(victims.every((c) => during[c] !== victim)).toBe(true);

    await t().startBackendServers();
    await waitWeights((w) => w[B[vi]!] === 100, `${victim} back at 100`, 20_000);
    const after = await requestsFrom(t(), CLIENTS);
    expect(after).toEqual(before);
  });
});
