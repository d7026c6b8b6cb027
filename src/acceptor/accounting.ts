// What both acceptors (acceptor.ts in Node, door-acceptor.ts over the native front door) keep the
// same way: the listeners by address, the per-route and per-backend counts, and how a relay's end
// is accounted and reported.

import { routedListener, type Connection, type RoutedListener } from '../core/sni/choose.js';
import { listenerLabel as dataPlaneLabel } from '../core/state.js';
import type { SpliceListener } from '../core/sni/splice-table.js';
import type { AcceptorCloseReason, AcceptorConn, AcceptorCounters, AcceptorEvents, BackendLoad, KeptConn, RouteCounters } from './acceptor.js';

export function newCounters(): AcceptorCounters {
  return {
    accepted: 0, overLimit: 0, helloTimeout: 0, helloTooLarge: 0, helloInvalid: 0, noListener: 0, noBackend: 0, connectFailed: 0, relayed: 0, spliced: 0, adopted: 0, handOffDeferred: 0, doorDecided: 0, active: 0,
  };
}

export function addressKey(vip: string | null, port: number): string {
  return `${vip ?? '*'}:${port}`;
}

/** "iface vip:port/tcp" ("*" without a VIP): the data plane's name of the listener (core/state.ts), which the events and logs use. */
export function listenerLabel(l: Pick<SpliceListener, 'iface' | 'vip' | 'port'>): string {
  return dataPlaneLabel({ iface: l.iface, vip: l.vip ?? '0.0.0.0', port: l.port, proto: 'tcp' });
}

/** The listeners by "vip:port" ("*:port" without a VIP). */
export function listenersByAddress(listeners: readonly SpliceListener[]): Map<string, RoutedListener> {
  const next = new Map<string, RoutedListener>();
  for (const l of listeners) {
    const key = addressKey(l.vip, l.port);
    // Two proxies on one port without a VIP on different interfaces: the socket cannot tell the
    // interface, so the first in config order serves both (docs/sni.md).
    if (!next.has(key)) next.set(key, routedListener(l));
  }
  return next;
}

/** The listener a connection to local address ip:port belongs to: by VIP and port, else by port alone. */
export function listenerFor(byAddress: ReadonlyMap<string, RoutedListener>, ip: string, port: number): RoutedListener | undefined {
  return byAddress.get(addressKey(ip, port)) ?? byAddress.get(addressKey(null, port));
}

/**
 * Every backend the listeners may pick gets its load entry now, at 0: the breaker's first reading
 * is the baseline its deltas start from, so connections before that reading are not lost in it.
 * Entries of backends no longer listed go once they hold no connection.
 */
export function seedBackendLoads(loads: Map<string, BackendLoad>, listeners: readonly SpliceListener[]): void {
  const backends = new Set(listeners.flatMap((l) => [l.defaultBackends, ...l.sourceRoutes.map((r) => r.backends), ...l.sniRoutes.map((r) => r.backends)])
    .flatMap((group) => group.map((b) => `${b.addr}:${b.port}`)));
  for (const key of backends) if (!loads.has(key)) loads.set(key, { attempts: 0, failed: 0, active: 0 });
  for (const [key, load] of loads) if (!backends.has(key) && load.active === 0) loads.delete(key);
}

export function routeCounters(routes: Map<string, RouteCounters>, key: string): RouteCounters {
  let r = routes.get(key);
  if (!r) routes.set(key, r = { connections: 0, bytesUp: 0, bytesDown: 0 });
  return r;
}

export function backendLoad(loads: Map<string, BackendLoad>, key: string): BackendLoad {
  let l = loads.get(key);
  if (!l) loads.set(key, l = { attempts: 0, failed: 0, active: 0 });
  return l;
}

/** A relay's end as the events name it: FIN both ways, the idle bound, or a reset by the side that failed. */
export function closeReason(reason: 'closed' | 'reset' | 'idle', resetBy: AcceptorCloseReason | undefined): AcceptorCloseReason {
  return reason === 'closed' ? 'fin' : reason === 'idle' ? 'idle-timeout' : resetBy ?? 'rst-backend';
}

/**
 * Accounts for a relay that ended and reports it: `replay` bytes of hello went up before the relay
 * started, `counts` are what the relay passed after it.
 */
export function reportEnd(events: AcceptorEvents, info: AcceptorConn, route: RouteCounters, replay: number,
  counts: { up: number; down: number }, reason: AcceptorCloseReason, atNs?: bigint): void {
  route.bytesUp += counts.up;
  route.bytesDown += counts.down;
  events.closed?.(info, { up: replay + counts.up, down: counts.down, reason, ...(atNs !== undefined ? { atNs } : {}) });
}

/** A routed connection as the events and logs name it: its listener, the group and backend chosen, its addresses, when it was accepted. */
export function routedConn(l: SpliceListener, group: string, serverName: string | null, conn: Connection, backend: { addr: string; port: number },
  accepted: { ns: bigint; ms: number }): AcceptorConn {
  return {
    proxy: l.proxy, listener: listenerLabel(l), route: group, serverName,
    client: conn.clientIp, clientPort: conn.clientPort, vip: conn.localIp, vipPort: conn.localPort,
    backend: backend.addr, backendPort: backend.port, acceptedNs: accepted.ns, acceptedMs: accepted.ms,
  };
}

/** The key of a connection's route in the per-route counts: "proxy\u0000group". */
export function routeKey(info: Pick<AcceptorConn, 'proxy' | 'route'>): string {
  return `${info.proxy}\u0000${info.route}`;
}

/** The key of a connection's backend in the per-backend loads: "addr:port". */
export function backendKey(info: Pick<AcceptorConn, 'backend' | 'backendPort'>): string {
  return `${info.backend}:${info.backendPort}`;
}

/** The record kept of a routed connection (given back after a restart): its info, and the keys of its route's and backend's counts. */
export function keptConn(info: AcceptorConn, replay: number): KeptConn {
  return { info: { ...info, acceptedNs: String(info.acceptedNs) }, routeKey: routeKey(info), backendKey: backendKey(info), replay };
}

/** The entries for a connection an earlier daemon opened (its record): its info, route and backend counts. */
export function restoreKept(rec: KeptConn, routes: Map<string, RouteCounters>, loads: Map<string, BackendLoad>): { info: AcceptorConn; route: RouteCounters; load: BackendLoad } {
  return { info: { ...rec.info, acceptedNs: BigInt(rec.info.acceptedNs) }, route: routeCounters(routes, rec.routeKey), load: backendLoad(loads, rec.backendKey) };
}

/** Whether a record read back (from a keeper or the door) is one this package wrote. */
export function isKeptConn(rec: unknown): rec is KeptConn {
  const r = rec as Partial<KeptConn> | null;
  return typeof r === 'object' && r !== null && typeof r.info === 'object' && r.info !== null && typeof r.routeKey === 'string' && typeof r.backendKey === 'string';
}
