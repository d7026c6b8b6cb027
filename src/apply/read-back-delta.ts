// What a delta apply's read-back decodes (docs/apply.md, step 7): not the whole desired generation
// but the part its change reaches. The written keys themselves are read back from the maps by
// readBackRuns like any apply's; this part is the decode of the desired entries into operator
// terms, compared with the desired LogicalState, and the Maglev check. Outside the change the
// desired generation is the one the previous apply of this process decoded and compared whole
// (or compared at its own change), so decoding it again finds nothing new.
//
// The part: every listener whose key the change wrote, whose listener id scopes a written route,
// or that reaches (default group or a source route's group) a group or Maglev table the change
// wrote; with all their routes and groups. Its Maglev tables: those the change wrote, and those
// of the groups its persistent listeners use as the data path does (default group; route groups
// with LB_LF_SRC_ROUTES), as maglevTables() picks them. A table of a group the part reaches only
// through a non-persistent listener is left out: the change did not write it, and the persistent
// listener that owns it is outside the part (judged when it was written). So checkMaglevTables
// on the part finds a written table no persistent listener uses, a missing or wrong table of a
// written group, and a wrong table of a written persistent listener. Found by integer scans of
// the desired columns: nothing is decoded or formatted outside the part.

import { LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAX_GROUPS } from '../core/abi.js';
import { gather, pairsOf, type Column, type Columns } from '../core/columns.js';
import { entriesAt, unionKeys } from '../core/columns-delta.js';
import type { EncodedGeneration } from '../core/generation.js';

/** Group index within its generation, of a group or Maglev key at entry i. */
function groupOf(c: Column, i: number): number {
  return c.keys.readUInt32LE(i * c.keySize) % LB_MAX_GROUPS;
}

/** The listener id of a source route key (lb_src_key.scope, the generation bit cleared). */
function scopeOf(c: Column, i: number): number {
  return c.keys.readUInt32LE(i * c.keySize + 4) & 0x7fffffff;
}

/**
 * The entries of `desired` (the whole desired generation, canonical columns) that the change
 * reaches: `sides` are the change's entries before and after (the delta's `current` and `want`,
 * canonical, keyed like `desired`). As pairs, for decodeGeneration.
 */
export function changeReach(desired: Columns, sides: readonly Columns[]): EncodedGeneration {
  const written = new Set<number>(); // groups whose slot or Maglev table the change wrote
  const scopes = new Set<number>();
  for (const s of sides) {
    for (let i = 0; i < s.groups.count; i++) written.add(groupOf(s.groups, i));
    for (let i = 0; i < s.maglev.count; i++) written.add(groupOf(s.maglev, i));
    for (let i = 0; i < s.srcRoutes.count; i++) scopes.add(scopeOf(s.srcRoutes, i));
  }
  const keyed = new Set(entriesAt(desired.listeners, sides.reduce((k, s) => unionKeys(k, s.listeners), { ...desired.listeners, count: 0 })).index);
  const l = desired.listeners;
  const r = desired.srcRoutes;
  const routeGroup = (i: number): number => r.values.readUInt32LE(i * r.valueSize);
  for (let i = 0; i < r.count; i++) if (written.has(routeGroup(i))) scopes.add(scopeOf(r, i));
  const picked: number[] = [];
  const ids = new Set<number>();
  const persistentIds = new Set<number>(); // of listeners whose route groups need tables
  const groups = new Set(written);
  const tables = new Set(written);
  for (let i = 0; i < l.count; i++) {
    const id = l.values.readUInt32LE(i * l.valueSize);
    const defaultGroup = l.values.readUInt32LE(i * l.valueSize + 4);
    if (!keyed.has(i) && !scopes.has(id) && !written.has(defaultGroup)) continue;
    picked.push(i);
    ids.add(id);
    groups.add(defaultGroup);
    const flags = l.values.readUInt32LE(i * l.valueSize + 8);
    if ((flags & LB_LF_PERSIST) === 0) continue;
    tables.add(defaultGroup);
    if ((flags & LB_LF_SRC_ROUTES) !== 0) persistentIds.add(id);
  }
  const routes: number[] = [];
  for (let i = 0; i < r.count; i++) {
    const id = scopeOf(r, i);
    if (!ids.has(id)) continue;
    routes.push(i);
    groups.add(routeGroup(i));
    if (persistentIds.has(id)) tables.add(routeGroup(i));
  }
  const where = (c: Column, keep: Set<number>): Column => {
    const at: number[] = [];
    for (let i = 0; i < c.count; i++) if (keep.has(groupOf(c, i))) at.push(i);
    return gather(c, at);
  };
  return {
    settings: desired.settings,
    listeners: pairsOf(gather(l, picked)),
    groups: pairsOf(where(desired.groups, groups)),
    srcRoutes: pairsOf(gather(r, routes)),
    maglev: pairsOf(where(desired.maglev, tables)),
  };
}
