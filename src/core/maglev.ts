// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted: the lookup table the data
// plane indexes with the client-address hash for session persistence (lb_maglev; docs/runtime.md,
// "Session persistence"). Pure: compile writes what this builds.
//
// Table: M slots (M prime, M >> number of backends), each holding the index of a backend.
// Backend i has a permutation of the slots: offset_i = h1(id) mod M, skip_i = h2(id) mod (M-1) + 1,
// slot_j = (offset_i + j*skip_i) mod M. Backends take turns claiming their next free preferred
// slot until the table is full. Weighted: in round n a backend claims a slot only while
// claimed_i * maxWeight < n * weight_i, so it ends with ~ M * weight_i / sum(weight) slots.
//
// Identity is the backend id ("addr:port"), not its position: turns go in id order, so reordering
// the config moves nobody, and a backend keeps its preferences whatever else changes.
// Disruption: removing one of N equal backends reassigns its ~M/N slots plus a few others:
// at most 1/N + 1.5% of all slots at the default size for N <= 64 (test/unit/runtime/maglev.test.ts).

import { LbError } from './errors.js';

export interface MaglevBackend {
  /** Stable identity, e.g. "10.0.0.1:8080". Distinct within a table. */
  id: string;
  /** 0 (no slots) .. any positive integer. */
  weight: number;
}

/**
 * A prime about 256 x LB_MAX_TARGETS (64): 16 KiB per group as u8 indexes. Fewer slots per backend
 * raise the disruption above 1/N (measured at N = 64: M = 6553 -> +2.0%, 16381 -> +1.4%,
 * 65521 -> +0.5%).
 */
export const MAGLEV_DEFAULT_SIZE = 16381;
/** Largest table built (a prime; 64 KiB as u8). */
export const MAGLEV_MAX_SIZE = 65521;

/**
 * The table: slot -> index into `backends` (-1 for every slot when no backend has weight).
 * Throws LB_RUNTIME_MAGLEV_TABLE when `size` is not a prime in (backends, MAGLEV_MAX_SIZE].
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number = MAGLEV_DEFAULT_SIZE): Int32Array {
  if (!Number.isInteger(size) || size > MAGLEV_MAX_SIZE || size <= backends.length || !isPrime(size)) {
    throw new LbError('LB_RUNTIME_MAGLEV_TABLE',
      `a Maglev table needs a prime size above the number of backends (${backends.length}) and at most ${MAGLEV_MAX_SIZE}; got ${size}`, { size, backends: backends.length });
  }
  const ids = new Set<string>();
  for (const b of backends) {
    if (ids.has(b.id)) throw new LbError('LB_RUNTIME_MAGLEV_TABLE', `backend id ${JSON.stringify(b.id)} appears twice`, { id: b.id });
    ids.add(b.id);
  }
  const table = new Int32Array(size).fill(-1);
  const live = backends
    .map((b, index) => ({ index, id: b.id, weight: Number.isFinite(b.weight) && b.weight > 0 ? b.weight : 0 }))
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((b) => ({ ...b, offset: hash32(b.id, 0x5bd1e995) % size, skip: (hash32(b.id, 0x27d4eb2f) % (size - 1)) + 1, next: 0, claimed: 0 }));
  if (live.length === 0) return table;
  const maxWeight = Math.max(...live.map((b) => b.weight));
  let filled = 0;
  for (let round = 1; filled < size; round++) {
    for (const b of live) {
      if (b.claimed * maxWeight >= round * b.weight) continue;
      let slot = (b.offset + b.next * b.skip) % size;
      while (table[slot]! >= 0) {
        b.next++;
        slot = (b.offset + b.next * b.skip) % size;
      }
      table[slot] = b.index;
      b.next++;
      b.claimed++;
      if (++filled === size) break;
    }
  }
  return table;
}

/** The backend index a flow hash selects (-1: none). */
export function maglevLookup(table: Int32Array, hash: number): number {
  return table[(hash >>> 0) % table.length]!;
}

/** Share of slots whose backend (by id) differs between two tables of the same size. */
export function maglevDisruption(before: Int32Array, beforeBackends: readonly MaglevBackend[], after: Int32Array, afterBackends: readonly MaglevBackend[]): number {
  if (before.length !== after.length) throw new RangeError('tables of different sizes');
  let moved = 0;
  for (let i = 0; i < before.length; i++) {
    const a = before[i]! >= 0 ? beforeBackends[before[i]!]!.id : null;
    const b = after[i]! >= 0 ? afterBackends[after[i]!]!.id : null;
    if (a !== b) moved++;
  }
  return moved / before.length;
}

/** FNV-1a over the UTF-8 bytes, seeded, then the murmur3 finaliser (spreads the low bits for mod M). */
function hash32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const byte of Buffer.from(s, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}
