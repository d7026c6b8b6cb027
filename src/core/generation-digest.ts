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
import { LB_MAX_GROUPS } from './abi.js';

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

/** The word of 4 bytes at `o` (little-endian), the missing tail bytes of a buffer as zeros. */
function word(b: Buffer, o: number, end: number): number {
  if (o + 4 <= end) return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  let w = 0;
  for (let i = 0; o + i < end; i++) w |= b[o + i]! << (8 * i);
  return w >>> 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// The hash state of the entry being hashed, and its result: module variables, not a closure or an
// array per entry (this runs once per entry, 100,000 times a full apply).
let h1 = 0;
let h2 = 0;
let outA = 0;
let outB = 0;

function mix(w: number): void {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h1 ^= Math.imul(k, 0x1b873593);
  h1 = (h1 << 13) | (h1 >>> 19);
  h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
  let j = Math.imul(w, 0x239b961b);
  j = (j << 17) | (j >>> 15);
  h2 ^= Math.imul(j, 0xab0e9789);
  h2 = (h2 << 11) | (h2 >>> 21);
  h2 = (Math.imul(h2, 9) + 0x38b34ae5) | 0;
}

/**
 * Two 32-bit hashes (murmur3-style, different constants) of the key, made generation-neutral, and
 * the value, into outA and outB.
 */
function hashEntry(section: DigestSection, keys: Buffer, ko: number, keySize: number, values: Buffer, vo: number, valueSize: number): void {
  h1 = SEED[section];
  h2 = ~SEED[section];
  // The key without its generation: lb_listener_key.gen (byte 11), the top bit of lb_src_key's
  // scope (byte 7), the generation's half of the array index (group and Maglev slots).
  if (section === 'listeners') {
    mix(word(keys, ko, ko + 12));
    mix(word(keys, ko + 4, ko + 12));
    mix(word(keys, ko + 8, ko + 12) & 0x00ffffff);
  } else if (section === 'srcRoutes') {
    mix(word(keys, ko, ko + 12));
    mix(word(keys, ko + 4, ko + 12) & 0x7fffffff);
    mix(word(keys, ko + 8, ko + 12));
  } else {
    mix(word(keys, ko, ko + keySize) % LB_MAX_GROUPS);
  }
  const end = vo + valueSize;
  for (let o = vo; o < end; o += 4) mix(word(values, o, end));
  outA = fmix((h1 ^ (keySize + valueSize)) >>> 0);
  outB = fmix((h2 ^ valueSize) >>> 0);
}

/** Adds (sign 1) or removes (sign -1) entry i of a column's buffers to the digest. */
export function digestEntry(d: DigestState, section: DigestSection, sign: 1 | -1,
  c: { keySize: number; valueSize: number; keys: Buffer; values: Buffer }, i: number): void {
  hashEntry(section, c.keys, i * c.keySize, c.keySize, c.values, i * c.valueSize, c.valueSize);
  d.a = (d.a + sign * outA) >>> 0;
  d.b = (d.b + sign * outB) >>> 0;
  d.counts[section] += sign;
}

/** Adds every entry of a column; `keep` leaves entries out (lb_groups' empty slots). */
export function digestColumn(d: DigestState, section: DigestSection, c: { count: number; keySize: number; valueSize: number; keys: Buffer; values: Buffer },
  keep?: (values: Buffer, offset: number) => boolean): void {
  for (let i = 0; i < c.count; i++) {
    if (keep === undefined || keep(c.values, i * c.valueSize)) digestEntry(d, section, 1, c, i);
  }
}

/** The digest as hex: sha256 of a version tag, the settings bytes, the counts and the lane sums. */
export function digestHex(d: DigestState, settings: Buffer): string {
  const tail = Buffer.alloc(4 * (DIGEST_SECTIONS.length + 2));
  DIGEST_SECTIONS.forEach((s, i) => tail.writeUInt32LE(d.counts[s] >>> 0, 4 * i));
  tail.writeUInt32LE(d.a >>> 0, 4 * DIGEST_SECTIONS.length);
  tail.writeUInt32LE(d.b >>> 0, 4 * DIGEST_SECTIONS.length + 4);
  return createHash('sha256').update('lb-generation-v3\n').update(settings).update(tail).digest('hex');
}
