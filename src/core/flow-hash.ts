// TypeScript mirror of bpf/lib/hash.h: the flow hash that picks a backend for a new flow and the
// weighted choice over a group's cumulative weights. Tests predict the data plane's choices with it.

const SEED = 0x9747b28c;

const rotl32 = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51) >>> 0;
  k = rotl32(k, 15);
  k = Math.imul(k, 0x1b873593) >>> 0;
  h = (h ^ k) >>> 0;
  h = rotl32(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) >>> 0;
}

function fmix(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface FlowTuple {
  saddr: number; // host-order value of the address (10.0.0.1 -> 0x0a000001)
  daddr: number;
  sport: number;
  dport: number;
  proto: number;
}

/** Murmur3-style hash of the 5-tuple; with `persist`, of the client address alone. */
export function flowHash(t: FlowTuple, persist = false): number {
  let h = mix(SEED, t.saddr >>> 0);
  if (!persist) {
    h = mix(h, t.daddr >>> 0);
    h = mix(h, ((t.sport << 16) | t.dport) >>> 0);
    h = mix(h, t.proto);
  }
  return fmix(h);
}

/** Index of the target a hash selects: the first i with cumWeights[i] > hash % total. -1 if total is 0. */
export function chooseTarget(hash: number, weights: readonly number[]): number {
  const total = weights.reduce((a, w) => a + w, 0);
  if (total === 0) return -1;
  const r = hash % total;
  let cum = 0;
  for (let i = 0; i < weights.length; i++) {
    cum += weights[i]!;
    if (cum > r) return i;
  }
  return -1;
}

const bswap32 = (x: number): number => (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
const bswap16 = (x: number): number => ((x & 0xff) << 8) | ((x >>> 8) & 0xff);

/**
 * The lb_dst_seen bit of a flow destination {VIP, port, proto} (dst_seen_word in bpf/lib/ingress.h).
 * The program hashes the address and port as they sit in the packet (network order) loaded into
 * host-order integers: on the little-endian hosts lb runs on, their byte-swapped values.
 */
export function dstSeenBit(daddr: number, dport: number, proto: number, bits: number): number {
  return fmix((bswap32(daddr) ^ (bswap16(dport) << 16) ^ proto) >>> 0) & (bits - 1);
}
