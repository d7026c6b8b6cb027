// The daemon's Prometheus metrics (prom-client, on a registry of its own so several daemons can
// live in one test process).
//
// Reconciler:  lb_reconcile_total{result}            applied | noop | unchanged | stalled | failed
//              lb_reconcile_duration_seconds{result}  histogram of whole runs (fetch .. verify)
//              lb_last_applied_revision_info{revision} 1 for the revision live in the data plane
//              lb_reconcile_triggers_total{kind,outcome} arrivals (webhook, poll, ...) once decided: run | skipped
//              lb_drift_detected_total                 drift found by the periodic read-back
//              lb_webhook_requests_total{provider,result}
//              lb_status_reports_total{result}         status-branch publishes: committed | unchanged | failed
// Data plane, read from the kernel at scrape time (scrapes within a second share one read):
//              lb_packets_total{reason}                lb_stats_v4, one series per counter (STAT_NAMES)
//              lb_interface_path_info{interface,path,reason}  1 per attached interface: its data path and why
//              lb_interface_up{interface}               1 when an interface the last apply serves exists, is up and has carrier
//              lb_backend_packets_total{backend}, lb_backend_bytes_total{backend},
//              lb_backend_new_flows_total{backend}, lb_backend_closed_flows_total{backend}
//                                                      lb_tstats of every backend of the active generation
//              lb_rate_limited_flows_total{scope,action} lb_rl_stats: new flows dropped (source, backend) or
//                                                      spilled to another backend (backend)
//              lb_rate_limited_source_flows_total{source}  the most limited sources (at most 10: bounded labels)
//              lb_backend_rate_limited_total{backend}  new flows a backend's bucket refused (lb_rl_backend)
// Runtime services (names and labels as in the original; src/runtime/metrics.ts defines them),
// computed at scrape time from the runtime's state (nothing when the daemon runs none):
//              lb_backend_health, lb_circuit_breaker_state, lb_circuit_breaker_error_rate,
//              lb_backend_connections, lb_algorithm, lb_dns_resolution_status (gauges)
//              lb_health_check_latency_seconds         histogram, observed after every check
// Traffic, from the connection events (src/observe/observability.ts; nothing without events):
//              lb_connections_total{proxy,backend}      connections opened
//              lb_connections_active{proxy,backend}     open now (events, reconciled by each conntrack sweep)
//              lb_bytes_total{proxy,backend,direction}  bytes of closed connections: in (client -> backend), out
//              lb_backend_latency_seconds{proxy,backend} histogram of connection durations
//              lb_connections_closed_total{proxy,backend,reason}
//              lb_events_dropped_total{stage}           ring (the kernel found the ring full), access-log (queue full or write failed)
//              lb_access_log_lines_total                lines written
//              lb_up                                    1 while the daemon runs
//              lb_info{version,instance,node}           1
// plus prom-client's process metrics (process_*, nodejs_*).
//
// The families with a series per backend, target or connection are SlicedFamily (sliced-family.ts):
// with 10,000 proxies a scrape is ~100,000 series, rendered in slices so the daemon's event loop
// turns in between (docs/observability.md, "Scraping a large config"); the text is prom-client's.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LATENCY_BUCKETS, type BackendConnStats } from './conn-stats.js';
import { SlicedFamily, type FamilySeries, type FamilyType } from './sliced-family.js';
import { SliceBudget } from '../runtime/slices.js';
import type { TrafficStatus } from './observability.js';
import { RUNTIME_METRICS, collectRuntimeMetricsInSteps, type GaugeName, type MetricSample, type RuntimeMetricsInput } from '../runtime/metrics.js';

export type ReconcileResultLabel = 'applied' | 'noop' | 'unchanged' | 'stalled' | 'failed';
export const RECONCILE_RESULTS: readonly ReconcileResultLabel[] = ['applied', 'noop', 'unchanged', 'stalled', 'failed'];

export interface BackendSample {
  /** "addr:port". */
  backend: string;
  packets: bigint;
  bytes: bigint;
  newFlows: bigint;
  closedFlows: bigint;
  /** New flows this backend's rate-limit bucket refused (spilled or dropped); absent: not read. */
  rateLimited?: bigint;
}

/** The rate limiter's counters (src/dataplane/rate-limits.ts, rateLimitSummary). */
export interface RateLimitSample {
  sourceLimited: number;
  backendSpilled: number;
  backendLimited: number;
  topSources: Array<{ addr: string; limited: number }>;
}

export interface InterfacePathSample {
  interface: string;
  /** tc, xdp-native or xdp-generic. */
  path: string;
  /** Why the last apply chose it ('' when the inventory does not say). */
  reason: string;
}

export interface DataPlaneSample {
  /** lb_stats_v4 by name (summed over CPUs). */
  stats: Record<string, bigint>;
  backends: BackendSample[];
  /** The attached interfaces' data paths (absent: none reported). */
  paths?: InterfacePathSample[];
  /** Every interface the last apply serves: exists, up and with carrier. */
  links?: Array<{ interface: string; up: boolean }>;
  rateLimits?: RateLimitSample;
}

export interface DaemonMetricsOptions {
  /** Reads the data plane's counters; null when the instance has no data plane. Called once per scrape. */
  readDataPlane?: () => DataPlaneSample | null;
  /** prom-client's process_* and nodejs_* metrics (default true). */
  processMetrics?: boolean;
  /** The runtime services' state for their gauges; null (or absent) when there is none. Called once per scrape. */
  readRuntime?: () => RuntimeMetricsInput | null;
  /**
   * Scrapes closer together than this share one read of the kernel maps (default 1000 ms), so a
   * /metrics exposed beyond loopback cannot be used to make the daemon walk its maps in a loop.
   */
  minDataPlaneReadIntervalMs?: number;
  /** Monotonic milliseconds (default performance.now). */
  monotonicNow?: () => number;
  /** lb_info's labels. */
  info?: { version: string; instance: string; node: string };
  /** The clock that ends the slices of the text (default performance.now; tests inject one). */
  sliceNow?: () => number;
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly reconciles: Counter<'result'>;
  private readonly duration: Histogram<'result'>;
  private readonly revision: Gauge<'revision'>;
  private readonly drift: Counter;
  private readonly triggerCount: Counter;
  private readonly webhooks: Counter<'provider' | 'result'>;
  private readonly reports: Counter<'result'>;
  private readonly readDataPlane: (() => DataPlaneSample | null) | undefined;
  private readonly healthLatency: Histogram<'proxy_name' | 'target_id'>;
  private readRuntime: (() => RuntimeMetricsInput | null) | undefined;
  private readTraffic: (() => TrafficStatus) | undefined;
  private traffic: TrafficStatus | null = null;
  private readConnections: (() => readonly BackendConnStats[]) | undefined;
  private conns: readonly BackendConnStats[] = [];
  private sample: DataPlaneSample | null = null;
  private runtimeSample: Record<GaugeName, MetricSample[]> | null = null;
  private sampleError: string | undefined;
  private dataPlaneReadError: string | undefined;
  private lastDataPlaneRead: number | undefined;
  private readonly minDataPlaneReadIntervalMs: number;
  private readonly monotonicNow: () => number;
  private readonly sliceNow: (() => number) | undefined;
  private building: Promise<string> | undefined;

  constructor(opts: DaemonMetricsOptions = {}) {
    const registers = [this.registry];
    this.readDataPlane = opts.readDataPlane;
    this.minDataPlaneReadIntervalMs = opts.minDataPlaneReadIntervalMs ?? 1000;
    this.monotonicNow = opts.monotonicNow ?? (() => performance.now());
    this.sliceNow = opts.sliceNow;
    this.reconciles = new Counter({ name: 'lb_reconcile_total', help: 'Reconcile runs by result (applied, noop, unchanged, stalled, failed)', labelNames: ['result'], registers });
    for (const r of RECONCILE_RESULTS) this.reconciles.inc({ result: r }, 0);
    this.duration = new Histogram({ name: 'lb_reconcile_duration_seconds', help: 'Duration of reconcile runs (fetch to verify) in seconds', labelNames: ['result'], buckets: DURATION_BUCKETS, registers });
    this.revision = new Gauge({ name: 'lb_last_applied_revision_info', help: 'The revision live in the data plane (value 1)', labelNames: ['revision'], registers });
    this.triggerCount = new Counter({ name: 'lb_reconcile_triggers_total', help: 'Reconcile triggers by kind, once decided: run (they started a run) or skipped (they named the revision already applied)', labelNames: ['kind', 'outcome'], registers });
    this.drift = new Counter({ name: 'lb_drift_detected_total', help: 'Times the live maps were found to differ from the last applied state', registers });
    this.webhooks = new Counter({ name: 'lb_webhook_requests_total', help: 'Webhook requests by provider and result', labelNames: ['provider', 'result'], registers });
    this.reports = new Counter({ name: 'lb_status_reports_total', help: 'Status branch publishes by result (committed, unchanged, failed)', labelNames: ['result'], registers });

    const metrics = this;
    const fromSample = (pick: (s: DataPlaneSample) => Array<[Record<string, string>, bigint]>) => function collect(this: Counter<string>): void {
      this.reset();
      if (metrics.sample === null) return;
      for (const [labels, value] of pick(metrics.sample)) this.inc(labels, Number(value));
    };
    new Counter({
      name: 'lb_packets_total', help: 'Data plane packet counters from lb_stats, by reason', labelNames: ['reason'], registers,
      collect: fromSample((s) => Object.entries(s.stats).map(([reason, v]) => [{ reason }, v])),
    });
    // The families with a series per backend or per target are SlicedFamily: rendered in slices.
    const sliced = (name: string, help: string, type: FamilyType, series: () => Iterable<FamilySeries>): void => {
      this.registry.registerMetric(new SlicedFamily(name, help, type, series) as never);
    };
    const perBackend = (name: string, help: string, field: 'packets' | 'bytes' | 'newFlows' | 'closedFlows'): void => {
      sliced(name, help, 'counter', function* () {
        for (const b of metrics.sample?.backends ?? []) yield { labels: { backend: b.backend }, value: Number(b[field]) };
      });
    };
    perBackend('lb_backend_packets_total', 'Packets forwarded to a backend (lb_tstats)', 'packets');
    perBackend('lb_backend_bytes_total', 'Bytes forwarded to a backend (lb_tstats)', 'bytes');
    perBackend('lb_backend_new_flows_total', 'New flows assigned to a backend (lb_tstats)', 'newFlows');
    perBackend('lb_backend_closed_flows_total', 'Flows to a backend seen closing (lb_tstats)', 'closedFlows');
    sliced('lb_backend_rate_limited_total', 'New flows a backend\'s rate-limit bucket refused: spilled to another backend or dropped (lb_rl_backend)', 'counter', function* () {
      for (const b of metrics.sample?.backends ?? []) if (b.rateLimited !== undefined) yield { labels: { backend: b.backend }, value: Number(b.rateLimited) };
    });
    new Counter({
      name: 'lb_rate_limited_flows_total', help: 'New flows the rate limits dropped (scope source or backend) or sent to another backend (scope backend, action spilled)',
      labelNames: ['scope', 'action'], registers,
      collect: fromSample((s) => {
        const r = s.rateLimits;
        if (!r) return [];
        return [
          [{ scope: 'source', action: 'dropped' }, BigInt(r.sourceLimited)],
          [{ scope: 'backend', action: 'spilled' }, BigInt(r.backendSpilled)],
          [{ scope: 'backend', action: 'dropped' }, BigInt(r.backendLimited)],
        ];
      }),
    });
    new Counter({
      name: 'lb_rate_limited_source_flows_total', help: 'New flows refused to the most limited client addresses (the top 10 by count)',
      labelNames: ['source'], registers,
      collect: fromSample((s) => (s.rateLimits?.topSources ?? []).map((t) => [{ source: t.addr }, BigInt(t.limited)])),
    });
    new Gauge({
      name: 'lb_interface_path_info', help: 'The data path of each interface lb is attached to (value 1), and why it was chosen',
      labelNames: ['interface', 'path', 'reason'], registers,
      collect(this: Gauge<string>) {
        this.reset();
        for (const p of metrics.sample?.paths ?? []) this.set({ interface: p.interface, path: p.path, reason: p.reason }, 1);
      },
    });
    new Gauge({
      name: 'lb_interface_up', help: 'Whether an interface the last apply serves exists, is up and has carrier (1) or not (0)',
      labelNames: ['interface'], registers,
      collect(this: Gauge<string>) {
        this.reset();
        for (const l of metrics.sample?.links ?? []) this.set({ interface: l.interface }, l.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'lb_dataplane_up', help: '1 when the data plane of the instance exists and its counters could be read', registers,
      collect(this: Gauge) {
        this.set(metrics.sample !== null ? 1 : 0);
      },
    });
    this.readRuntime = opts.readRuntime;
    for (const def of Object.values(RUNTIME_METRICS)) {
      if (def.type !== 'gauge') continue;
      const name = def.name as GaugeName;
      // A gauge without labels shows 0 when nothing set it, as prom-client's (lb_algorithm).
      const unset: FamilySeries[] = def.labelNames.length === 0 ? [{ labels: {}, value: 0 }] : [];
      sliced(name, def.help, 'gauge', () => metrics.runtimeSample?.[name] ?? unset);
    }
    const latency = RUNTIME_METRICS.lb_health_check_latency_seconds;
    this.healthLatency = new Histogram({
      name: latency.name, help: latency.help, labelNames: ['proxy_name', 'target_id'], buckets: [...(latency.buckets ?? [])], registers,
    });
    // The connection metrics are ConnStats' numbers, read at scrape time: the records update one
    // set of plain counters (conn-stats.ts), not a labelled prom-client metric per record.
    sliced('lb_backend_latency_seconds', 'Duration of the connections to a backend (open to close), in seconds', 'histogram', () => latencySeries(metrics.conns));
    sliced('lb_connections_total', 'Connections opened, by proxy and backend', 'counter', function* () {
      for (const b of metrics.conns) yield { labels: { proxy: b.proxy, backend: b.backend }, value: b.opened };
    });
    sliced('lb_connections_closed_total', 'Connections closed, by proxy, backend and reason', 'counter', function* () {
      for (const b of metrics.conns) for (const [reason, n] of Object.entries(b.closeReasons)) yield { labels: { proxy: b.proxy, backend: b.backend, reason }, value: n };
    });
    sliced('lb_bytes_total', 'Bytes of closed connections (L3), in: client to backend, out: backend to client', 'counter', function* () {
      for (const b of metrics.conns) {
        yield { labels: { proxy: b.proxy, backend: b.backend, direction: 'in' }, value: b.bytesIn };
        yield { labels: { proxy: b.proxy, backend: b.backend, direction: 'out' }, value: b.bytesOut };
      }
    });
    sliced('lb_connections_active', 'Connections open now, by proxy and backend', 'gauge', function* () {
      for (const b of metrics.traffic?.backends ?? []) yield { labels: { proxy: b.proxy, backend: b.backend }, value: b.active };
    });
    new Counter({
      name: 'lb_events_dropped_total', help: 'Connection records lost: ring (the data plane found the ring full), access-log (queue full or write failed)',
      labelNames: ['stage'], registers,
      collect(this: Counter<string>) {
        this.reset();
        this.inc({ stage: 'ring' }, metrics.traffic?.events.droppedRing ?? 0);
        this.inc({ stage: 'access-log' }, metrics.traffic?.events.droppedAccessLog ?? 0);
      },
    });
    new Counter({
      name: 'lb_access_log_lines_total', help: 'Access log lines written', registers,
      collect(this: Counter) {
        this.reset();
        this.inc(metrics.traffic?.accessLog.written ?? 0);
      },
    });
    new Gauge({ name: 'lb_up', help: '1 while the lb daemon runs', registers, collect(this: Gauge) { this.set(1); } });
    const info = opts.info;
    new Gauge({
      name: 'lb_info', help: 'The daemon\'s version, instance and node (value 1)', labelNames: ['version', 'instance', 'node'], registers,
      collect(this: Gauge<string>) {
        this.reset();
        if (info) this.set(info, 1);
      },
    });
    // The event loop lag is sampled every 100 ms: prom-client's default, 10 ms, is a timer that
    // wakes an idle daemon 100 times a second.
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  /** Where the runtime gauges come from (the daemon sets it once its runtime services exist). */
  setRuntimeSource(read: (() => RuntimeMetricsInput | null) | undefined): void {
    this.readRuntime = read;
  }

  /** Where the traffic gauges come from (the daemon's Observability). */
  setTrafficSource(read: (() => TrafficStatus) | undefined): void {
    this.readTraffic = read;
  }

  /** Where the connection counters and latency histograms come from (the daemon's ConnStats). */
  setConnectionSource(read: (() => readonly BackendConnStats[]) | undefined): void {
    this.readConnections = read;
  }

  /** One health check's latency (lb_health_check_latency_seconds). */
  healthCheck(labels: { proxy_name: string; target_id: string }, seconds: number): void {
    this.healthLatency.observe(labels, seconds);
  }

  reconcile(result: ReconcileResultLabel, seconds: number): void {
    this.reconciles.inc({ result });
    this.duration.observe({ result }, seconds);
  }

  triggers(kind: string, outcome: 'run' | 'skipped', count: number): void {
    this.triggerCount.inc({ kind, outcome }, count);
  }

  appliedRevision(revision: string | null): void {
    this.revision.reset();
    if (revision !== null) this.revision.set({ revision }, 1);
  }

  driftDetected(): void {
    this.drift.inc();
  }

  webhook(provider: string, result: string): void {
    this.webhooks.inc({ provider, result });
  }

  statusPublished(result: string): void {
    this.reports.inc({ result });
  }

  /** Why the last scrape could not read the data plane, if it could not. */
  get dataPlaneError(): string | undefined {
    return this.sampleError;
  }

  private readDataPlaneNow(): void {
    this.lastDataPlaneRead = this.monotonicNow();
    this.sample = null;
    this.dataPlaneReadError = undefined;
    try {
      this.sample = this.readDataPlane?.() ?? null;
    } catch (err) {
      this.dataPlaneReadError = err instanceof Error ? err.message : String(err);
    }
  }

  /**
   * The exposition text: the data plane sample cached by the last read (read again when it is
   * older than the interval, so scrapes within it share one read), the traffic and runtime state
   * as they are in memory, then every metric, the large families in slices. Scrapes arriving while
   * one is built share its text (the build reads the sources into fields the families render).
   */
  text(): Promise<string> {
    this.building ??= this.build().finally(() => {
      this.building = undefined;
    });
    return this.building;
  }

  private async build(): Promise<string> {
    // One budget for the whole build: families each under a slice would otherwise run together.
    const budget = new SliceBudget(nextTurn, this.sliceNow);
    const now = this.monotonicNow();
    if (this.lastDataPlaneRead === undefined || now - this.lastDataPlaneRead >= this.minDataPlaneReadIntervalMs) this.readDataPlaneNow();
    this.sampleError = this.dataPlaneReadError;
    this.traffic = this.readTraffic?.() ?? null;
    this.conns = this.readConnections?.() ?? [];
    await budget.checkpoint();
    this.runtimeSample = null;
    try {
      const input = this.readRuntime?.() ?? null;
      this.runtimeSample = input ? await budget.run(collectRuntimeMetricsInSteps(input)) : null;
    } catch (err) {
      this.sampleError ??= err instanceof Error ? err.message : String(err);
    }
    // One family at a time, the large ones in slices: a turn of the event loop between them.
    const parts: string[] = [];
    for (const metric of this.registry.getMetricsAsArray() as unknown[]) {
      parts.push(metric instanceof SlicedFamily
        ? await budget.run(metric.text())
        : await this.registry.getSingleMetricAsString((metric as { name: string }).name));
      await budget.checkpoint();
    }
    return `${parts.join('\n\n')}\n`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * lb_backend_latency_seconds as prom-client's registry prints a histogram (cumulative _bucket
 * series with le, _sum, _count), from ConnStats' per-bucket counts: prom-client's Histogram has
 * no way to set counts, only to observe one value at a time.
 */
function* latencySeries(conns: readonly BackendConnStats[]): Generator<FamilySeries> {
  const name = 'lb_backend_latency_seconds';
  for (const b of conns) {
    const labels = { proxy: b.proxy, backend: b.backend };
    let cum = 0;
    for (let i = 0; i < b.buckets.length; i++) {
      cum += b.buckets[i]!;
      yield { metricName: `${name}_bucket`, labels: { ...labels, le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : '+Inf' }, value: cum };
    }
    yield { metricName: `${name}_sum`, labels, value: b.sumSec };
    yield { metricName: `${name}_count`, labels, value: cum };
  }
}

/** A turn of the event loop: what waits (a /healthz request, a timer) runs first. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
