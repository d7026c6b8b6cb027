// settings.metrics {enabled, address, port, path}: the daemon serves its metrics (the same
// registry as the ops endpoints' /metrics) at http://address:port/path, and nothing else there.
// Each reconcile hands in the settings; a change of address or port rebinds, a change of path
// takes effect at once. A port that cannot be bound is reported in the status and retried at the
// next reconcile; the daemon goes on (the ops endpoints keep /metrics too).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeHttp, listenHttp } from '../http-server.js';
import type { DaemonMetrics } from './metrics.js';

export interface MetricsSettings { enabled: boolean; address: string; port: number; path: string }

export interface MetricsEndpointStatus extends MetricsSettings {
  /** host:port actually bound, while serving. */
  listening: string | null;
  error?: string;
}

export class MetricsEndpoint {
  private server: Server | undefined;
  private bound: { address: string; port: number } | undefined;
  private settings: MetricsSettings = { enabled: false, address: '0.0.0.0', port: 9090, path: '/metrics' };
  private error: string | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly metrics: DaemonMetrics) {}

  /** Applies new settings (serialized: a reconcile's call waits for the previous one). */
  configure(s: MetricsSettings): Promise<void> {
    this.chain = this.chain.then(() => this.apply(s));
    return this.chain;
  }

  private async apply(s: MetricsSettings): Promise<void> {
    this.settings = s;
    const same = this.bound && this.bound.address === s.address && this.bound.port === s.port;
    if (s.enabled && same) return;
    await this.closeServer();
    if (!s.enabled) {
      this.error = undefined;
      return;
    }
    try {
      this.server = await listenHttp(this.handle, { port: s.port, host: s.address, code: 'LB_DAEMON_LISTEN', what: 'settings.metrics' });
      this.bound = { address: s.address, port: s.port };
      this.error = undefined;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
  }

  private readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.settings.path || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.statusCode = path !== this.settings.path ? 404 : 405;
      res.end();
      return;
    }
    this.metrics.text().then((text) => {
      res.setHeader('Content-Type', this.metrics.contentType);
      res.end(req.method === 'HEAD' ? undefined : text);
    }, () => {
      res.statusCode = 500;
      res.end();
    });
  };

  status(): MetricsEndpointStatus {
    const addr = this.server?.address() as AddressInfo | null | undefined;
    return { ...this.settings, listening: addr ? `${addr.address}:${addr.port}` : null, ...(this.error ? { error: this.error } : {}) };
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.bound = undefined;
    if (server) await closeHttp(server);
  }

  async close(): Promise<void> {
    await this.chain;
    await this.closeServer();
  }
}
