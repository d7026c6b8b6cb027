// Identity of what the runtime tracks, and the walk over every target group of a config.
//
// Keys:
// - a backend is "addr:port" (what the data plane counts: lb_tstats is per backend, so health
//   of an address, circuit state and active flows are per backend);
// - a drain is per (proxy, target id), the target id as the config names it ("10.0.0.1:8080",
//   "api.internal:8080"), because `lb drain PROXY TARGET` names it that way;
// - an effective weight is per (proxy, group, target id): the same target may sit in several
//   groups of a proxy, and each group is reweighted (docs/design.md §1: every group, never only the
//   default target).
//
// Group names: 'default', a source route's canonical prefix (both as compile.ts names them), and
// for SNI routes "sni:" + hostname ("sni:*.example.com" for a wildcard), which cannot collide
// with a prefix.

import type { GroupName } from '../core/compile/compile.js';
import type { LbConfig, Proxy, Target, TargetGroup } from '../core/config/types.js';
import { sniGroupName } from '../core/sni/splice-table.js';

export function backendKey(addr: string, port: number): string {
  return `${addr}:${port}`;
}

export { sniGroupName } from '../core/sni/splice-table.js';

export function weightKey(proxy: string, group: GroupName, targetId: string): string {
  return `${proxy}\u0000${group}\u0000${targetId}`;
}

export function drainKey(proxy: string, targetId: string): string {
  return `${proxy}\u0000${targetId}`;
}

export interface ConfigGroup {
  proxy: Proxy;
  name: GroupName;
  group: TargetGroup;
}

/** Every target group of every proxy: default target, source routes, SNI routes (config order). */
export function configGroups(config: LbConfig): ConfigGroup[] {
  const out: ConfigGroup[] = [];
  for (const proxy of config.proxies) pushGroups(out, proxy);
  return out;
}

/** Appends the target groups of one proxy, in config order. */
function pushGroups(out: ConfigGroup[], proxy: Proxy): void {
  out.push({ proxy, name: 'default', group: proxy.defaultTarget });
  for (const r of proxy.sourceRoutes) out.push({ proxy, name: r.prefix, group: r.targets });
  for (const r of proxy.sniRoutes) out.push({ proxy, name: sniGroupName(r), group: r.targets });
}

/**
 * The groups of the proxy named `name`. A control command (a drain) asks this of a 10,000-proxy
 * config: a walk of the names, not a group object per target group of every proxy.
 */
function groupsOfProxy(config: LbConfig, name: string): ConfigGroup[] {
  const out: ConfigGroup[] = [];
  for (const proxy of config.proxies) if (proxy.name === name) pushGroups(out, proxy);
  return out;
}

/** The configured targets of a proxy with this id (one per group it appears in); [] when none. */
export function findTargets(config: LbConfig, proxy: string, targetId: string): Target[] {
  return groupsOfProxy(config, proxy).flatMap((g) => g.group.targets.filter((t) => t.id === targetId));
}

/** The distinct target ids of a proxy, sorted (for error messages and status). */
export function proxyTargetIds(config: LbConfig, proxy: string): string[] {
  const ids = new Set<string>();
  for (const g of groupsOfProxy(config, proxy)) for (const t of g.group.targets) ids.add(t.id);
  return [...ids].sort();
}

/** The backends ("addr:port") of one target: its ip, or its host's current addresses. */
export function targetBackends(target: Target, resolve: (host: string) => readonly string[] | undefined): string[] {
  const addrs = target.kind === 'ip' ? [target.ip] : [...(resolve(target.host) ?? [])];
  return addrs.map((a) => backendKey(a, target.port));
}

/** Every backend of a config, distinct and sorted (what to sample, what breakers to keep). */
export function configBackends(config: LbConfig, resolve: (host: string) => readonly string[] | undefined): string[] {
  const out = new Set<string>();
  for (const { group } of configGroups(config)) for (const t of group.targets) for (const b of targetBackends(t, resolve)) out.add(b);
  return [...out].sort();
}
