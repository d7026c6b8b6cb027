// Raw operations: the map writes that turn what one generation holds now into what it must hold.
// Pure: diffGeneration, canonicalGeneration, restoreOps; src/apply/execute-ops.ts runs them. The
// apply only ever runs them against the INACTIVE generation, which no packet reads, so their order
// does not matter to traffic; it is fixed anyway (puts before deletes, map by map, keys sorted) so
// plans, journals and fault-injection indexes are stable.

import { encodeGroup, encodeU32 } from './abi.js';
import type { EncodedGeneration } from './generation.js';

/** The generational config maps. lb_ctl is written only by the flip. */
export const CONFIG_MAPS = ['lb_settings', 'lb_groups', 'lb_maglev', 'lb_src_routes', 'lb_listeners'] as const;
export type ConfigMapName = (typeof CONFIG_MAPS)[number];

export interface RawOp {
  map: ConfigMapName;
  /** put = create or overwrite; delete = remove (never used on the array maps lb_settings and lb_groups). */
  kind: 'put' | 'delete';
  key: Buffer;
  /** The value to write (put only). */
  value?: Buffer;
}

/** lb_groups is an array: a removed group is "cleared" by writing the empty group. */
export const EMPTY_GROUP_VALUE: Buffer = encodeGroup({ targets: [] });

/** Whether a group slot holds a group (count > 0); an empty slot reads like an absent group. */
export function groupPresent(value: Buffer): boolean {
  return value.readUInt32LE(0) > 0;
}

const hex = (b: Buffer): string => b.toString('hex');

/** Entries sorted by key bytes. Sorting by the keys' hex text gives the same order (equal-length
 * keys) with one conversion per entry instead of a native Buffer.compare per comparison. */
function sortedByKey(entries: ReadonlyArray<[Buffer, Buffer]>): Array<[Buffer, Buffer]> {
  const decorated = entries.map((e) => ({ h: hex(e[0]), e }));
  decorated.sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  return decorated.map((d) => d.e);
}

/**
 * One generation in canonical form: entries sorted by key bytes, empty group slots dropped (a
 * group with no targets and no group at all behave the same in the data plane: no target, drop).
 * Two generations hold the same configuration exactly when their canonical forms are equal.
 */
export function canonicalGeneration(g: EncodedGeneration): EncodedGeneration {
  return {
    settings: g.settings,
    listeners: sortedByKey(g.listeners),
    groups: sortedByKey(g.groups.filter(([, v]) => groupPresent(v))),
    srcRoutes: sortedByKey(g.srcRoutes),
    maglev: sortedByKey(g.maglev),
  };
}

/** The canonical form as one string of hex (for byte-for-byte comparison and digests). */
export function canonicalText(g: EncodedGeneration): string {
  const c = canonicalGeneration(g);
  const lines = [`settings ${hex(c.settings)}`];
  for (const [name, list] of [['listener', c.listeners], ['group', c.groups], ['src', c.srcRoutes], ['maglev', c.maglev]] as const) {
    for (const [k, v] of list) lines.push(`${name} ${hex(k)} ${hex(v)}`);
  }
  return lines.join('\n');
}

/** The first difference between two generations, in words, or null when they are byte-identical. */
export function firstDifference(actual: EncodedGeneration, expected: EncodedGeneration): string | null {
  const a = canonicalGeneration(actual);
  const e = canonicalGeneration(expected);
  if (!a.settings.equals(e.settings)) return `lb_settings holds ${hex(a.settings)}, expected ${hex(e.settings)}`;
  for (const [map, x, y] of [['lb_listeners', a.listeners, e.listeners], ['lb_groups', a.groups, e.groups],
    ['lb_src_routes', a.srcRoutes, e.srcRoutes], ['lb_maglev', a.maglev, e.maglev]] as const) {
    const have = new Map(x.map(([k, v]) => [hex(k), v]));
    const want = new Map(y.map(([k, v]) => [hex(k), v]));
    for (const [k, v] of want) {
      const got = have.get(k);
      if (got === undefined) return `${map} lacks key ${k}`;
      if (!got.equals(v)) return `${map}[${k}] differs from the desired value`;
    }
    for (const k of have.keys()) if (!want.has(k)) return `${map} holds unexpected key ${k}`;
  }
  return null;
}

/**
 * The ops that make generation `gen` hold `desired` when it holds `current` now (both as read by
 * readGenerationRaw / made by encodeGeneration for that same generation). Order: settings, group
 * puts, Maglev table puts, source-route puts, listener puts, listener deletes, source-route
 * deletes, Maglev table deletes, group clears.
 */
export function diffGeneration(gen: number, current: EncodedGeneration, desired: EncodedGeneration): RawOp[] {
  const cur = canonicalGeneration(current);
  const want = canonicalGeneration(desired);
  const ops: RawOp[] = [];
  if (!cur.settings.equals(want.settings)) ops.push({ map: 'lb_settings', kind: 'put', key: encodeU32(gen), value: want.settings });

  const puts = (map: ConfigMapName, have: Array<[Buffer, Buffer]>, wanted: Array<[Buffer, Buffer]>): void => {
    const old = new Map(have.map(([k, v]) => [hex(k), v]));
    for (const [k, v] of wanted) {
      const o = old.get(hex(k));
      if (o === undefined || !o.equals(v)) ops.push({ map, kind: 'put', key: k, value: v });
    }
  };
  const removals = (map: ConfigMapName, have: Array<[Buffer, Buffer]>, wanted: Array<[Buffer, Buffer]>): void => {
    const keep = new Set(wanted.map(([k]) => hex(k)));
    for (const [k] of have) {
      if (keep.has(hex(k))) continue;
      ops.push(map === 'lb_groups' ? { map, kind: 'put', key: k, value: EMPTY_GROUP_VALUE } : { map, kind: 'delete', key: k });
    }
  };
  puts('lb_groups', cur.groups, want.groups);
  puts('lb_maglev', cur.maglev, want.maglev);
  puts('lb_src_routes', cur.srcRoutes, want.srcRoutes);
  puts('lb_listeners', cur.listeners, want.listeners);
  removals('lb_listeners', cur.listeners, want.listeners);
  removals('lb_src_routes', cur.srcRoutes, want.srcRoutes);
  removals('lb_maglev', cur.maglev, want.maglev);
  removals('lb_groups', cur.groups, want.groups);
  return ops;
}

/** A map entry as it was before an apply touched it: value null means the key was absent. */
export interface SavedEntry {
  map: ConfigMapName;
  key: Buffer;
  value: Buffer | null;
}

/** The ops that put every saved entry back exactly (absent keys deleted, array slots rewritten). */
export function restoreOps(saved: readonly SavedEntry[]): RawOp[] {
  return saved.map((s) => (s.value === null
    ? { map: s.map, kind: 'delete' as const, key: s.key }
    : { map: s.map, kind: 'put' as const, key: s.key, value: s.value }));
}

/** One line per op, for --verbose output and error messages. */
export function describeOp(op: RawOp): string {
  const what = op.map === 'lb_groups' && op.kind === 'put' && op.value !== undefined && !groupPresent(op.value) ? 'clear' : op.kind;
  return `${what} ${op.map}[${hex(op.key)}]${op.value !== undefined && what === 'put' ? ` = ${hex(op.value).slice(0, 64)}${op.value.length > 32 ? '…' : ''}` : ''}`;
}
