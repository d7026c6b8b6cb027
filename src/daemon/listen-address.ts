// `--ops-listen` and `--webhook-listen`: ADDR:PORT, with an IPv6 address in brackets
// ([::1]:9180). Port 0 asks for an ephemeral port (the bound one is logged).

import { isIP } from 'node:net';
import { LbError } from '../core/errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(text: string, flag: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = m ? Number(m[3]) : NaN;
  if (!m || host === undefined || !(port >= 0 && port <= 65535) || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw new LbError('LB_DAEMON_USAGE', `${flag} ${JSON.stringify(text)} is not ADDR:PORT (e.g. 127.0.0.1:9180, [::1]:9180, 0.0.0.0:9180)`, { flag, value: text });
  }
  return { host, port };
}

export function formatListenAddress(a: ListenAddress): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
