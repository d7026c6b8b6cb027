// The dashboard and the alert rules of monitoring/ against a real Prometheus (Debian's
// `prometheus` package) scraping a running daemon: `lb daemon --config FILE` in the LB namespace
// of a sandbox topology (1 client, 3 health-checked backends, circuit breaker on), settings.metrics
// on, real connections through the VIP. Prometheus runs in the same namespace, scrapes every second
// and loads the rules; each dashboard query and each alert's signal (its expression without the
// final comparison: a healthy system must not fire them) must return series through the HTTP API,
// and every rule must evaluate without error. `promtool check rules` must pass.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureBuilt } from '../lib/build.js';
import { ROOT } from '../lib/cli.js';
import { ManagedProcess, VIP, createTopology, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { DaemonProcess, httpInNs } from './lib/daemon.js';
import { liveWeights, requests, tearDownRuntimeSandbox, webProxy } from './lib/runtime.js';

if (process.getuid?.() !== 0) throw new Error('prometheus.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `pm-${process.pid}-${randomBytes(3).toString('hex')}`;
const OPS = 9380;
const METRICS = 9381;
const PROM = 9382;
const RULES = join(ROOT, 'monitoring', 'prometheus-alerts.yml');
const DASHBOARD = join(ROOT, 'monitoring', 'grafana-dashboard.json');

const config = `proxies:
${webProxy(VIP, '    health-check: {type: http, path: /health, interval-ms: 1000, timeout-ms: 500, healthy-threshold: 1, unhealthy-threshold: 1}\n')}settings:
  circuit-breaker: {enabled: true}
  metrics: {enabled: true, address: 127.0.0.1, port: ${METRICS}, path: /metrics}
`;

interface PromResult { status: string; data: { resultType: string; result: unknown[] }; error?: string }

/** The comparison an alert ends with removed: the signal it watches. */
function alertSignal(expr: string): string {
  const m = /^(.*?)\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+\s*$/s.exec(expr.trim());
  if (!m) throw new Error(`alert expression without a final comparison: ${expr}`);
  return m[1]!;
}

describe('monitoring/: the Grafana dashboard and the Prometheus alerts against a running daemon', () => {
  let root = '';
  let topo: Topology | undefined;
  let daemon: DaemonProcess | undefined;
  let prom: ManagedProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const query = async (q: string): Promise<PromResult> => {
    const r = await httpInNs(t().lbNs, PROM, `/api/v1/query?query=${encodeURIComponent(q)}`);
    return JSON.parse(r.body) as PromResult;
  };

  beforeAll(async () => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'lb-prometheus-'));
    const file = join(root, 'lb.yaml');
    topo = await createTopology({ backends: 3, clients: 1 });
    await topo.startBackendServers();
    writeFileSync(file, config);
    daemon = new DaemonProcess(topo.lbNs, instance, ['--config', file, '--poll', '1h', '--drift-interval', '1h', '--retry-interval', '200ms',
      '--ops-listen', `127.0.0.1:${OPS}`]);
    await daemon.started();
    await waitUntil(() => (Object.keys(liveWeights(instance)).length === 3 ? true : undefined), { timeoutMs: 20_000, intervalMs: 50, what: 'the first apply' });
    writeFileSync(join(root, 'prometheus.yml'), [
      'global: {scrape_interval: 1s, evaluation_interval: 1s}',
      `rule_files: [${JSON.stringify(RULES)}]`,
      'scrape_configs:',
      `  - {job_name: lb, metrics_path: /metrics, static_configs: [{targets: ["127.0.0.1:${METRICS}"]}]}`,
      '',
    ].join('\n'));
    prom = new ManagedProcess(['nsenter', `--net=/run/netns/${topo.lbNs}`, 'prometheus', `--config.file=${join(root, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(root, 'tsdb')}`, `--web.listen-address=127.0.0.1:${PROM}`, '--log.level=warn'], { label: 'prometheus' });
    await waitUntil(async () => {
      if (!prom!.running) throw new Error(`prometheus exited: ${prom!.stderr.slice(-2000)}`);
      try {
        return (await httpInNs(t().lbNs, PROM, '/-/ready')).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 30_000, intervalMs: 200, what: 'prometheus ready' });
    // Connections in several scrape intervals, so rates and histograms have samples to differ.
    for (let i = 0; i < 4; i++) {
      await requests(t(), 12);
      await waitUntil(async () => {
        const r = await query('count_over_time(lb_up[5m])');
        const n = Number((r.data.result[0] as { value?: [number, string] } | undefined)?.value?.[1] ?? 0);
        return n >= 2 * (i + 1) ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 200, what: 'scrapes' });
    }
  });

  afterAll(async () => {
    try {
      await prom?.stop(5000);
    } finally {
      prom?.killSync();
      await tearDownRuntimeSandbox({ daemon, topo, instance, root });
    }
  });

  it('promtool check rules passes', () => {
    const out = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8', timeout: 30_000 });
    expect(out).toMatch(/SUCCESS: 6 rules found/);
  });

  it('every dashboard query returns series', async () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const exprs = dash.panels.flatMap((p) => p.targets.map((x) => ({ panel: p.title, expr: x.expr })));
    expect(exprs.length).toBeGreaterThanOrEqual(13);
    for (const { panel, expr } of exprs) {
      const r = await query(expr);
      expect(r.status, `${panel}: ${expr}: ${r.error ?? ''}`).toBe('success');
      expect(r.data.result.length, `${panel}: ${expr} returns series`).toBeGreaterThan(0);
    }
  });

  it('every alert evaluates without error, its signal returns series, and none fires on a healthy system', async () => {
    const rules = parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert).sort()).toEqual(['LbBackendDown', 'LbCircuitOpen', 'LbDriftHealed', 'LbEventsDropped', 'LbReconcileStalled', 'LbRedirectErrors']);
    for (const a of alerts) {
      const signal = alertSignal(a.expr);
      const r = await query(signal);
      expect(r.status, `${a.alert}: ${signal}: ${r.error ?? ''}`).toBe('success');
      expect(r.data.result.length, `${a.alert}: ${signal} returns series`).toBeGreaterThan(0);
    }
    const loaded = await waitUntil(async () => {
      const r = JSON.parse((await httpInNs(t().lbNs, PROM, '/api/v1/rules')).body) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; state: string; lastError?: string }> }> } };
      const rs = r.data.groups.flatMap((g) => g.rules);
      return rs.length === alerts.length && rs.every((x) => x.health === 'ok') ? rs : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250, what: 'every rule evaluated (health ok)' });
    expect(loaded.filter((x) => x.state !== 'inactive').map((x) => x.name), 'firing or pending on a healthy system').toEqual([]);
  });
});
