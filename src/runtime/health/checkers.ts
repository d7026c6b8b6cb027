// The probes: TCP (connect), HTTP and HTTPS (GET path, compare the status). Shell: sockets and
// timers. A probe never throws; every outcome is a CheckResult.
//
// Decisions:
// - HTTPS does not verify the backend's certificate (rejectUnauthorized: false) unless asked:
//   backends behind a load balancer commonly serve self-signed or internal-CA certificates for
//   the public name, and the check asks "does it answer", not "is it who it claims" (the LB does
//   not terminate TLS). `verifyTls: true` turns verification on.
// - Requests go to the backend address itself with `Host: <dns name or addr:port>` and
//   `Connection: close`, without an agent: every probe opens a fresh connection, so a backend that
//   stopped accepting connections fails its next check instead of riding a kept-alive socket.
// - The timeout covers the whole probe up to the status line (HTTP) or the handshake (TCP); the
//   body is not read.

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIPv4 } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { HealthCheck } from '../../core/config/types.js';
import type { CheckResult } from './state.js';

export interface ProbeTarget {
  /** IPv4 address to connect to. */
  addr: string;
  /** Port to connect to (the check's port, else the target's). */
  port: number;
  check: HealthCheck;
  /** DNS name of a host target: Host header and TLS server name. */
  host?: string;
  /** Verify the HTTPS certificate (default false, see above). */
  verifyTls?: boolean;
}

export type Probe = (target: ProbeTarget) => Promise<CheckResult>;

/** Runs the probe the check's type asks for. */
export const runProbe: Probe = (target) => {
  switch (target.check.type) {
    case 'tcp':
      return tcpProbe(target.addr, target.port, target.check.timeoutMs);
    case 'http':
    case 'https':
      return httpProbe(target);
  }
};

export function tcpProbe(addr: string, port: number, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({ host: addr, port });
    const finish = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, latencyMs: timeoutMs, error: `timeout after ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => finish({ ok: true, latencyMs: performance.now() - started }));
    socket.once('error', (err) => finish({ ok: false, latencyMs: performance.now() - started, error: describeError(err) }));
  });
}

export function httpProbe(target: ProbeTarget): Promise<CheckResult> {
  const { addr, port, check } = target;
  const tls = check.type === 'https';
  const started = performance.now();
  const hostHeader = target.host ?? (isIPv4(addr) ? `${addr}:${port}` : addr);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const options = {
      host: addr, port, path: check.path, method: 'GET', agent: false as const,
      headers: { host: hostHeader, 'user-agent': 'lb-health-check', connection: 'close', accept: '*/*' },
    };
    const onResponse = (res: IncomingMessage): void => {
      const code = res.statusCode ?? 0;
      res.resume();
      const latencyMs = performance.now() - started;
      finish(check.expectedCodes.includes(code)
        ? { ok: true, latencyMs, statusCode: code }
        : { ok: false, latencyMs, statusCode: code, error: `status ${code} not in [${check.expectedCodes.join(', ')}]` });
    };
    const req = tls
      ? httpsRequest({ ...options, rejectUnauthorized: target.verifyTls === true, ...(target.host ? { servername: target.host } : {}) }, onResponse)
      : httpRequest(options, onResponse);
    const timer = setTimeout(() => finish({ ok: false, latencyMs: check.timeoutMs, error: `timeout after ${check.timeoutMs} ms` }), check.timeoutMs);
    req.once('error', (err) => finish({ ok: false, latencyMs: performance.now() - started, error: describeError(err) }));
    req.end();
  });
}

function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; message?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}
