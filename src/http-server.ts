// The node:http servers of lb's own endpoints (the ops endpoints, the webhook receiver): bounded
// header, request and keep-alive times, so a slow or idle client cannot hold a connection open,
// a listen failure reported as the caller's LbError, and a close that does not wait for idle
// keep-alive connections.

import { createServer, type RequestListener, type Server } from 'node:http';
import { LbError, type ErrorCode } from './core/errors.js';

export interface ListenHttpOptions {
  port: number;
  host: string;
  /** Error code and subject of the message when listening fails ("<what> cannot listen on ..."). */
  code: ErrorCode;
  what: string;
  maxHeadersCount?: number;
}

/** Listens on host:port (port 0: ephemeral); resolves once bound. */
export async function listenHttp(handler: RequestListener, opts: ListenHttpOptions): Promise<Server> {
  const { port, host } = opts;
  const server = createServer(handler);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  if (opts.maxHeadersCount !== undefined) server.maxHeadersCount = opts.maxHeadersCount;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new LbError(opts.code, `${opts.what} cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { host, port }, { cause: err })));
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** Stops accepting and ends every connection, idle or not; resolves when the server is closed. */
export function closeHttp(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
