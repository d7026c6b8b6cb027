// The digest of a generation's content: what the apply journal records for the generation it
// writes, and what recovery compares with the generation it finds after a flip (docs/apply.md).
//
// It is order-independent: the sum, per 32-bit lane, of a 64-bit hash of each entry
// (generation-neutral key and value), with the entry counts and the settings bytes. So it does not
// need the entries sorted, and a delta apply computes the new generation's digest from the old one
// by subtracting the hashes of the entries it replaces and adding those it writes: O(change), where
// hashing the whole generation costs O(table) (docs/benchmarks.md, section 4).
//
// It detects torn, missing and extra entries (a changed entry changes the sum unless two 32-bit
// lanes collide together); it is not meant to resist a forger, who would need root on the host.

import { createHash } from 'node:crypto';
import { LAYOUTS, LB_MAX_GROUPS, LB_MAX_TARGETS } from './abi.js';

/** The sections of a generation, in the order of their counts in the digest. */
export const DIGEST_SECTIONS = ['listeners', 'groups', 'srcRoutes', 'maglev'] as const;
export type DigestSection = (typeof DIGEST_SECTIONS)[number];

/** A digest being built or updated: entry counts and lane sums per section. */
export interface DigestState {
  counts: Record<DigestSection, number>;
  /** Lane sums, mod 2^32. */
  a: number;
  b: number;
}

export function emptyDigest(): DigestState {
  return { counts: { listeners: 0, groups: 0, srcRoutes: 0, maglev: 0 }, a: 0, b: 0 };
}

export function copyDigest(d: DigestState): DigestState {
  return { counts: { ...d.counts }, a: d.a, b: d.b };
}

const SEED: Record<DigestSection, number> = { listeners: 0x6c697374, groups: 0x67727570, srcRoutes: 0x73726373, maglev: 0x6d61676c };

/** The word of 4 bytes at `o` (little-endian), bytes at or past `end` as zeros. */
function word(b: Buffer, o: number, end: number): number {
  if (o + 4 <= end) return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  let w = 0;
  for (let i = 0; o + i < end; i++) w |= b[o + i]! << (8 * i);
  return w >>> 0;
}

// A 32-bit view of the buffer being hashed (entries of a column share one buffer): made once per buffer.
let viewBuffer: ArrayBufferLike | undefined;
let view32: Int32Array | undefined;

/** The Int32Array view of b's memory, when entry offset `o` of b is 4-byte aligned in it; null otherwise. */
function wordsOf(b: Buffer, o: number): Int32Array | null {
  if ((b.byteOffset + o) % 4 !== 0) return null;
  if (viewBuffer !== b.buffer) {
    viewBuffer = b.buffer;
    view32 = new Int32Array(b.buffer, 0, b.buffer.byteLength >> 2);
  }
  return view32!;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// lb_group (bpf/include/lb_abi.h): count, total_weight, cum_weight[64], targets[64] of 3 words.
// A group of c targets can have non-zero words only in [0, 2 + c) and the first c targets.
const GROUP_SIZE = LAYOUTS.lb_group.size;
const CUM_WORD = LAYOUTS.lb_group.fields.cum_weight >> 2;
const TARGET_WORD = LAYOUTS.lb_group.fields.targets >> 2;
const TARGET_WORDS = LAYOUTS.lb_target.size >> 2;
const ZEROS = Buffer.alloc(GROUP_SIZE);
const GROUP_WORDS = GROUP_SIZE >> 2;

/**
 * Whether the group value at `vo` is zero past its first `count` cum_weight words and its first
 * `count` targets: two native compares per group, where a word-by-word loop visits 256 words
 * (10,000 groups are 2.5 million words, slow while V8 has not yet compiled the loop).
 */
function groupTailsZero(values: Buffer, vo: number, count: number): boolean {
  if (count > LB_MAX_TARGETS) return false;
  const cumEnd = vo + 4 * (CUM_WORD + count);
  const targets = vo + 4 * TARGET_WORD;
  const targetsEnd = targets + 4 * TARGET_WORDS * count;
  return values.compare(ZEROS, 0, targets - cumEnd, cumEnd, targets) === 0
    && values.compare(ZEROS, 0, vo + GROUP_SIZE - targetsEnd, targetsEnd, vo + GROUP_SIZE) === 0;
}

/**
 * groupTailsZero on a 32-bit view (the group's first word at `wo`): one loop over the words that
 * must be zero. Not Buffer.compare: that is Node JavaScript (argument checks) around the native
 * compare, two calls per group run interpreted while the apply is cold, ~3 us a group; this loop
 * is optimized (on-stack replacement) after its first few groups.
 */
function groupTailsZeroWords(v: Int32Array, wo: number, count: number): boolean {
  if (count > LB_MAX_TARGETS) return false;
  let acc = 0;
  for (let i = wo + CUM_WORD + count, end = wo + TARGET_WORD; i < end; i++) acc |= v[i]!;
  for (let i = wo + TARGET_WORD + TARGET_WORDS * count, end = wo + GROUP_WORDS; i < end; i++) acc |= v[i]!;
  return acc === 0;
}

/**
 * A group slot holds a group (count > 0); an empty slot reads like an absent group. Byte reads, not
 * readUInt32LE (Node JavaScript, run interpreted while an apply is cold). The digest and the sort
 * (src/core/columns.ts) recognize this very function as a `keep` and test the count word inline.
 */
export const groupPresent = (values: Buffer, offset: number): boolean => (values[offset]! | values[offset + 1]! | values[offset + 2]! | values[offset + 3]!) !== 0;

// The result of hashEntry (module variables: no array or object per entry, 100,000 a full apply).
let outA = 0;
let outB = 0;

/** One word into lane 1 (murmur3's round) and lane 2 (other constants); pure, so V8 inlines them. */
function m1(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}
function m2(h: number, w: number): number {
  let k = Math.imul(w, 0x239b961b);
  k = (k << 17) | (k >>> 15);
  h ^= Math.imul(k, 0xab0e9789);
  h = (h << 11) | (h >>> 21);
  return (Math.imul(h, 9) + 0x38b34ae5) | 0;
}

/**
 * Two 32-bit hashes of the key, made generation-neutral, and the value, into outA and outB. The
 * value goes in as its non-zero 32-bit words with their positions: the same content hashes the
 * same, and mostly-zero values (lb_group's unused target slots: 1 KiB a group) cost a read a word.
 */
function hashEntry(section: DigestSection, keys: Buffer, ko: number, keySize: number, values: Buffer, vo: number, valueSize: number,
  view: Int32Array | null, base: number): void {
  let h1 = SEED[section] | 0;
  let h2 = ~SEED[section];
  // The key without its generation: lb_listener_key.gen (byte 11), the top bit of lb_src_key's
  // scope (byte 7), the generation's half of the array index (group and Maglev slots).
  if (section === 'listeners' || section === 'srcRoutes') {
    const w0 = word(keys, ko, ko + 12) | 0;
    const w1 = (word(keys, ko + 4, ko + 12) & (section === 'listeners' ? 0xffffffff : 0x7fffffff)) | 0;
    const w2 = (word(keys, ko + 8, ko + 12) & (section === 'listeners' ? 0x00ffffff : 0xffffffff)) | 0;
    h1 = m1(m1(m1(h1, w0), w1), w2);
    h2 = m2(m2(m2(h2, w0), w1), w2);
  } else {
    const w = (word(keys, ko, ko + keySize) % LB_MAX_GROUPS) | 0;
    h1 = m1(h1, w);
    h2 = m2(h2, w);
  }
  const n = (valueSize + 3) >> 2;
  if (section === 'groups' && view !== null && valueSize === GROUP_SIZE && groupTailsZero(values, vo, view[base]! >>> 0)) {
    // Only the words a group's count can make non-zero; the others are zero (just checked), and
    // zero words add nothing: the same hash as the loop below, without visiting ~250 zero words.
    const c = view[base]! >>> 0;
    for (let i = 0; i < CUM_WORD + c; i++) {
      const w = view[base + i]!;
      if (w !== 0) {
        h1 = m1(m1(h1, i), w);
        h2 = m2(m2(h2, i), w);
      }
    }
    for (let i = TARGET_WORD; i < TARGET_WORD + TARGET_WORDS * c; i++) {
      const w = view[base + i]!;
      if (w !== 0) {
        h1 = m1(m1(h1, i), w);
        h2 = m2(m2(h2, i), w);
      }
    }
  } else {
    for (let i = 0; i < n; i++) {
      const w = view !== null ? view[base + i]! : word(values, vo + 4 * i, vo + valueSize) | 0;
      if (w !== 0) {
        h1 = m1(m1(h1, i), w);
        h2 = m2(m2(h2, i), w);
      }
    }
  }
  outA = fmix((h1 ^ (keySize + valueSize)) >>> 0);
  outB = fmix((h2 ^ valueSize) >>> 0);
}

/**
 * The 32-bit view of a column's values and the word index of its first value, when every value is
 * whole 4-byte-aligned words there (else null: read byte by byte). Buffer.buffer and byteOffset are
 * getters: read once per column, not per entry.
 */
function valueWords(c: { valueSize: number; values: Buffer }): { view: Int32Array | null; base: number } {
  const view = c.valueSize % 4 === 0 ? wordsOf(c.values, 0) : null;
  return { view, base: view === null ? 0 : c.values.byteOffset >> 2 };
}

/** Adds (sign 1) or removes (sign -1) entry i of a column's buffers to the digest. */
export function digestEntry(d: DigestState, section: DigestSection, sign: 1 | -1,
  c: { keySize: number; valueSize: number; keys: Buffer; values: Buffer }, i: number): void {
  const { view, base } = valueWords(c);
  hashEntry(section, c.keys, i * c.keySize, c.keySize, c.values, i * c.valueSize, c.valueSize, view, base + i * (c.valueSize >> 2));
  d.a = (d.a + sign * outA) >>> 0;
  d.b = (d.b + sign * outB) >>> 0;
  d.counts[section] += sign;
}

/** Adds every entry of a column; `keep` leaves entries out (lb_groups' empty slots). */
export function digestColumn(d: DigestState, section: DigestSection, c: { count: number; keySize: number; valueSize: number; keys: Buffer; values: Buffer; zeroTails?: boolean },
  keep?: (values: Buffer, offset: number) => boolean): void {
  const wide = section === 'listeners' || section === 'srcRoutes';
  if (wide && keep === undefined ? digestWideWords(d, section, c) : digestColumnWords(d, section, c, keep)) return;
  const { view, base } = valueWords(c);
  const { keys, keySize, values, valueSize } = c;
  const words = valueSize >> 2;
  let a = d.a;
  let b = d.b;
  let n = 0;
  for (let i = 0; i < c.count; i++) {
    if (keep !== undefined && !keep(values, i * valueSize)) continue;
    hashEntry(section, keys, i * keySize, keySize, values, i * valueSize, valueSize, view, base + i * words);
    a = (a + outA) >>> 0;
    b = (b + outB) >>> 0;
    n++;
  }
  d.a = a;
  d.b = b;
  d.counts[section] += n;
}

/** A 32-bit view of b exactly, when its bytes are whole aligned words; null otherwise. */
function alignedWords(b: Buffer): Int32Array | null {
  return b.byteOffset % 4 === 0 && b.length % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, b.length >> 2) : null;
}

/**
 * digestColumn when keys and values can be read as aligned 32-bit words (columns always can; a
 * view of odd bytes cannot): the same hashes as hashEntry, computed in one loop with the rounds
 * written out. An apply hashes 100,000 entries once, mostly before V8 has optimized anything, and
 * in the interpreter each call (word, m1, m2, fmix: ~17 per route) costs more than its arithmetic.
 * False (nothing done) when the words are not aligned.
 */
function digestColumnWords(d: DigestState, section: DigestSection, c: { count: number; keySize: number; valueSize: number; keys: Buffer; values: Buffer; zeroTails?: boolean },
  keep?: (values: Buffer, offset: number) => boolean): boolean {
  const { keySize, valueSize } = c;
  const wide = section === 'listeners' || section === 'srcRoutes';
  if (valueSize % 4 !== 0 || keySize !== (wide ? 12 : 4)) return false;
  const kv = alignedWords(c.keys);
  const vv = alignedWords(c.values);
  if (kv === null || vv === null) return false;
  // Generation-neutral key words (hashEntry): listeners drop byte 11, routes the scope's top bit.
  const mask1 = section === 'srcRoutes' ? 0x7fffffff : -1;
  const mask2 = section === 'listeners' ? 0x00ffffff : -1;
  const kw = keySize >> 2;
  const vw = valueSize >> 2;
  const seed1 = SEED[section] | 0;
  const seed2 = ~SEED[section];
  const groups = section === 'groups' && valueSize === GROUP_SIZE;
  let a = d.a;
  let b = d.b;
  let n = 0;
  const countWord = keep === groupPresent; // keep inline: the count word is the value's first
  for (let e = 0; e < c.count; e++) {
    const vo = e * vw;
    if (countWord ? vv[vo] === 0 : keep !== undefined && !keep(c.values, vo * 4)) continue;
    let h1 = seed1;
    let h2 = seed2;
    for (let k = 0; k < kw; k++) {
      let w = kv[e * kw + k]!;
      if (!wide) w = ((w >>> 0) % LB_MAX_GROUPS) | 0;
      else if (k === 1) w &= mask1;
      else if (k === 2) w &= mask2;
      let x = Math.imul(w, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(w, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
    }
    // Value words: all of them, or for a group whose unused slots are zero only the used ones
    // (words [skipFrom, skipTo) are zero: skipped; zero words add nothing anyway).
    let end = vw;
    let skipFrom = vw;
    let skipTo = vw;
    if (groups) {
      const count = vv[vo]! >>> 0;
      if (c.zeroTails === true ? count <= LB_MAX_TARGETS : groupTailsZeroWords(vv, vo, count)) {
        skipFrom = CUM_WORD + count;
        skipTo = TARGET_WORD;
        end = TARGET_WORD + TARGET_WORDS * count;
      }
    }
    for (let i = 0; i < end; i++) {
      if (i === skipFrom) i = skipTo;
      const w = vv[vo + i]!;
      if (w === 0) continue;
      // m1(m1(h1, i), w) and m2(m2(h2, i), w), written out.
      let x = Math.imul(i, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(w, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(i, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
      x = Math.imul(w, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
    }
    // fmix of both lanes (hashEntry's outA and outB).
    h1 = (h1 ^ (keySize + valueSize)) | 0;
    h1 ^= h1 >>> 16;
    h1 = Math.imul(h1, 0x85ebca6b);
    h1 ^= h1 >>> 13;
    h1 = Math.imul(h1, 0xc2b2ae35);
    h1 ^= h1 >>> 16;
    h2 = (h2 ^ valueSize) | 0;
    h2 ^= h2 >>> 16;
    h2 = Math.imul(h2, 0x85ebca6b);
    h2 ^= h2 >>> 13;
    h2 = Math.imul(h2, 0xc2b2ae35);
    h2 ^= h2 >>> 16;
    a = (a + (h1 >>> 0)) >>> 0;
    b = (b + (h2 >>> 0)) >>> 0;
    n++;
  }
  d.a = a;
  d.b = b;
  d.counts[section] += n;
  return true;
}

/**
 * digestColumnWords for the sections with 12-byte keys (listeners, source routes), all their value
 * words hashed: a function of its own, not a branch of that one. V8 optimizes a function for the
 * branches it has seen run; the sections follow one another in one apply, and each switch to a
 * section whose branches had not run yet threw the optimized code away (~10 ms a switch while the
 * apply is cold). The same hashes as hashEntry; false (nothing done) when the words are not aligned.
 */
function digestWideWords(d: DigestState, section: 'listeners' | 'srcRoutes', c: { count: number; keySize: number; valueSize: number; keys: Buffer; values: Buffer }): boolean {
  const { keySize, valueSize } = c;
  if (valueSize % 4 !== 0 || keySize !== 12) return false;
  const kv = alignedWords(c.keys);
  const vv = alignedWords(c.values);
  if (kv === null || vv === null) return false;
  // Generation-neutral key words (hashEntry): listeners drop byte 11, routes the scope's top bit.
  const mask1 = section === 'srcRoutes' ? 0x7fffffff : -1;
  const mask2 = section === 'listeners' ? 0x00ffffff : -1;
  const vw = valueSize >> 2;
  const seed1 = SEED[section] | 0;
  const seed2 = ~SEED[section];
  let a = d.a;
  let b = d.b;
  for (let e = 0; e < c.count; e++) {
    let h1 = seed1;
    let h2 = seed2;
    for (let k = 0; k < 3; k++) {
      const w = kv[e * 3 + k]! & (k === 1 ? mask1 : k === 2 ? mask2 : -1);
      let x = Math.imul(w, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(w, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
    }
    const vo = e * vw;
    for (let i = 0; i < vw; i++) {
      const w = vv[vo + i]!;
      if (w === 0) continue;
      // m1(m1(h1, i), w) and m2(m2(h2, i), w), written out.
      let x = Math.imul(i, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(w, 0xcc9e2d51);
      x = (x << 15) | (x >>> 17);
      h1 ^= Math.imul(x, 0x1b873593);
      h1 = (h1 << 13) | (h1 >>> 19);
      h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
      x = Math.imul(i, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
      x = Math.imul(w, 0x239b961b);
      x = (x << 17) | (x >>> 15);
      h2 ^= Math.imul(x, 0xab0e9789);
      h2 = (h2 << 11) | (h2 >>> 21);
      h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
    }
    // fmix of both lanes (hashEntry's outA and outB).
    h1 = (h1 ^ (keySize + valueSize)) | 0;
    h1 ^= h1 >>> 16;
    h1 = Math.imul(h1, 0x85ebca6b);
    h1 ^= h1 >>> 13;
    h1 = Math.imul(h1, 0xc2b2ae35);
    h1 ^= h1 >>> 16;
    h2 = (h2 ^ valueSize) | 0;
    h2 ^= h2 >>> 16;
    h2 = Math.imul(h2, 0x85ebca6b);
    h2 ^= h2 >>> 13;
    h2 = Math.imul(h2, 0xc2b2ae35);
    h2 ^= h2 >>> 16;
    a = (a + (h1 >>> 0)) >>> 0;
    b = (b + (h2 >>> 0)) >>> 0;
  }
  d.a = a;
  d.b = b;
  d.counts[section] += c.count;
  return true;
}

/** The digest as hex: sha256 of a version tag, the settings bytes, the counts and the lane sums. */
export function digestHex(d: DigestState, settings: Buffer): string {
  const tail = Buffer.alloc(4 * (DIGEST_SECTIONS.length + 2));
  DIGEST_SECTIONS.forEach((s, i) => tail.writeUInt32LE(d.counts[s] >>> 0, 4 * i));
  tail.writeUInt32LE(d.a >>> 0, 4 * DIGEST_SECTIONS.length);
  tail.writeUInt32LE(d.b >>> 0, 4 * DIGEST_SECTIONS.length + 4);
  return createHash('sha256').update('lb-generation-v3\n').update(settings).update(tail).digest('hex');
}
