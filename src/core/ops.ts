// Raw operations: the map writes that turn what one generation holds now into what it must hold.
// Pure: diffGeneration, canonicalBytes, restoreOps; src/apply/execute-ops.ts runs them. The
// apply only ever runs them against the INACTIVE generation, which no packet reads, so their order
// does not matter to traffic; it is fixed anyway (puts before deletes, map by map, keys sorted) so
// plans, journals and fault-injection indexes are stable.

import { LB_MAX_GROUPS, encodeGroup } from './abi.js';
import type { EncodedGeneration } from './generation.js';
import { canonicalColumns, columnsOf, diffColumns, rawOpsOf } from './columns.js';

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

/**
 * A key as a string whose order and equality are those of its bytes, for sorting and as a Map key
 * (never shown to anyone): one character per byte (latin1), so `<` and the engine's own string
 * sort compare like Buffer.compare. Built in JS for the short keys of the config maps (a native
 * toString per key costs more than the key itself); strings of characters below 256 are one-byte
 * strings, which the engine sorts several times faster than two-byte ones.
 */
export function byteKey(b: Buffer): string {
  switch (b.length) {
    case 4: return String.fromCharCode(b[0]!, b[1]!, b[2]!, b[3]!);
    case 12: return String.fromCharCode(b[0]!, b[1]!, b[2]!, b[3]!, b[4]!, b[5]!, b[6]!, b[7]!, b[8]!, b[9]!, b[10]!, b[11]!);
    default: return b.toString('latin1');
  }
}

/** An entry with its byte key, computed once. */
interface Keyed { id: string; k: Buffer; v: Buffer }

function keyed(entries: ReadonlyArray<readonly [Buffer, Buffer]>, keep?: (v: Buffer) => boolean): Keyed[] {
  const out: Keyed[] = [];
  for (const [k, v] of entries) if (keep === undefined || keep(v)) out.push({ id: byteKey(k), k, v });
  return out;
}

/**
 * Sorts by byte key. The ids are sorted by the engine's own string order (no comparator: no call
 * into JS per comparison), and the entries picked back by id; a list that is already in order is
 * only checked. Equal ids keep one entry each in the order they came.
 */
function sortKeyed(list: Keyed[]): Keyed[] {
  let sorted = true;
  for (let i = 1; i < list.length && sorted; i++) sorted = list[i - 1]!.id <= list[i]!.id;
  if (sorted) return list;
  const byId = new Map<string, Keyed>();
  let repeated: Map<string, Keyed[]> | undefined;
  for (const e of list) {
    if (!byId.has(e.id)) byId.set(e.id, e);
    else {
      repeated ??= new Map();
      const more = repeated.get(e.id);
      if (more === undefined) repeated.set(e.id, [e]);
      else more.push(e);
    }
  }
  const ids = [...byId.keys()].sort();
  const out: Keyed[] = [];
  for (const id of ids) {
    out.push(byId.get(id)!);
    const more = repeated?.get(id);
    if (more !== undefined) out.push(...more);
  }
  return out;
}

/** The four keyed maps of a generation, in canonical order and with empty group slots dropped. */
interface CanonicalKeyed { settings: Buffer; listeners: Keyed[]; groups: Keyed[]; srcRoutes: Keyed[]; maglev: Keyed[] }

/**
 * canonicalBytes and canonicalText of one generation sort it once: the canonical form is kept
 * per generation object, and used again only while its lists are the same arrays of
 * the same lengths (nothing in lb mutates an encoded generation's lists in place).
 */
const canonicalCache = new WeakMap<EncodedGeneration, { of: unknown[]; lengths: number[]; c: CanonicalKeyed }>();

function canonicalKeyed(g: EncodedGeneration): CanonicalKeyed {
  const of = [g.settings, g.listeners, g.groups, g.srcRoutes, g.maglev];
  const lengths = [g.listeners.length, g.groups.length, g.srcRoutes.length, g.maglev.length];
  const hit = canonicalCache.get(g);
  if (hit !== undefined && hit.of.every((x, i) => x === of[i]) && hit.lengths.every((n, i) => n === lengths[i])) return hit.c;
  const c = computeCanonicalKeyed(g);
  canonicalCache.set(g, { of, lengths, c });
  return c;
}

function computeCanonicalKeyed(g: EncodedGeneration): CanonicalKeyed {
  return {
    settings: g.settings,
    listeners: sortKeyed(keyed(g.listeners)),
    groups: sortKeyed(keyed(g.groups, groupPresent)),
    srcRoutes: sortKeyed(keyed(g.srcRoutes)),
    maglev: sortKeyed(keyed(g.maglev)),
  };
}

/**
 * Feeds the canonical text (see canonicalText) to `sink` in pieces whose concatenation is that
 * text: a digest of 100,000 entries then never holds one string of all of them.
 */
export function writeCanonicalText(g: EncodedGeneration, sink: (piece: string) => void): void {
  const c = canonicalKeyed(g);
  sink(`settings ${hex(c.settings)}`);
  for (const [name, list] of [['listener', c.listeners], ['group', c.groups], ['src', c.srcRoutes], ['maglev', c.maglev]] as const) {
    for (const e of list) sink(`\n${name} ${hex(e.k)} ${hex(e.v)}`);
  }
}

/**
 * The canonical form as bytes, for digests: per map, its name, its entry count, then every
 * entry's key and value, in canonical order, with the generation taken out of the keys (the
 * listener key's gen byte, the slot index's half of lb_groups and lb_maglev, the source-route
 * scope's top bit): one configuration gives the same bytes in either generation, so the digest of
 * what the active generation holds compares with the digest of the desired one encoded for the
 * other. Equal exactly when the canonical texts are equal up to that generation.
 */
export function canonicalBytes(g: EncodedGeneration): Buffer {
  const c = canonicalKeyed(g);
  const sections = [['listener', c.listeners, 'listener'], ['group', c.groups, 'slot'], ['src', c.srcRoutes, 'route'], ['maglev', c.maglev, 'slot']] as const;
  const head = (name: string, n: number): string => `\n${name} ${n}\n`;
  let size = 'lb-generation-v2\nsettings\n'.length + c.settings.length;
  for (const [name, list] of sections) {
    size += head(name, list.length).length;
    for (const e of list) size += e.k.length + e.v.length;
  }
  const out = Buffer.allocUnsafe(size);
  let off = out.write('lb-generation-v2\nsettings\n', 0, 'latin1');
  off += c.settings.copy(out, off);
  for (const [name, list, kind] of sections) {
    off += out.write(head(name, list.length), off, 'latin1');
    for (const e of list) {
      off = put(out, off, e.k);
      const k = off - e.k.length;
      if (kind === 'listener') out[k + 11] = 0;
      else if (kind === 'slot') out.writeUInt32LE(e.k.readUInt32LE(0) % LB_MAX_GROUPS, k);
      else out[k + 7] = out[k + 7]! & 0x7f;
      off = put(out, off, e.v);
    }
  }
  return out;
}

/**
 * Copies `b` into `out` at `off`; returns the offset after it. Short buffers (keys, route values)
 * byte by byte: Buffer.copy's native call costs more than copying 12 bytes, 200,000 times a digest.
 */
function put(out: Buffer, off: number, b: Buffer): number {
  if (b.length > 32) return off + b.copy(out, off);
  for (let i = 0; i < b.length; i++) out[off + i] = b[i]!;
  return off + b.length;
}

/** The canonical form as one string of hex (for byte-for-byte comparison and digests). */
export function canonicalText(g: EncodedGeneration): string {
  const pieces: string[] = [];
  writeCanonicalText(g, (p) => pieces.push(p));
  return pieces.join('');
}

/** The entries of one map by byte key. */
function byKey(list: ReadonlyArray<readonly [Buffer, Buffer]>, keep?: (v: Buffer) => boolean): Map<string, readonly [Buffer, Buffer]> {
  const m = new Map<string, readonly [Buffer, Buffer]>();
  for (const e of list) if (keep === undefined || keep(e[1])) m.set(byteKey(e[0]), e);
  return m;
}

/** The entries of each config map, in the order firstDifference reports them. */
const MAP_LISTS = [['lb_listeners', 'listeners'], ['lb_groups', 'groups'], ['lb_src_routes', 'srcRoutes'], ['lb_maglev', 'maglev']] as const;

/** The first difference between two generations, in words, or null when they are byte-identical. */
export function firstDifference(actual: EncodedGeneration, expected: EncodedGeneration): string | null {
  if (!actual.settings.equals(expected.settings)) return `lb_settings holds ${hex(actual.settings)}, expected ${hex(expected.settings)}`;
  for (const [map, field] of MAP_LISTS) {
    const keep = map === 'lb_groups' ? groupPresent : undefined;
    const have = byKey(actual[field], keep);
    const want = sortKeyed(keyed(expected[field], keep));
    for (const e of want) {
      const got = have.get(e.id);
      if (got === undefined) return `${map} lacks key ${hex(e.k)}`;
      if (!got[1].equals(e.v)) return `${map}[${hex(e.k)}] differs from the desired value`;
      have.delete(e.id);
    }
    if (have.size > 0) {
      const first = [...have.keys()].sort()[0]!;
      return `${map} holds unexpected key ${hex(have.get(first)![0])}`;
    }
  }
  return null;
}

/**
 * The ops that make generation `gen` hold `desired` when it holds `current` now (both as read by
 * readGenerationRaw / made by encodeGeneration for that same generation). Order: settings, group
 * puts, Maglev table puts, source-route puts, listener puts, listener deletes, source-route
 * deletes, Maglev table deletes, group clears; keys in byte order within each. The pair form of
 * the apply's diffColumns (src/core/columns.ts), which it runs.
 */
export function diffGeneration(gen: number, current: EncodedGeneration, desired: EncodedGeneration): RawOp[] {
  return rawOpsOf(diffColumns(gen, canonicalColumns(columnsOf(current)), canonicalColumns(columnsOf(desired)), EMPTY_GROUP_VALUE));
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
