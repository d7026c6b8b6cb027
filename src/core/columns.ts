// A generation's map entries in columns: per map, every key in one contiguous buffer and every
// value in another, the layout the batch syscalls take. The apply works on these instead of one
// pair of small Buffers per entry (EncodedGeneration): at 100,000 entries the pairs, their sort
// keys and the ops and saved entries made from them cost more time (allocation, garbage
// collection) and memory than the map writes themselves (docs/benchmarks.md, section 4).
//
// The canonical order is the one src/core/ops.ts gives EncodedGeneration: keys in byte order, empty
// group slots left out. A test holds the two to each other (test/unit/apply/columns.test.ts).

import {
  LAYOUTS, LB_MAGLEV_SIZE, LB_MAX_GROUPS, encodeGroupInto, encodeListenerInto, encodeListenerKeyInto, encodeMaglevInto,
  encodeSettings, encodeSrcKeyFieldsInto, encodeU32, groupIndex, ipv4ToU32,
} from './abi.js';
import type { EncodedGeneration, GenerationConfig } from './generation.js';
import { digestColumn, digestHex, emptyDigest, groupPresent, type DigestState } from './generation-digest.js';
import type { ConfigMapName, RawOp } from './ops.js';

/** One map's entries: `count` keys of `keySize` bytes one after the other, and their values likewise. */
export interface Column {
  readonly keySize: number;
  readonly valueSize: number;
  readonly count: number;
  readonly keys: Buffer;
  readonly values: Buffer;
  /**
   * lb_groups only: every value is zero past the words its count can use (encodeGroupInto writes
   * into zeroed memory). Set by the encoder and kept by gather; never by a read of a map, whose
   * slots may hold anything. The digest then hashes a group's used words without first checking
   * that the other ~250 are zero (2.5 million words at 10,000 groups).
   */
  readonly zeroTails?: boolean;
}

/** A generation in columns (the same content as an EncodedGeneration). */
export interface Columns {
  settings: Buffer;
  listeners: Column;
  groups: Column;
  srcRoutes: Column;
  maglev: Column;
}

type ListName = 'listeners' | 'groups' | 'srcRoutes' | 'maglev';

/** Key and value sizes of each list. */
export const SHAPES: Readonly<Record<ListName, { keySize: number; valueSize: number }>> = {
  listeners: { keySize: LAYOUTS.lb_listener_key.size, valueSize: LAYOUTS.lb_listener.size },
  groups: { keySize: 4, valueSize: LAYOUTS.lb_group.size },
  srcRoutes: { keySize: LAYOUTS.lb_src_key.size, valueSize: 4 },
  maglev: { keySize: 4, valueSize: LB_MAGLEV_SIZE },
};

function column(list: ListName, count: number, zeroValues = false): Column {
  const { keySize, valueSize } = SHAPES[list];
  return {
    keySize, valueSize, count,
    keys: Buffer.allocUnsafe(keySize * count),
    values: zeroValues ? Buffer.alloc(valueSize * count) : Buffer.allocUnsafe(valueSize * count),
  };
}

/** Encodes a generation straight into columns (what encodeGeneration does, without a Buffer per key and value). */
export function encodeColumns(gen: number, cfg: GenerationConfig): Columns {
  return encodeColumnsIn(gen, cfg, undefined);
}

/** canonicalColumns(encodeColumns(gen, cfg)), without moving group values (1 KiB each) after encoding them. */
export function encodeCanonicalColumns(gen: number, cfg: GenerationConfig): Columns {
  return canonicalColumns(encodeColumnsIn(gen, cfg, groupKeyOrder(gen, cfg.groups)));
}

/**
 * The indexes of `groups` in the byte order of their lb_groups keys (little-endian slot indexes:
 * slot 256 sorts before slot 1), so that they can be encoded where the canonical order puts them:
 * sorting them afterwards copies every value, 10 MB for 10,000 groups, one native copy each.
 * A typed-array sort of (byte-swapped key, index) packed in a double. Null when there are too
 * many for the packing (canonicalColumns then sorts what it is given, as for any input).
 */
function groupKeyOrder(gen: number, groups: GenerationConfig['groups']): Uint32Array | null {
  const n = groups.length;
  if (n >= 1 << 20) return null;
  const packed = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = groupIndex(gen, groups[i]!.id);
    const swapped = (((k & 0xff) << 24) | ((k & 0xff00) << 8) | ((k >>> 8) & 0xff00) | (k >>> 24)) >>> 0;
    packed[i] = swapped * 1048576 + i;
  }
  packed.sort();
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = packed[i]! % 1048576;
  return order;
}

function encodeColumnsIn(gen: number, cfg: GenerationConfig, groupOrder: Uint32Array | null | undefined): Columns {
  // Plain loops: this runs once per entry of the configuration (100,000 at the scale goal).
  const listeners = column('listeners', cfg.listeners.length);
  encodeListenersInto(listeners, gen, cfg.listeners);
  // Group values are mostly unused target slots: written into zeroed memory, only the used ones.
  const groups: Column = { ...column('groups', cfg.groups.length, true), zeroTails: true };
  const groupKeys = groups.keys.byteOffset % 4 === 0 ? new Uint32Array(groups.keys.buffer, groups.keys.byteOffset, groups.count) : null;
  for (let i = 0; i < cfg.groups.length; i++) {
    const g = cfg.groups[groupOrder ? groupOrder[i]! : i]!;
    if (groupKeys !== null) groupKeys[i] = groupIndex(gen, g.id); // little-endian hosts (abi.ts)
    else groups.keys.writeUInt32LE(groupIndex(gen, g.id), i * 4);
    encodeGroupInto(groups.values, i * groups.valueSize, g.group);
  }
  const srcRoutes = column('srcRoutes', cfg.srcRoutes.length);
  encodeRoutesInto(srcRoutes, gen, cfg.srcRoutes);
  const tables = cfg.maglev ?? [];
  const maglev = column('maglev', tables.length);
  tables.forEach((m, i) => {
    maglev.keys.writeUInt32LE(groupIndex(gen, m.group), i * 4);
    encodeMaglevInto(maglev.values, i * maglev.valueSize, m.table);
  });
  return { settings: encodeSettings(cfg.settings), listeners, groups, srcRoutes, maglev };
}

/**
 * The listeners into their column (encodeListenerKeyInto's and encodeListenerInto's bytes) through
 * 32-bit views, as encodeRoutesInto does routes: Node's Buffer.write* are JavaScript, nine calls a
 * listener, run interpreted while the apply is cold (10,000 listeners cost ~15 ms that way). A
 * listener the checks refuse goes to those encoders, which throw its error.
 */
function encodeListenersInto(c: Column, gen: number, list: GenerationConfig['listeners']): void {
  const kw = c.keys.byteOffset % 4 === 0 ? new Uint32Array(c.keys.buffer, c.keys.byteOffset, 3 * list.length) : null;
  const vw = c.values.byteOffset % 4 === 0 ? new Uint32Array(c.values.buffer, c.values.byteOffset, 4 * list.length) : null;
  const genOk = gen === 0 || gen === 1;
  for (let i = 0; i < list.length; i++) {
    const { key: k, value: v } = list[i]!;
    const { ifindex, port, proto } = k;
    const { listenerId: id, defaultGroup: group, flags } = v;
    if (kw === null || vw === null || !genOk || (ifindex >>> 0) !== ifindex || (port & 0xffff) !== port || (proto & 0xff) !== proto
      || (id >>> 0) !== id || id > 0x7fffffff || (group >>> 0) !== group || group >= LB_MAX_GROUPS || (flags >>> 0) !== flags) {
      encodeListenerKeyInto(c.keys, i * 12, { ifindex, vip: k.vip, port, proto, gen });
      encodeListenerInto(c.values, i * 16, v);
      continue;
    }
    // Little-endian words (abi.ts: x86-64 and arm64 hosts): ifindex; the VIP big-endian (a byte
    // swap); port big-endian in bytes 8-9, proto in 10, gen in 11.
    const vip = ipv4ToU32(k.vip);
    kw[3 * i] = ifindex;
    kw[3 * i + 1] = ((vip >>> 24) | ((vip >>> 8) & 0xff00) | ((vip << 8) & 0xff0000) | (vip << 24)) >>> 0;
    kw[3 * i + 2] = ((port >>> 8) | ((port & 0xff) << 8) | (proto << 16) | (gen << 24)) >>> 0;
    vw[4 * i] = id;
    vw[4 * i + 1] = group;
    vw[4 * i + 2] = flags;
    vw[4 * i + 3] = 0;
  }
}

/**
 * The source routes into their column (encodeSrcKeyFieldsInto's bytes, and the group): through
 * 32-bit views when the column's buffers allow them. Routes are most of a large generation
 * (80,000 of 100,000 in the benchmark), encoded once per apply mostly before V8 has optimized
 * anything, where three Buffer writes per route (each a call with its own checks) cost more than
 * the stores. A route the checks refuse goes to encodeSrcKeyFieldsInto, which throws its error.
 */
function encodeRoutesInto(c: Column, gen: number, routes: GenerationConfig['srcRoutes']): void {
  const kw = c.keys.byteOffset % 4 === 0 ? new Uint32Array(c.keys.buffer, c.keys.byteOffset, 3 * routes.length) : null;
  const vw = c.values.byteOffset % 4 === 0 ? new Uint32Array(c.values.buffer, c.values.byteOffset, routes.length) : null;
  const genOk = gen === 0 || gen === 1;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const { prefixLen: pl, listenerId: id } = r;
    if (kw === null || vw === null || !genOk || (pl >>> 0) !== pl || pl > 32 || (id >>> 0) !== id || id > 0x7fffffff) {
      encodeSrcKeyFieldsInto(c.keys, i * 12, gen, id, r.addr, pl);
      c.values.writeUInt32LE(r.group >>> 0, i * 4);
      continue;
    }
    // As encodeSrcKeyFieldsInto: prefix length + 32, the scope (gen in the top bit), the address
    // with the bits past the prefix cleared, big-endian (a byte swap through the little-endian view).
    const addr = (ipv4ToU32(r.addr) & (pl === 0 ? 0 : (0xffffffff << (32 - pl)))) >>> 0;
    kw[3 * i] = 32 + pl;
    kw[3 * i + 1] = ((gen << 31) | id) >>> 0;
    kw[3 * i + 2] = ((addr >>> 24) | ((addr >>> 8) & 0xff00) | ((addr << 8) & 0xff0000) | (addr << 24)) >>> 0;
    vw[i] = r.group >>> 0;
  }
}

/** Copies pairs (as read from a map) into a column. */
export function columnOf(list: ListName, pairs: ReadonlyArray<readonly [Buffer, Buffer]>): Column {
  const c = column(list, pairs.length);
  pairs.forEach(([k, v], i) => {
    if (k.length !== c.keySize || v.length < c.valueSize) throw new RangeError(`${list}: an entry of ${k.length}/${v.length} bytes, expected ${c.keySize}/${c.valueSize}`);
    k.copy(c.keys, i * c.keySize);
    v.copy(c.values, i * c.valueSize, 0, c.valueSize);
  });
  return c;
}

export function columnsOf(g: EncodedGeneration): Columns {
  return {
    settings: g.settings, listeners: columnOf('listeners', g.listeners), groups: columnOf('groups', g.groups),
    srcRoutes: columnOf('srcRoutes', g.srcRoutes), maglev: columnOf('maglev', g.maglev),
  };
}

/** The entries as pairs of views into the column (no copy): for the code that takes pairs. */
export function pairsOf(c: Column): Array<[Buffer, Buffer]> {
  const out = new Array<[Buffer, Buffer]>(c.count);
  for (let i = 0; i < c.count; i++) {
    out[i] = [c.keys.subarray(i * c.keySize, (i + 1) * c.keySize), c.values.subarray(i * c.valueSize, (i + 1) * c.valueSize)];
  }
  return out;
}

export function encodedOf(c: Columns): EncodedGeneration {
  return { settings: c.settings, listeners: pairsOf(c.listeners), groups: pairsOf(c.groups), srcRoutes: pairsOf(c.srcRoutes), maglev: pairsOf(c.maglev) };
}

/** Copies n bytes; short runs byte by byte (a native call costs more than copying a 12-byte key). */
function copyBytes(src: Buffer, from: number, dst: Buffer, to: number, n: number): void {
  if (n > 32) {
    src.copy(dst, to, from, from + n);
    return;
  }
  for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
}

/** -1, 0 or 1: key i of a against key j of b, in byte order. */
export function compareKeys(a: Column, i: number, b: Column, j: number): number {
  const n = a.keySize;
  return compareBytes(a.keys, i * n, b.keys, j * n, n);
}

/**
 * -1, 0 or 1: the n bytes of a at ao against those of b at bo, in byte order. The loops over
 * 10,000 to 100,000 entries call this with the buffers taken out of their columns once: a column
 * comes in several object shapes (Column, OpRun, ...), and reading its fields per byte from a
 * function that sees them all is slow (polymorphic loads), more so while the apply is cold.
 */
export function compareBytes(a: Buffer, ao: number, b: Buffer, bo: number, n: number): number {
  for (let k = 0; k < n; k++) {
    const d = a[ao + k]! - b[bo + k]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Whether value i of a equals value j of b. */
export function sameValue(a: Column, i: number, b: Column, j: number): boolean {
  const n = a.valueSize;
  return sameBytes(a.values, i * n, b.values, j * n, n);
}

/** Whether the n bytes of a at ao equal those of b at bo (long runs by one native compare). */
export function sameBytes(a: Buffer, ao: number, b: Buffer, bo: number, n: number): boolean {
  if (n > 32) return a.compare(b, bo, bo + n, ao, ao + n) === 0;
  for (let k = 0; k < n; k++) if (a[ao + k] !== b[bo + k]) return false;
  return true;
}

/**
 * The column's entries at `order`, copied in that order. `key`, when given, writes the key of
 * entry j instead of copying it (an array read has no key column: its keys are the slot indexes).
 */
export function gather(c: Column, order: ArrayLike<number>, key?: (j: number, out: Buffer, at: number) => void): Column {
  const n = order.length;
  const out: Column = {
    keySize: c.keySize, valueSize: c.valueSize, count: n, keys: Buffer.allocUnsafe(n * c.keySize), values: Buffer.allocUnsafe(n * c.valueSize),
    ...(c.zeroTails === true ? { zeroTails: true } : {}),
  };
  if (key === undefined && gatherWords(c, order, out)) return out;
  for (let i = 0; i < n; i++) {
    const j = order[i]!;
    if (key !== undefined) key(j, out.keys, i * c.keySize);
    else copyBytes(c.keys, j * c.keySize, out.keys, i * c.keySize, c.keySize);
    copyBytes(c.values, j * c.valueSize, out.values, i * c.valueSize, c.valueSize);
  }
  return out;
}

/** A 32-bit view of b when its bytes are whole aligned words; null otherwise. */
function words(b: Buffer): Int32Array | null {
  return b.byteOffset % 4 === 0 && b.length % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, b.length >> 2) : null;
}

/**
 * gather of small entries (listeners, routes: 12-byte keys, values of 4 or 12 bytes) a word at a
 * time through 32-bit views, when every buffer allows them: a quarter of the byte loop's steps.
 * False (nothing done) otherwise.
 */
function gatherWords(c: Column, order: ArrayLike<number>, out: Column): boolean {
  if (c.keySize % 4 !== 0 || c.valueSize % 4 !== 0 || c.keySize > 32 || c.valueSize > 32) return false;
  const [ks, vs, kd, vd] = [words(c.keys), words(c.values), words(out.keys), words(out.values)];
  if (ks === null || vs === null || kd === null || vd === null) return false;
  const kw = c.keySize >> 2;
  const vw = c.valueSize >> 2;
  for (let i = 0; i < order.length; i++) {
    const j = order[i]!;
    for (let w = 0; w < kw; w++) kd[i * kw + w] = ks[j * kw + w]!;
    for (let w = 0; w < vw; w++) vd[i * vw + w] = vs[j * vw + w]!;
  }
  return true;
}

/**
 * The indexes of the entries to keep, in key byte order (stable: equal keys keep their order). Only
 * the key bytes that vary order them (the gen bit, prefix lengths, high bytes of slot indexes are
 * shared): one native sort of packed numbers when those bytes and the index fit in 64 bits
 * (packedOrder), else an LSD radix sort, one pass per varying byte; a column already in order is
 * only checked.
 */
export function sortedOrder(c: Column, keep?: (values: Buffer, offset: number) => boolean): Uint32Array {
  let idx = new Uint32Array(c.count);
  let n = 0;
  const vw = keep === groupPresent && c.valueSize % 4 === 0 && c.values.byteOffset % 4 === 0 ? new Uint32Array(c.values.buffer, c.values.byteOffset, (c.count * c.valueSize) >> 2) : null;
  if (vw !== null) {
    // groupPresent inline: the count word of each value (no call a group while cold).
    const stride = c.valueSize >> 2;
    for (let i = 0; i < c.count; i++) if (vw[i * stride] !== 0) idx[n++] = i;
  } else {
    for (let i = 0; i < c.count; i++) if (keep === undefined || keep(c.values, i * c.valueSize)) idx[n++] = i;
  }
  idx = idx.subarray(0, n);
  let sorted = true;
  const { keys: k, keySize: ks } = c; // out of the column once (compareBytes says why)
  for (let i = 1; i < n && sorted; i++) sorted = compareBytes(k, idx[i - 1]! * ks, k, idx[i]! * ks, ks) <= 0;
  if (sorted) return idx;
  // Only the key bytes where the keys differ order them (the gen bit, prefix lengths, high bytes
  // of slot indexes are shared): found by one pass of 32-bit XORs against the first key.
  const varying = varyingBytes(c, idx);
  const packed = packedOrder(c, idx, varying);
  if (packed !== null) return packed;
  // LSD radix, one pass per varying key byte, its counts taken in one pass over the keys first
  // (a pass's counts do not depend on the order earlier passes left).
  const { keys, keySize } = c;
  const counts = new Uint32Array(keySize * 256);
  for (let i = 0; i < n; i++) {
    const o = idx[i]! * keySize;
    for (const p of varying) counts[p * 256 + keys[o + p]!]!++;
  }
  let tmp = new Uint32Array(n);
  const start = new Uint32Array(256);
  for (let v = varying.length - 1; v >= 0; v--) {
    const p = varying[v]!;
    const base = p * 256;
    let sum = 0;
    for (let b = 0; b < 256; b++) {
      start[b] = sum;
      sum += counts[base + b]!;
    }
    for (let i = 0; i < n; i++) {
      const e = idx[i]!;
      tmp[start[keys[e * keySize + p]!]!++] = e;
    }
    [idx, tmp] = [tmp, idx];
  }
  return idx;
}

/** The key positions (ascending) where some key of `idx` differs from the first one. */
function varyingBytes(c: Column, idx: Uint32Array): number[] {
  const { keys, keySize } = c;
  const n = idx.length;
  const diff = new Uint8Array(keySize);
  if (keySize % 4 === 0 && keys.byteOffset % 4 === 0) {
    const kw = keySize >> 2;
    const w = new Int32Array(keys.buffer, keys.byteOffset, (c.count * keySize) >> 2);
    const acc = new Int32Array(kw);
    const first = idx[0]! * kw;
    for (let i = 1; i < n; i++) {
      const o = idx[i]! * kw;
      for (let k = 0; k < kw; k++) acc[k]! |= w[o + k]! ^ w[first + k]!;
    }
    for (let p = 0; p < keySize; p++) diff[p] = (acc[p >> 2]! >>> (8 * (p & 3))) & 255; // little-endian words
  } else {
    const first = idx[0]! * keySize;
    for (let i = 1; i < n; i++) {
      const o = idx[i]! * keySize;
      for (let p = 0; p < keySize; p++) diff[p]! |= keys[o + p]! ^ keys[first + p]!;
    }
  }
  const out: number[] = [];
  for (let p = 0; p < keySize; p++) if (diff[p] !== 0) out.push(p);
  return out;
}

/**
 * sortedOrder's order by one native sort, when the bytes where keys differ and the index fit in 64
 * bits together: each entry becomes a 64-bit number, its varying key bytes (most significant
 * first) above its index (which keeps equal keys in their order), and BigUint64Array.sort orders
 * them in C++. The radix passes are loops over every entry per varying byte that run while the
 * apply is cold: 80,000 routes differ in 5 bytes (a listener id's two, an address's three), ~2x
 * the time of the fill and the sort. Null when they do not fit (the radix sort does it then).
 * `varying`: the key positions where the keys of `idx` differ, ascending.
 */
function packedOrder(c: Column, idx: Uint32Array, varying: readonly number[]): Uint32Array | null {
  const n = idx.length;
  const { keys, keySize } = c;
  const bits = 32 - Math.clz32(n - 1);
  const m = varying.length;
  if (n < 2 || n >= 1 << 24 || 8 * m + bits > 64) return null;
  const packed = new BigUint64Array(n);
  const halves = new Uint32Array(packed.buffer); // little-endian: entry j is halves[2j] + halves[2j + 1] * 2^32
  for (let j = 0; j < n; j++) {
    const o = idx[j]! * keySize;
    let hi = 0;
    let lo = 0;
    for (let q = 0; q < m; q++) {
      const byte = keys[o + varying[q]!]!;
      if (q < 4) hi |= byte << (24 - 8 * q);
      else lo |= byte << (56 - 8 * q);
    }
    halves[2 * j] = (lo | j) >>> 0;
    halves[2 * j + 1] = hi >>> 0;
  }
  packed.sort();
  const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  const out = new Uint32Array(n);
  for (let j = 0; j < n; j++) out[j] = idx[halves[2 * j]! & mask]!;
  return out;
}

/** A group slot holds a group (count > 0); an empty slot reads like an absent group (generation-digest.ts). */
const groupPresentAt = groupPresent;

/** The column in canonical order: sorted by key bytes (and, for lb_groups, without empty slots). */
export function canonicalColumn(list: ListName, c: Column): Column {
  const order = sortedOrder(c, list === 'groups' ? groupPresentAt : undefined);
  if (isIdentity(order, c.count)) return c;
  return gather(c, order);
}

export function canonicalColumns(c: Columns): Columns {
  return {
    settings: c.settings, listeners: canonicalColumn('listeners', c.listeners), groups: canonicalColumn('groups', c.groups),
    srcRoutes: canonicalColumn('srcRoutes', c.srcRoutes), maglev: canonicalColumn('maglev', c.maglev),
  };
}

/** The order-independent digest of the columns' entries (src/core/generation-digest.ts). */
export function columnsDigestState(c: Columns): DigestState {
  const d = emptyDigest();
  digestColumn(d, 'listeners', c.listeners);
  digestColumn(d, 'groups', c.groups, groupPresentAt);
  digestColumn(d, 'srcRoutes', c.srcRoutes);
  digestColumn(d, 'maglev', c.maglev);
  return d;
}

/** The generation's digest (src/core/generation-digest.ts): any order, empty group slots left out. */
export function columnsDigest(c: Columns): string {
  return digestHex(columnsDigestState(c), c.settings);
}

/**
 * Consecutive raw operations of one map and kind, in columns. `prev[i]`: the index in the current
 * (canonical) column of the key of entry i, or -1 when it is absent there; for lb_settings, -1.
 * A delete's values are empty.
 */
export interface OpRun extends Column {
  readonly map: ConfigMapName;
  readonly kind: 'put' | 'delete';
  readonly prev: Int32Array;
}

/** All ops of the runs. */
export function opCount(runs: readonly OpRun[]): number {
  return runs.reduce((n, r) => n + r.count, 0);
}

/** The runs as RawOps (views into the runs, no copy): for logs, tests and the code that takes RawOps. */
export function rawOpsOf(runs: readonly OpRun[]): RawOp[] {
  const out: RawOp[] = [];
  for (const r of runs) {
    for (let i = 0; i < r.count; i++) {
      const key = r.keys.subarray(i * r.keySize, (i + 1) * r.keySize);
      out.push(r.kind === 'put' ? { map: r.map, kind: 'put', key, value: r.values.subarray(i * r.valueSize, (i + 1) * r.valueSize) } : { map: r.map, kind: 'delete', key });
    }
  }
  return out;
}

/** Whether order is 0, 1, ..., count - 1. */
function isIdentity(order: Uint32Array, count: number): boolean {
  if (order.length !== count) return false;
  for (let i = 0; i < count; i++) if (order[i] !== i) return false;
  return true;
}

/** The run of `from`'s entries at `order` (null: all of them, in order). */
function run(map: ConfigMapName, kind: 'put' | 'delete', from: Column, order: Uint32Array | null, prev: Int32Array, values = true): OpRun {
  const body = order === null || isIdentity(order, from.count) ? from : gather(from, order);
  return { map, kind, keySize: body.keySize, valueSize: values ? body.valueSize : 0, count: body.count, keys: body.keys, values: values ? body.values : Buffer.alloc(0), prev };
}

/**
 * The ops that make generation `gen` hold `desired` when it holds `current` (both canonical, both
 * keyed for `gen`), in the order and with the content of diffGeneration (src/core/ops.ts): settings,
 * group puts, Maglev puts, route puts, listener puts, listener deletes, route deletes, Maglev
 * deletes, group clears (lb_groups is an array: a removed group's slot gets the empty group).
 */
export function diffColumns(gen: number, current: Columns, desired: Columns, emptyGroup: Buffer): OpRun[] {
  const runs: OpRun[] = [];
  if (!current.settings.equals(desired.settings)) {
    const settings: Column = { keySize: 4, valueSize: desired.settings.length, count: 1, keys: encodeU32(gen), values: desired.settings };
    runs.push({ ...settings, map: 'lb_settings', kind: 'put', prev: Int32Array.of(-1) });
  }
  // Merges of two sorted columns, their buffers and sizes taken out once (see compareBytes).
  const puts = (map: ConfigMapName, have: Column, want: Column): void => {
    const order: number[] = [];
    const prev: number[] = [];
    const { keySize: ks, valueSize: vs, keys: hk, values: hv, count: hn } = have;
    const { keys: wk, values: wv, count: wn } = want;
    let i = 0;
    if (hn === 0) {
      // Into an empty generation (a first apply): every entry is new, the run is the column itself.
      if (wn > 0) runs.push(run(map, 'put', want, null, new Int32Array(wn).fill(-1)));
      return;
    }
    for (let j = 0; j < wn; j++) {
      while (i < hn && compareBytes(hk, i * ks, wk, j * ks, ks) < 0) i++;
      const same = i < hn && compareBytes(hk, i * ks, wk, j * ks, ks) === 0;
      if (!same || !sameBytes(hv, i * vs, wv, j * vs, vs)) {
        order.push(j);
        prev.push(same ? i : -1);
      }
    }
    if (order.length > 0) runs.push(run(map, 'put', want, Uint32Array.from(order), Int32Array.from(prev)));
  };
  const removals = (map: ConfigMapName, have: Column, want: Column): void => {
    const order: number[] = [];
    const { keySize: ks, keys: hk, count: hn } = have;
    const { keys: wk, count: wn } = want;
    let j = 0;
    for (let i = 0; i < hn; i++) {
      while (j < wn && compareBytes(wk, j * ks, hk, i * ks, ks) < 0) j++;
      if (j < wn && compareBytes(wk, j * ks, hk, i * ks, ks) === 0) continue;
      order.push(i);
    }
    if (order.length === 0) return;
    const at = Uint32Array.from(order);
    if (map !== 'lb_groups') {
      runs.push(run(map, 'delete', have, at, Int32Array.from(order), false));
      return;
    }
    const keys = gather(have, at);
    const values = Buffer.allocUnsafe(order.length * emptyGroup.length);
    for (let k = 0; k < order.length; k++) emptyGroup.copy(values, k * emptyGroup.length);
    runs.push({ map, kind: 'put', keySize: 4, valueSize: emptyGroup.length, count: order.length, keys: keys.keys, values, prev: Int32Array.from(order) });
  };
  puts('lb_groups', current.groups, desired.groups);
  puts('lb_maglev', current.maglev, desired.maglev);
  puts('lb_src_routes', current.srcRoutes, desired.srcRoutes);
  puts('lb_listeners', current.listeners, desired.listeners);
  removals('lb_listeners', current.listeners, desired.listeners);
  removals('lb_src_routes', current.srcRoutes, desired.srcRoutes);
  removals('lb_maglev', current.maglev, desired.maglev);
  removals('lb_groups', current.groups, desired.groups);
  return runs;
}
