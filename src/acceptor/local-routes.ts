// Local routes for the acceptor's VIPs: `ip route replace local VIP/32 dev lo table local`, so the
// stack delivers the VIP's SYNs locally (where lb_sk_lookup runs) without the VIP being an address
// on any interface. Tagged with their own route protocol number, so a restart finds and prunes them.

import { execFileSync } from 'node:child_process';

/** rtnetlink protocol number marking lb's routes (unassigned in /etc/iproute2/rt_protos). */
export const LB_ROUTE_PROTO = 211;

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function localRoutes(): string[] {
  const out = JSON.parse(ip(['-j', 'route', 'show', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]) || '[]') as Array<{ dst: string }>;
  return out.map((r) => r.dst.replace(/\/32$/, ''));
}

/** Makes lb's local routes exactly these VIPs. */
export function setLocalRoutes(vips: readonly string[]): void {
  const want = new Set(vips);
  for (const vip of want) ip(['route', 'replace', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]);
  for (const vip of localRoutes()) if (!want.has(vip)) ip(['route', 'del', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]);
}
