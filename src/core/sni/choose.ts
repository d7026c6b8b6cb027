// The backend of one accepted connection: the group (source route, then SNI route, then default
// target: docs/config.md) and, in it, the backend the data plane's weighted choice would pick for
// the same 5-tuple (flow-hash.ts: same hash, same cumulative walk; with session persistence the
// hash of the client address alone). Pure.

import { ipv4ToU32 } from '../abi.js';
import { chooseTarget, flowHash } from '../flow-hash.js';
import { sniMatcher, type SniMatcher } from './route-match.js';
import { sniGroupName, type SpliceBackend, type SpliceListener, type SpliceRoute } from './splice-table.js';

export interface Connection {
  clientIp: string;
  clientPort: number;
  localIp: string;
  localPort: number;
}

export interface Choice {
  /** 'default', a source prefix, or "sni:" + the route's name (what metrics and logs call it). */
  group: string;
  /** null: every backend of the group has weight 0; the connection is refused. */
  backend: SpliceBackend | null;
}

const IPPROTO_TCP = 6;

/** A listener with its SNI matcher built once. */
export interface RoutedListener {
  listener: SpliceListener;
  sni: SniMatcher<SpliceRoute>;
}

export function routedListener(listener: SpliceListener): RoutedListener {
  return { listener, sni: sniMatcher(listener.sniRoutes) };
}

export function chooseBackend(routed: RoutedListener, conn: Connection, serverName: string | null): Choice {
  const { listener } = routed;
  const client = ipv4ToU32(conn.clientIp);
  const source = listener.sourceRoutes.find((r) => prefixContains(r.network, r.prefixLength, client));
  if (source) return pick(source.prefix, source.backends, source.persist, client, conn);
  const sni = routed.sni.match(serverName);
  if (sni) return pick(routeGroup(sni), sni.backends, sni.persist, client, conn);
  return pick('default', listener.defaultBackends, listener.persist, client, conn);
}

function pick(group: string, backends: readonly SpliceBackend[], persist: boolean, client: number, conn: Connection): Choice {
  const hash = flowHash({ saddr: client, daddr: ipv4ToU32(conn.localIp), sport: conn.clientPort, dport: conn.localPort, proto: IPPROTO_TCP }, persist);
  const i = chooseTarget(hash, weightsOf(backends));
  return { group, backend: i < 0 ? null : backends[i]! };
}

/*
 * Per group and per route, what every connection would otherwise rebuild: the weights' array and
 * the route's group name. A table is compiled anew for every apply (new arrays and routes), so
 * these never outlive the weights they were read from; weak, so old tables are collected.
 */
const weightsCache = new WeakMap<readonly SpliceBackend[], readonly number[]>();
const groupCache = new WeakMap<SpliceRoute, string>();

function weightsOf(backends: readonly SpliceBackend[]): readonly number[] {
  let w = weightsCache.get(backends);
  if (!w) {
    w = backends.map((b) => b.weight);
    weightsCache.set(backends, w);
  }
  return w;
}

function routeGroup(route: SpliceRoute): string {
  let g = groupCache.get(route);
  if (g === undefined) {
    g = sniGroupName(route);
    groupCache.set(route, g);
  }
  return g;
}

function prefixContains(network: number, length: number, addr: number): boolean {
  if (length === 0) return true;
  const mask = (0xffffffff << (32 - length)) >>> 0;
  return ((addr & mask) >>> 0) === network >>> 0;
}
