// Column operations of a delta apply (src/apply/delta.ts): sets of keys, lookups by binary search
// in a canonical column, and a column patched at a few keys. Each costs O(change · log table),
// except patchColumn, which copies the untouched runs of the table with one native copy each.

import { LB_MAX_GROUPS } from './abi.js';
import { compareKeys, gather, sortedOrder, type Column } from './columns.js';

export type ListName = 'listeners' | 'groups' | 'srcRoutes' | 'maglev';

/** A column of keys only (valueSize 0). */
export function keysOf(c: Column): Column {
  return { keySize: c.keySize, valueSize: 0, count: c.count, keys: c.keys, values: Buffer.alloc(0) };
}

export function emptyKeys(keySize: number): Column {
  return { keySize, valueSize: 0, count: 0, keys: Buffer.alloc(0), values: Buffer.alloc(0) };
}

/** The keys of `c`, sorted, each once. */
export function sortedUniqueKeys(c: Column): Column {
  const s = gather(keysOf(c), sortedOrder(c));
  let n = 0;
  for (let i = 0; i < s.count; i++) {
    if (n > 0 && compareKeys(s, n - 1, s, i) === 0) continue;
    if (n !== i) s.keys.copy(s.keys, n * s.keySize, i * s.keySize, (i + 1) * s.keySize);
    n++;
  }
  return { ...s, count: n, keys: s.keys.subarray(0, n * s.keySize) };
}

/** The union of two sorted sets of keys, sorted. */
export function unionKeys(a: Column, b: Column): Column {
  const keySize = a.keySize;
  const out = Buffer.allocUnsafe((a.count + b.count) * keySize);
  let i = 0;
  let j = 0;
  let n = 0;
  const take = (c: Column, at: number): void => {
    c.keys.copy(out, n * keySize, at * keySize, (at + 1) * keySize);
    n++;
  };
  while (i < a.count || j < b.count) {
    const d = i >= a.count ? 1 : j >= b.count ? -1 : compareKeys(a, i, b, j);
    if (d <= 0) take(a, i++);
    else take(b, j++);
    if (d === 0) j++;
  }
  return { keySize, valueSize: 0, count: n, keys: out.subarray(0, n * keySize), values: Buffer.alloc(0) };
}

/** The index of key j of `keys` in the sorted column `c`, searching from index `from` on; -1 when absent. */
export function findKey(c: Column, keys: Column, j: number, from = 0): number {
  let lo = from;
  let hi = c.count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const d = compareKeys(c, mid, keys, j);
    if (d === 0) return mid;
    if (d < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * The keys (and values, if any) of `c` set for generation `gen`: lb_listener_key.gen (byte 11), the
 * top bit of lb_src_key's scope (byte 7), the generation's half of a group or Maglev slot index.
 * The order of a sorted column is kept (every key's generation bits change alike).
 */
export function retarget(list: ListName, c: Column, gen: number): Column {
  const keys = Buffer.from(c.keys);
  for (let i = 0; i < c.count; i++) {
    const o = i * c.keySize;
    if (list === 'listeners') keys[o + 11] = gen;
    else if (list === 'srcRoutes') keys[o + 7] = (keys[o + 7]! & 0x7f) | (gen << 7);
    else keys.writeUInt32LE((keys.readUInt32LE(o) % LB_MAX_GROUPS) + gen * LB_MAX_GROUPS, o);
  }
  return { ...c, keys };
}

/** The entries of the sorted column `c` whose keys are in the sorted set `keys`, and their indexes in `c`. */
export function entriesAt(c: Column, keys: Column): { column: Column; index: Int32Array } {
  const at: number[] = [];
  let from = 0;
  for (let j = 0; j < keys.count; j++) {
    const i = findKey(c, keys, j, from);
    if (i < 0) continue;
    at.push(i);
    from = i + 1;
  }
  return { column: gather(c, at), index: Int32Array.from(at) };
}

/**
 * The sorted column `c` with every entry whose key is in `touched` replaced by the entry of
 * `replacement` with that key, or removed when `replacement` has none (`replacement`'s keys are a
 * sorted subset of `touched`).
 */
export function patchColumn(c: Column, touched: Column, replacement: Column): Column {
  const { keySize, valueSize } = c;
  // Where each touched key is in c (-1: absent there), found in one forward pass of binary searches.
  const where = new Int32Array(touched.count);
  let present = 0;
  let from = 0;
  for (let j = 0; j < touched.count; j++) {
    const i = findKey(c, touched, j, from);
    where[j] = i;
    if (i >= 0) {
      present++;
      from = i + 1;
    }
  }
  const count = c.count - present + replacement.count;
  const out: Column = { keySize, valueSize, count, keys: Buffer.allocUnsafe(count * keySize), values: Buffer.allocUnsafe(count * valueSize) };
  let n = 0; // entries written to out
  let i = 0; // next entry of c to copy
  let r = 0; // next entry of replacement
  const copyRun = (to: number): void => {
    if (to <= i) return;
    c.keys.copy(out.keys, n * keySize, i * keySize, to * keySize);
    c.values.copy(out.values, n * valueSize, i * valueSize, to * valueSize);
    n += to - i;
    i = to;
  };
  for (let j = 0; j < touched.count; j++) {
    const w = where[j]!;
    // The entries of c before touched key j are untouched ones (c is sorted, and so is touched).
    if (w >= 0) copyRun(w);
    else {
      let lo = i;
      let hi = c.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareKeys(c, mid, touched, j) < 0) lo = mid + 1;
        else hi = mid;
      }
      copyRun(lo);
    }
    if (r < replacement.count && compareKeys(replacement, r, touched, j) === 0) {
      replacement.keys.copy(out.keys, n * keySize, r * keySize, (r + 1) * keySize);
      replacement.values.copy(out.values, n * valueSize, r * valueSize, (r + 1) * valueSize);
      n++;
      r++;
    }
    if (w >= 0) i = w + 1;
  }
  copyRun(c.count);
  if (n !== count || r !== replacement.count) throw new RangeError(`patchColumn: ${n} entries written of ${count}, ${r} of ${replacement.count} replacements used`);
  return out;
}
