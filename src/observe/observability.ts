// Traffic observability of the daemon: connection events (EventHub), the access log, the
// per-backend connection statistics and latency histograms, and the settings.metrics endpoint.
// The daemon creates one, hands it each validated config's settings (configure), flushes it on
// SIGHUP and stop, and puts status() in its status report as `traffic`.

import type { LbConfig } from '../core/config/types.js';
import { AccessLog, type AccessLogConfig, type AccessLogStatus } from './access-log.js';
import { ConnStats, summarize, type LatencySummary, type RecentClose } from './conn-stats.js';
import { EventHub } from './events/event-hub.js';
import { MetricsEndpoint, type MetricsEndpointStatus } from './metrics-endpoint.js';
import type { DaemonMetrics } from './metrics.js';

export interface TrafficBackendStatus {
  proxy: string;
  backend: string;
  active: number;
  opened: number;
  closed: number;
  bytesIn: number;
  bytesOut: number;
  latency: LatencySummary;
  closeReasons: Record<string, number>;
}

export interface TrafficStatus {
  events: {
    streaming: boolean;
    consumed: number;
    /** Records the kernel dropped (ring full) and lines the access log dropped (queue full, write errors). */
    droppedRing: number;
    droppedAccessLog: number;
    /** Closes found by the conntrack sweep (idle timeouts, LRU evictions). */
    swept: number;
    error?: string;
  };
  accessLog: AccessLogStatus;
  metrics: MetricsEndpointStatus;
  backends: TrafficBackendStatus[];
  recentCloses: RecentClose[];
}

export interface ObservabilityOptions {
  instance: string;
  metrics: DaemonMetrics;
  log?: { warn: (obj: object, msg: string) => void };
  sweepIntervalMs?: number;
}

export function accessLogConfig(s: LbConfig['settings']['accessLog']): AccessLogConfig {
  return {
    enabled: s.enabled, format: s.format, path: s.path, stdout: s.stdout, maxFileBytes: s.maxFileSizeMb * 1024 * 1024,
    maxFiles: s.maxFiles, bufferSize: s.bufferSize,
  };
}

export class Observability {
  readonly hub: EventHub;
  readonly accessLog: AccessLog;
  readonly stats = new ConnStats();
  readonly endpoint: MetricsEndpoint;

  constructor(opts: ObservabilityOptions) {
    this.hub = new EventHub({ instance: opts.instance, ...(opts.sweepIntervalMs ? { sweepIntervalMs: opts.sweepIntervalMs } : {}), ...(opts.log ? { log: opts.log } : {}) });
    this.accessLog = new AccessLog(accessLogConfig({ enabled: false, format: 'json', path: '-', stdout: false, maxFileSizeMb: 100, maxFiles: 10, bufferSize: 10_000 }));
    this.endpoint = new MetricsEndpoint(opts.metrics);
    this.hub.addSink((r) => this.accessLog.add(r));
    this.hub.addBackpressure(() => this.accessLog.backlog());
    this.hub.addSink((r) => this.stats.add(r));
    this.hub.addActiveSink((c) => this.stats.setActive(c));
    opts.metrics.setTrafficSource(() => this.status());
    opts.metrics.setConnectionSource(() => this.stats.backends());
  }

  start(): Promise<void> {
    return this.hub.start();
  }

  /** Each validated config's settings (before it is compiled and applied). */
  configure(settings: LbConfig['settings']): void {
    void this.accessLog.configure(accessLogConfig(settings.accessLog));
    void this.endpoint.configure(settings.metrics);
  }

  status(): TrafficStatus {
    const h = this.hub.stats();
    return {
      events: {
        streaming: h.streaming, consumed: h.consumed, droppedRing: Number(h.kernelDropped), droppedAccessLog: this.accessLog.droppedLines,
        swept: h.swept, ...(h.error ? { error: h.error } : {}),
      },
      accessLog: this.accessLog.status(),
      metrics: this.endpoint.status(),
      backends: this.stats.backends().map((b) => ({
        proxy: b.proxy, backend: b.backend, active: b.active, opened: b.opened, closed: b.closed, bytesIn: b.bytesIn, bytesOut: b.bytesOut,
        latency: summarize(b), closeReasons: b.closeReasons,
      })),
      recentCloses: this.stats.recentCloses(),
    };
  }

  /** Writes the access log's queue (SIGHUP, before a reload's reconcile). */
  flush(): Promise<void> {
    return this.accessLog.flush();
  }

  async stop(): Promise<void> {
    await this.hub.stop();
    await this.accessLog.close();
    await this.endpoint.close();
  }
}
