// The ops endpoints (loopback by default, `--ops-listen`):
//   GET /healthz  200 while the process runs (liveness: the event loop answers)
//   GET /readyz   200 once the first reconcile applied, or adopted, a state matching the desired
//                 one; 503 with the reason otherwise (text/plain, one line)
//   GET /metrics  Prometheus exposition (DaemonMetrics)
// Anything else is 404; other methods than GET/HEAD are 405.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeHttp, listenHttp } from '../http-server.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import type { DaemonMetrics } from './metrics.js';

export interface Readiness {
  ready: boolean;
  /** One line: why (not) ready. */
  reason: string;
}

export interface OpsServerOptions {
  metrics: DaemonMetrics;
  readiness: () => Readiness;
  log?: Logger;
}

export class OpsServer {
  private readonly opts: OpsServerOptions;
  private readonly log: Logger;
  private server: Server | undefined;

  constructor(opts: OpsServerOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      this.log.error({ component: 'ops', ...errFields(err) }, 'ops endpoint failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') return send(res, 404, 'not found\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    if (path === '/healthz') return send(res, 200, 'ok\n');
    if (path === '/readyz') {
      const r = this.opts.readiness();
      return send(res, r.ready ? 200 : 503, `${r.ready ? 'ready' : 'not ready'}: ${r.reason}\n`);
    }
    const text = await this.opts.metrics.text();
    res.setHeader('Content-Type', this.opts.metrics.contentType);
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  /** Listens on host:port (port 0: ephemeral); resolves with the bound address. */
  async listen(port: number, host: string): Promise<AddressInfo> {
    const server = await listenHttp(this.handle, { port, host, code: 'LB_DAEMON_LISTEN', what: 'the ops endpoints' });
    this.server = server;
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeHttp(server);
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
