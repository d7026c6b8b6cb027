// The live state as a process that applied it knows it, instead of reading and decoding the
// active generation (readLive: ~350 ms of a 10,000-proxy plan). The daemon plans against the state
// it applied last while nothing moved since: lb_ctl shows the generation and serial its apply left
// and every config map has the kernel id it had (the checks of the delta apply, src/apply/delta.ts),
// and every listener's interface still has the ifindex the apply encoded. Any other apply (another
// process, a rollback, a reload, a recovery) flips lb_ctl or replaces the maps; then, or when the
// process knows nothing, the caller reads the maps (readLive).
//
// What the generation holds in operator terms (settings, listeners with their proxies) is the
// applied desired state: its apply wrote it and read it back (verified in the transaction, docs/
// apply.md). Everything else of the live state is read from the host as readLive reads it: the
// attachments, their data paths and route_localnet, the apply inventory (interfaces deleted since,
// target ids). The result equals readLive's (test/privileged/known-live.test.ts). Like the delta
// apply, it trusts that nothing but lb's apply writes the config maps: drift is found by the drift
// checks, which always read the maps (src/reconcile/drift-heal.ts).

import { DataPlane, interfaceNamer, readCtl, routeLocalnet } from '../dataplane/index.js';
import type { LogicalState } from '../core/state.js';
import { readInventory } from './inventory.js';
import { hostInterfacesOf, instanceExists, isAttached, type ReadLiveOptions } from './live.js';
import { runDir } from './run-dir.js';

/** Where the live maps stood right after an apply: what a later plan checks before trusting memory. */
export interface LiveMark {
  activeGen: number;
  serial: number;
  /** The kernel ids of lb_ctl and the config maps (configMapIds). */
  mapIds: string;
}

/** What a process knows of the live state: the state it applied, its target ids, and where the maps stood then. */
export interface KnownLive {
  desired: LogicalState;
  targetIds: ReadonlyMap<string, number>;
  mark: LiveMark;
}

/** A live state for a plan: in operator terms, with the target ids the encoding keeps. */
export interface LiveView {
  state: LogicalState;
  targetIds: Map<string, number>;
}

/** The kernel ids of lb_ctl and the config maps: a reload or a `lb down` + `lb apply` replaces them. */
export function configMapIds(dp: DataPlane): string {
  const m = dp.maps;
  return [m.lb_ctl.id, m.lb_settings.id, m.lb_listeners.id, m.lb_groups.id, m.lb_src_routes.id, m.lb_maglev.id].join('/');
}

export function liveMarkOf(dp: DataPlane): LiveMark {
  const ctl = readCtl(dp);
  return { activeGen: ctl.activeGen, serial: ctl.serial, mapIds: configMapIds(dp) };
}

export function sameMark(a: LiveMark, b: LiveMark): boolean {
  return a.activeGen === b.activeGen && a.serial === b.serial && a.mapIds === b.mapIds;
}

/** Where the instance's maps stand now; null when it has no pinned state. */
export function readLiveMark(instance: string): LiveMark | null {
  if (!instanceExists(instance)) return null;
  const dp = DataPlane.open({ instance });
  try {
    return liveMarkOf(dp);
  } finally {
    dp.close();
  }
}

/**
 * The live state from what the process knows, or null when that may be out of date (the maps
 * moved, an interface has another ifindex, the inventory is unreadable): then read the maps.
 */
export function readKnownLive(instance: string, known: KnownLive, options: Pick<ReadLiveOptions, 'warn'> = {}): LiveView | null {
  if (!instanceExists(instance)) return null;
  const dp = DataPlane.open({ instance });
  try {
    if (!sameMark(liveMarkOf(dp), known.mark)) return null;
    const namer = interfaceNamer();
    // readLive names a listener by the interface its key's ifindex names now: the same name only
    // while each interface keeps the ifindex the apply encoded.
    const checked = new Set<string>();
    for (const l of known.desired.listeners) {
      if (checked.has(l.iface)) continue;
      const index = known.desired.paths?.[l.iface]?.ifindex;
      if (index === undefined || namer(index) !== l.iface) return null;
      checked.add(l.iface);
    }
    // The proxies come from the applied state; readLive takes them from the inventory the apply wrote.
    const inventory = readInventory(runDir(instance), options.warn);
    if (inventory === null) return null;
    const attachments = dp.attachments().filter(isAttached);
    const localnet = new Set(attachments.map((a) => a.ifname).filter(routeLocalnet));
    const host = hostInterfacesOf(attachments, inventory, localnet, namer);
    const targetIds = new Map<string, number>(Object.entries(inventory.targetIds ?? {}));
    for (const [label, id] of known.targetIds) targetIds.set(label, id);
    return {
      state: { interfaces: host.interfaces, paths: host.paths, settings: known.desired.settings, listeners: known.desired.listeners },
      targetIds,
    };
  } finally {
    dp.close();
  }
}
