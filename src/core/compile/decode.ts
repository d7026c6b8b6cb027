// One generation of the config maps (GenerationConfig) -> LogicalState: the inverse of
// encodeState, used for the live side of a plan and for the read-back after apply. Pure.
//
// It reports what packets see, not merely what the maps hold: source routes of a listener
// without LB_LF_SRC_ROUTES are not consulted by XDP, so they are left out (a plan then shows
// them as creates); routes and groups no listener reaches are left out too (an apply rewrites
// the generation whole, which removes them). A group index with no entry is an empty group.
//
// Maglev tables (lb_maglev) are derived from the groups' targets and weights, so the logical state
// has no place for them: decodeGeneration ignores them, and checkMaglevTables (run on the read-back
// after an apply) verifies that every persistent group has exactly the table its targets imply.

import { IPPROTO_TCP, IPPROTO_UDP, LB_LF_PERSIST, LB_LF_SRC_ROUTES } from '../abi.js';
import type { GenerationConfig } from '../generation.js';
import { LbError } from '../errors.js';
import { listenerKey, type L4Proto, type LogicalListener, type LogicalState, type LogicalTarget } from '../state.js';
import { compareStrings } from './compile.js';
import { maglevTables } from './encode.js';

export interface DecodeEnv {
  /** Name of an interface by ifindex; undefined when the host has none (shown as `if#<n>`). */
  ifname(index: number): string | undefined;
  /** The proxy owning a listener (from the apply inventory), by listenerKey; null when unknown. */
  proxyOf(listenerKey: string): string | null;
  /** Interfaces with lb's programs attached. */
  interfaces: string[];
  /** Their data paths (the maps do not hold them: the attachments do). */
  paths?: LogicalState['paths'];
}

export function decodeGeneration(gen: GenerationConfig, env: DecodeEnv): LogicalState {
  const groups = new Map<number, LogicalTarget[]>();
  for (const { id, group } of gen.groups) {
    groups.set(id, group.targets.map((t) => ({ addr: t.addr, port: t.port, weight: t.weight })));
  }
  const targetsOf = (id: number): LogicalTarget[] => (groups.get(id) ?? []).map((t) => ({ ...t }));

  const listeners: LogicalListener[] = gen.listeners.map(({ key, value }) => {
    const base = { iface: env.ifname(key.ifindex) ?? `if#${key.ifindex}`, vip: key.vip, port: key.port, proto: protoName(key.proto) };
    const sourceRoutes = (value.flags & LB_LF_SRC_ROUTES) === 0 ? [] : gen.srcRoutes
      .filter((r) => r.listenerId === value.listenerId)
      .map((r) => ({ prefix: `${r.addr}/${r.prefixLen}`, targets: targetsOf(r.group) }))
      .sort((a, b) => compareStrings(a.prefix, b.prefix));
    return {
      ...base,
      proxy: env.proxyOf(listenerKey(base)),
      persist: (value.flags & LB_LF_PERSIST) !== 0,
      defaultTargets: targetsOf(value.defaultGroup),
      sourceRoutes,
    };
  });
  listeners.sort((a, b) => compareStrings(listenerKey(a), listenerKey(b)));

  return {
    interfaces: [...env.interfaces].sort(compareStrings),
    ...(env.paths !== undefined ? { paths: env.paths } : {}),
    settings: {
      tcpIdleSec: gen.settings.tcpIdleSec, udpIdleSec: gen.settings.udpIdleSec, tcpFinSec: gen.settings.tcpFinSec,
      ...(gen.settings.perSource ? { perSource: gen.settings.perSource } : {}),
      ...(gen.settings.perBackend ? { perBackend: gen.settings.perBackend } : {}),
    },
    listeners,
  };
}

/**
 * The first inconsistency between a generation's Maglev tables and its groups, or null: every group
 * a persistent listener uses (default group; source-route groups when it has LB_LF_SRC_ROUTES) that
 * has weight must have exactly the table maglevTables builds from its targets, and no other group
 * a table.
 */
export function checkMaglevTables(gen: GenerationConfig): string | null {
  const want = new Map(maglevTables(gen).map((m) => [m.group, m.table]));
  const have = new Map((gen.maglev ?? []).map((m) => [m.group, m.table]));
  for (const [id, table] of want) {
    const got = have.get(id);
    if (got === undefined) return `group ${id} of a persistent listener has no Maglev table`;
    if (!got.equals(table)) return `the Maglev table of group ${id} is not the one its targets and weights give`;
  }
  for (const id of have.keys()) if (!want.has(id)) return `group ${id} has a Maglev table but no persistent listener uses it (or it has no weight)`;
  return null;
}

function protoName(proto: number): L4Proto {
  if (proto === IPPROTO_TCP) return 'tcp';
  if (proto === IPPROTO_UDP) return 'udp';
  throw new LbError('LB_BPF_ABI', `a live listener has IP protocol ${proto}; lb writes only TCP (6) and UDP (17)`, { proto });
}
