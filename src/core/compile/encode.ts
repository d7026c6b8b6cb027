// LogicalState -> the content of one generation of the config maps (GenerationConfig). Pure.
//
// Ids:
// - listener_id and group indexes are assigned 0, 1, 2, ... in sorted order (listeners by
//   listenerKey; per listener its default group, then its source routes by prefix). A generation
//   is rewritten whole on every apply, so they need no stability.
// - target_id (the lb_tstats slot) is ONE id per backend addr:port across all groups, because
//   counters are per backend. A backend already in the live maps keeps its id, so its counters
//   continue across applies; a new backend gets the lowest id that no live backend holds (a
//   removed backend's slot still counts the flows it carries, so it is not handed on while live).
//
// Session persistence: every group a persistent listener uses (its default group and its
// source-route groups) that has weight gets a Maglev table (lb_maglev), built from the effective
// weights by src/core/maglev.ts with the backend "addr:port" as identity. The tables are derived
// data: decode ignores them; the apply compares them byte for byte on read-back.

import {
  IPPROTO_TCP, IPPROTO_UDP, LB_GENERATIONS, LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAGLEV_SIZE, LB_MAX_GROUPS, LB_MAX_LISTENERS,
  LB_MAX_MAGLEV_GROUPS, LB_MAX_SRC_ROUTES, LB_MAX_TARGET_IDS, LB_MAX_TARGETS, encodeMaglev,
} from '../abi.js';
import type { GenerationConfig } from '../generation.js';
import { LbError } from '../errors.js';
import { buildMaglevTable, type MaglevBackend } from '../maglev.js';
import { listenerKey, listenerLabel, targetLabel, type LogicalState, type LogicalTarget } from '../state.js';
import { compareStrings } from './compile.js';

export interface EncodeEnv {
  /** The host's ifindex of an interface, undefined when it does not exist. */
  ifindex(name: string): number | undefined;
  /** "addr:port" -> target_id of the backends in the live (active) generation. */
  liveTargetIds: ReadonlyMap<string, number>;
}

export interface EncodeResult {
  generation: GenerationConfig;
  /** "addr:port" -> target_id of every backend of this state. */
  targetIds: Map<string, number>;
}

/** Source routes of one generation: the LPM map holds both generations during a write. */
export const MAX_SRC_ROUTES_PER_GENERATION = LB_MAX_SRC_ROUTES / LB_GENERATIONS;

/** lb_group stores cumulative weights as __u32 but encodeGroup bounds each weight to 16 bits. */
const MAX_ENCODED_WEIGHT = 0xffff;

export function encodeState(state: LogicalState, env: EncodeEnv): EncodeResult {
  const listeners = [...state.listeners].sort((a, b) => compareStrings(listenerKey(a), listenerKey(b)));

  const ifindexes = new Map<string, number>();
  const unknown: string[] = [];
  for (const iface of new Set([...state.interfaces, ...listeners.map((l) => l.iface)])) {
    const index = env.ifindex(iface);
    if (index === undefined) unknown.push(iface);
    else ifindexes.set(iface, index);
  }
  if (unknown.length > 0) {
    unknown.sort(compareStrings);
    const users = listeners.filter((l) => unknown.includes(l.iface)).map((l) => `${listenerLabel(l)} (proxy ${l.proxy ?? '?'})`);
    throw new LbError('LB_COMPILE_IFACE',
      `no such network interface: ${unknown.join(', ')}${users.length > 0 ? `; used by ${users.join(', ')}` : ''}`,
      { interfaces: unknown });
  }

  const routeCount = listeners.reduce((n, l) => n + l.sourceRoutes.length, 0);
  limit('listeners', listeners.length, LB_MAX_LISTENERS);
  limit('groups', listeners.length + routeCount, LB_MAX_GROUPS);
  limit('source routes', routeCount, MAX_SRC_ROUTES_PER_GENERATION);

  const targetIds = assignTargetIds(listeners.flatMap((l) => [l.defaultTargets, ...l.sourceRoutes.map((r) => r.targets)]), env.liveTargetIds);
  const generation: GenerationConfig = {
    settings: {
      tcpIdleSec: state.settings.tcpIdleSec, udpIdleSec: state.settings.udpIdleSec, tcpFinSec: state.settings.tcpFinSec, flags: 0,
      ...(state.settings.perSource ? { perSource: state.settings.perSource } : {}),
      ...(state.settings.perBackend ? { perBackend: state.settings.perBackend } : {}),
    },
    listeners: [],
    groups: [],
    srcRoutes: [],
  };
  let nextGroup = 0;
  const addGroup = (targets: LogicalTarget[], where: string): number => {
    limit(`targets in the group of ${where}`, targets.length, LB_MAX_TARGETS);
    for (const t of targets) {
      if (!Number.isInteger(t.weight) || t.weight < 0 || t.weight > MAX_ENCODED_WEIGHT) {
        throw new LbError('LB_COMPILE_LIMIT', `weight of ${targetLabel(t)} in ${where} is ${t.weight}; the data plane holds an integer 0..${MAX_ENCODED_WEIGHT}`, { target: targetLabel(t), weight: t.weight });
      }
    }
    const id = nextGroup++;
    generation.groups.push({
      id,
      group: { targets: targets.map((t) => ({ addr: t.addr, port: t.port, weight: t.weight, targetId: targetIds.get(targetLabel(t))! })) },
    });
    return id;
  };

  listeners.forEach((l, listenerId) => {
    const label = listenerLabel(l);
    const defaultGroup = addGroup(l.defaultTargets, label);
    const routes = [...l.sourceRoutes].sort((a, b) => compareStrings(a.prefix, b.prefix));
    for (const r of routes) {
      const [addr, len] = r.prefix.split('/');
      generation.srcRoutes.push({ listenerId, addr: addr!, prefixLen: Number(len), group: addGroup(r.targets, `${label} route ${r.prefix}`) });
    }
    generation.listeners.push({
      key: { ifindex: ifindexes.get(l.iface)!, vip: l.vip, port: l.port, proto: l.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP },
      value: { listenerId, defaultGroup, flags: (routes.length > 0 ? LB_LF_SRC_ROUTES : 0) | (l.persist ? LB_LF_PERSIST : 0) },
    });
  });
  limit('Maglev tables (groups of persistent listeners that take new flows)', persistentGroups(generation).length, LB_MAX_MAGLEV_GROUPS);
  generation.maglev = maglevTables(generation);
  return { generation, targetIds };
}

/** Ids of the groups a persistent listener uses: its default group, and its source-route groups when it has LB_LF_SRC_ROUTES. */
function persistentGroups(gen: GenerationConfig): number[] {
  const groups = new Map(gen.groups.map((g) => [g.id, g.group.targets]));
  const ids = new Set<number>();
  for (const { value } of gen.listeners) {
    if ((value.flags & LB_LF_PERSIST) === 0) continue;
    ids.add(value.defaultGroup);
    if ((value.flags & LB_LF_SRC_ROUTES) !== 0) for (const r of gen.srcRoutes) if (r.listenerId === value.listenerId) ids.add(r.group);
  }
  return [...ids].filter((id) => (groups.get(id) ?? []).some((t) => t.weight > 0)).sort((a, b) => a - b);
}

/**
 * The Maglev tables a generation implies: one per group of a persistent listener that has weight,
 * by group id. A function of the listeners, groups and routes alone, so a generation saved without
 * its tables (a plan file) gets exactly the same ones back.
 */
export function maglevTables(gen: GenerationConfig): Array<{ group: number; table: Buffer }> {
  const groups = new Map(gen.groups.map((g) => [g.id, g.group.targets]));
  return persistentGroups(gen).map((group) => ({ group, table: maglevTable(groups.get(group)!)! }));
}

/** Built tables by their backends and weights: a reweight rebuilds only the groups it changed. */
const tableCache = new Map<string, Buffer>();
const TABLE_CACHE_MAX = 256;

/**
 * The lb_maglev value of a group: LB_MAGLEV_SIZE target indexes, or null when no target has
 * weight (such a group takes no new flows and needs no table). Backends are identified by
 * "addr:port"; a backend listed twice in one group gets "addr:port#2" for its second entry.
 */
export function maglevTable(targets: ReadonlyArray<Pick<LogicalTarget, 'addr' | 'port' | 'weight'>>): Buffer | null {
  if (!targets.some((t) => t.weight > 0)) return null;
  const seen = new Map<string, number>();
  const backends: MaglevBackend[] = targets.map((t) => {
    const label = targetLabel(t);
    const n = (seen.get(label) ?? 0) + 1;
    seen.set(label, n);
    return { id: n === 1 ? label : `${label}#${n}`, weight: t.weight };
  });
  const key = JSON.stringify(backends.map((b) => [b.id, b.weight]));
  let table = tableCache.get(key);
  if (table === undefined) {
    table = encodeMaglev(buildMaglevTable(backends, LB_MAGLEV_SIZE));
    if (tableCache.size >= TABLE_CACHE_MAX) tableCache.delete(tableCache.keys().next().value!);
    tableCache.set(key, table);
  } else {
    // Most recently used last, so the oldest goes first.
    tableCache.delete(key);
    tableCache.set(key, table);
  }
  return Buffer.from(table);
}

function assignTargetIds(groups: LogicalTarget[][], live: ReadonlyMap<string, number>): Map<string, number> {
  const order: string[] = [];
  const seen = new Set<string>();
  for (const g of groups) {
    for (const t of g) {
      const key = targetLabel(t);
      if (!seen.has(key)) { seen.add(key); order.push(key); }
    }
  }
  const ids = new Map<string, number>();
  const taken = new Set<number>();
  for (const key of order) {
    const id = live.get(key);
    if (id !== undefined && Number.isInteger(id) && id >= 0 && id < LB_MAX_TARGET_IDS && !taken.has(id)) {
      ids.set(key, id);
      taken.add(id);
    }
  }
  const heldByLive = new Set(live.values());
  let next = 0;
  const fresh = order.filter((key) => !ids.has(key));
  for (const key of fresh) {
    while (next < LB_MAX_TARGET_IDS && (taken.has(next) || heldByLive.has(next))) next++;
    if (next >= LB_MAX_TARGET_IDS) break;
    ids.set(key, next);
    taken.add(next);
  }
  // Only when the live backends hold every other slot: hand on a removed backend's slot after all.
  next = 0;
  for (const key of fresh) {
    if (ids.has(key)) continue;
    while (next < LB_MAX_TARGET_IDS && taken.has(next)) next++;
    if (next >= LB_MAX_TARGET_IDS) limit('distinct backends', order.length, LB_MAX_TARGET_IDS);
    ids.set(key, next);
    taken.add(next);
  }
  return ids;
}

function limit(what: string, count: number, max: number): void {
  if (count > max) {
    throw new LbError('LB_COMPILE_LIMIT', `too many ${what}: ${count}; the data plane holds at most ${max} per generation`, { what, count, max });
  }
}
