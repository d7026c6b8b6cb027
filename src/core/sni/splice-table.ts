// The acceptor's routing table: every TCP listener of a proxy on the splice path (SNI routes or a
// PROXY protocol v2 target), with its groups compiled exactly as the data plane's are (same
// compileGroup: effective weights from the runtime, DNS expansion), plus what only the acceptor
// reads (SNI routes, per-backend PROXY protocol). Pure: config and runtime answers in, table out.

import { compileGroup, type RuntimeInputs } from '../compile/compile.js';
import { ipv4ToU32 } from '../abi.js';
import type { Diagnostic } from '../config/diagnostics.js';
import type { LbConfig, SniRoute, TargetGroup } from '../config/types.js';
import { servedByAcceptor } from './served.js';
import type { LogicalTarget } from '../state.js';

export interface SpliceBackend extends LogicalTarget {
  /** Send a PROXY protocol v2 header before the replayed bytes. */
  proxyProtocol: boolean;
}

export interface SpliceRoute {
  hostname: string;
  wildcard: boolean;
  persist: boolean;
  backends: SpliceBackend[];
}

export interface SpliceSourceRoute {
  prefix: string;
  /** Host-order network and mask, for the longest-prefix match. */
  network: number;
  prefixLength: number;
  persist: boolean;
  backends: SpliceBackend[];
}

export interface SpliceListener {
  proxy: string;
  iface: string;
  /** The VIP, or null for every local address of the interface. */
  vip: string | null;
  port: number;
  persist: boolean;
  defaultBackends: SpliceBackend[];
  /** Longest prefix first. */
  sourceRoutes: SpliceSourceRoute[];
  sniRoutes: SpliceRoute[];
}

/** The runtime's name of an SNI route's group ("sni:api.example.com", "sni:*.example.com"): never a prefix. */
export function sniGroupName(route: Pick<SniRoute, 'hostname' | 'wildcard'>): string {
  return `sni:${route.wildcard ? '*.' : ''}${route.hostname}`;
}

export function compileSpliceTable(config: LbConfig, inputs: RuntimeInputs = {}): { listeners: SpliceListener[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const listeners: SpliceListener[] = [];
  for (const proxy of config.proxies) {
    if (!servedByAcceptor(proxy)) continue;
    const backends = (group: string, targets: TargetGroup): SpliceBackend[] => {
      const v2 = new Set(targets.targets.filter((t) => t.proxyProtocol === 'v2').flatMap((t) => t.kind === 'ip' ? [`${t.ip}:${t.port}`] : [`host:${t.host}:${t.port}`]));
      const hostV2 = targets.targets.filter((t) => t.kind === 'host' && t.proxyProtocol === 'v2').map((t) => t.port);
      return compileGroup(proxy, group, targets, inputs, diagnostics).map((b) => ({
        ...b,
        // A host target's addresses are not named in the config: its port marks them (a group
        // holding an ip and a host target on one port with different settings takes v2 for both).
        proxyProtocol: v2.has(`${b.addr}:${b.port}`) || hostV2.includes(b.port),
      }));
    };
    const defaultBackends = backends('default', proxy.defaultTarget);
    const sourceRoutes = proxy.sourceRoutes.map((r) => ({
      prefix: r.prefix, network: ipv4ToU32(r.network), prefixLength: r.prefixLength, persist: r.sessionPersistence,
      backends: backends(r.prefix, r.targets),
    })).sort((a, b) => b.prefixLength - a.prefixLength);
    const sniRoutes = proxy.sniRoutes.map((r) => ({
      hostname: r.hostname, wildcard: r.wildcard, persist: r.sessionPersistence,
      backends: backends(sniGroupName(r), r.targets),
    }));
    for (const iface of proxy.listen.interfaces) {
      listeners.push({
        proxy: proxy.name, iface, vip: proxy.listen.address, port: proxy.listen.port, persist: proxy.sessionPersistence,
        defaultBackends, sourceRoutes, sniRoutes,
      });
    }
  }
  return { listeners, diagnostics };
}
