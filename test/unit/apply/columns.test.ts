// The apply's columns (src/core/columns.ts): the same entries as the pair form (encodeGeneration,
// canonicalBytes in src/core/ops.ts), a digest that differs exactly when the canonical bytes do, and the ops a plain
// model of the diff gives, on seeded random generations that have what the apply meets: routes of
// several prefix lengths, empty groups, Maglev tables, entries added, removed and changed.
import { describe, expect, it } from 'vitest';
import {
  canonicalColumns, columnsDigest, columnsOf, diffColumns, encodeCanonicalColumns, encodeColumns, encodedOf, opCount, rawOpsOf, sortedOrder,
} from '../../../src/core/columns.js';
import type { Column } from '../../../src/core/columns.js';
import { EMPTY_GROUP_VALUE, canonicalBytes, diffGeneration, type RawOp } from '../../../src/core/ops.js';
import { encodeGeneration, type EncodedGeneration, type GenerationConfig } from '../../../src/dataplane/index.js';
import { changed, randomGeneration } from '../../lib/random-generation.js';

const hex = (ops: RawOp[]): string[] => ops.map((o) => `${o.map} ${o.kind} ${o.key.toString('hex')} ${o.value?.toString('hex') ?? '-'}`);

/**
 * The diff's contract written the plain way, as the oracle: maps of hex keys, keys in byte order
 * (hex order is byte order), puts of what is new or different, deletes of what is gone (lb_groups:
 * the empty group written instead), empty group slots counting as absent, in the apply's order.
 */
function naiveDiff(gen: number, current: EncodedGeneration, desired: EncodedGeneration): string[] {
  const present = (list: Array<[Buffer, Buffer]>, groups: boolean): Map<string, string> =>
    new Map(list.filter(([, v]) => !groups || v.readUInt32LE(0) > 0).map(([k, v]) => [k.toString('hex'), v.toString('hex')]));
  const lists = { lb_groups: 'groups', lb_maglev: 'maglev', lb_src_routes: 'srcRoutes', lb_listeners: 'listeners' } as const;
  const sides = (map: keyof typeof lists): [Map<string, string>, Map<string, string>] =>
    [present(current[lists[map]], map === 'lb_groups'), present(desired[lists[map]], map === 'lb_groups')];
  const out: string[] = [];
  if (!current.settings.equals(desired.settings)) out.push(`lb_settings put ${Buffer.from([gen, 0, 0, 0]).toString('hex')} ${desired.settings.toString('hex')}`);
  for (const map of ['lb_groups', 'lb_maglev', 'lb_src_routes', 'lb_listeners'] as const) {
    const [have, want] = sides(map);
    for (const k of [...want.keys()].sort()) if (have.get(k) !== want.get(k)) out.push(`${map} put ${k} ${want.get(k)!}`);
  }
  for (const map of ['lb_listeners', 'lb_src_routes', 'lb_maglev', 'lb_groups'] as const) {
    const [have, want] = sides(map);
    for (const k of [...have.keys()].sort()) {
      if (want.has(k)) continue;
      out.push(map === 'lb_groups' ? `${map} put ${k} ${EMPTY_GROUP_VALUE.toString('hex')}` : `${map} delete ${k} -`);
    }
  }
  return out;
}

describe('columns: the same generation as the pairs', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`seed ${seed}: encodeColumns holds the entries encodeGeneration makes, and the digest is the same`, () => {
      const cfg = randomGeneration(seed, 60);
      for (const gen of [0, 1]) {
        const cols = encodeColumns(gen, cfg);
        const pairs = encodeGeneration(gen, cfg);
        const asPairs = encodedOf(cols);
        for (const list of ['listeners', 'groups', 'srcRoutes', 'maglev'] as const) {
          expect(asPairs[list].map(([k, v]) => k.toString('hex') + v.toString('hex')), list).toEqual(pairs[list].map(([k, v]) => k.toString('hex') + v.toString('hex')));
        }
        // The digest is generation-neutral and order-independent: the same from either generation, sorted or not.
        const ref = columnsDigest(encodeColumns(0, cfg));
        expect(columnsDigest(cols)).toBe(ref);
        expect(columnsDigest(canonicalColumns(cols))).toBe(ref);
        expect(columnsDigest(canonicalColumns(columnsOf(pairs)))).toBe(ref);
      }
    });

    it(`seed ${seed}: diffColumns gives exactly the ops the plain model gives, in its order (and diffGeneration, the pair form, the same)`, () => {
      const a = randomGeneration(seed, 60);
      const b = changed(a, seed);
      const empty: GenerationConfig = { ...a, listeners: [], groups: [], srcRoutes: [], maglev: [] };
      const pairs: Array<[GenerationConfig, GenerationConfig]> = [[a, b], [b, a], [a, a], [empty, a]];
      for (const [from, to] of pairs) {
        const want = naiveDiff(1, encodeGeneration(1, from), encodeGeneration(1, to));
        const runs = diffColumns(1, canonicalColumns(encodeColumns(1, from)), canonicalColumns(encodeColumns(1, to)), EMPTY_GROUP_VALUE);
        expect(hex(rawOpsOf(runs))).toEqual(want);
        expect(opCount(runs)).toBe(want.length);
        expect(hex(diffGeneration(1, encodeGeneration(1, from), encodeGeneration(1, to)))).toEqual(want);
      }
    });
  }

  it('the digest differs exactly where the canonical bytes do: every single-byte change of an entry, and changed generations', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const a = randomGeneration(seed, 30);
      const b = changed(a, seed);
      const [ea, eb] = [encodeGeneration(0, a), encodeGeneration(1, b)];
      expect(columnsDigest(columnsOf(ea)) === columnsDigest(columnsOf(eb)), `seed ${seed}`).toBe(canonicalBytes(ea).equals(canonicalBytes(eb)));
    }
    const cols = encodeColumns(1, randomGeneration(9, 20));
    const [refDigest, refBytes] = [columnsDigest(cols), canonicalBytes(encodedOf(cols))];
    let changes = 0;
    for (const list of ['listeners', 'srcRoutes', 'groups', 'maglev'] as const) {
      const c = cols[list];
      // Every value byte of the first and last entries, and the first byte of their keys (never the gen).
      const spots: Array<[Buffer, number]> = [];
      for (const i of [0, c.count - 1]) {
        for (let b = 0; b < c.valueSize; b += c.valueSize > 64 ? 61 : 1) spots.push([c.values, i * c.valueSize + b]);
        spots.push([c.keys, i * c.keySize]);
      }
      for (const [buf, at] of spots) {
        const was = buf[at]!;
        buf[at] = was ^ 0x01;
        const sameDigest = columnsDigest(cols) === refDigest;
        const sameBytes = canonicalBytes(encodedOf(cols)).equals(refBytes);
        buf[at] = was;
        expect(sameDigest, `${list} byte ${at} of ${buf === c.keys ? 'keys' : 'values'}`).toBe(sameBytes);
        if (!sameBytes) changes++;
      }
    }
    expect(changes).toBeGreaterThan(50);
  });

  it('encodeCanonicalColumns is canonicalColumns of encodeColumns, with more than 256 groups (byte order is not slot order) in any order', () => {
    const same = (a: Column, b: Column): void => {
      expect(a.count).toBe(b.count);
      expect(a.keys.equals(b.keys)).toBe(true);
      expect(a.values.equals(b.values)).toBe(true);
    };
    const big = randomGeneration(5, 40);
    const ids = Array.from({ length: 700 }, (_, i) => (i * 389) % 700); // every id once, out of order
    big.groups = ids.map((id) => ({ id, group: { targets: id % 7 === 0 ? [] : [{ addr: `10.0.${id >> 8}.${id & 255}`, port: 80, weight: 1 + (id % 5), targetId: id }] } }));
    for (const cfg of [randomGeneration(1, 60), randomGeneration(2, 60), big]) {
      for (const gen of [0, 1]) {
        const want = canonicalColumns(encodeColumns(gen, cfg));
        const got = encodeCanonicalColumns(gen, cfg);
        expect(got.settings.equals(want.settings)).toBe(true);
        for (const list of ['listeners', 'groups', 'srcRoutes', 'maglev'] as const) same(got[list], want[list]);
      }
    }
  });

  it('a group hashes the same whether only its used words are read (aligned, tails known zero or checked) or every word (unaligned), junk past its count included', () => {
    const encoded = encodeColumns(1, randomGeneration(11, 20));
    expect(encoded.groups.zeroTails).toBe(true); // the encoder's groups: their tails are not checked
    const { zeroTails: _known, ...read } = encoded.groups; // as a map read gives them: tails checked
    expect(columnsDigest(encoded)).toBe(columnsDigest({ ...encoded, groups: read }));
    // From here on, groups with junk written into them: not the encoder's any more.
    const cols = { ...encoded, groups: read };
    const unaligned = (b: Buffer): Buffer => {
      const out = Buffer.alloc(b.length + 1).subarray(1); // byteOffset 1: no 32-bit view, the word-by-word path
      b.copy(out);
      return out;
    };
    const both = (): [string, string] => [columnsDigest(cols), columnsDigest({ ...cols, groups: { ...cols.groups, values: unaligned(cols.groups.values) } })];
    const [fast, slow] = both();
    expect(fast).toBe(slow);
    const g = cols.groups;
    const at = g.valueSize - 3; // the last target slot's pad: zero in every encoded group of < 64 targets
    expect(g.values.readUInt32LE(0)).toBeLessThan(64);
    g.values[at] = 7;
    const [fastJunk, slowJunk] = both();
    expect(fastJunk).toBe(slowJunk);
    expect(fastJunk).not.toBe(fast);
  });

  it('a listener or route the encoders refuse is refused with their error, whatever path encodes the rest', () => {
    const cfg = randomGeneration(5, 10);
    const bad = (edit: (c: GenerationConfig) => void): GenerationConfig => {
      const c = structuredClone(cfg);
      edit(c);
      return c;
    };
    const cases: Array<(c: GenerationConfig) => void> = [
      (c) => { c.listeners[3]!.key.port = 70_000; },
      (c) => { c.listeners[3]!.key.port = 80.5; },
      (c) => { c.listeners[3]!.key.proto = 256; },
      (c) => { c.listeners[3]!.key.ifindex = -1; },
      (c) => { c.listeners[3]!.key.vip = '10.0.0'; },
      (c) => { c.listeners[3]!.value.listenerId = 2 ** 31; },
      (c) => { c.listeners[3]!.value.defaultGroup = 16384; },
      (c) => { c.listeners[3]!.value.flags = -1; },
      (c) => { c.srcRoutes[0]!.prefixLen = 33; },
    ];
    for (const edit of cases) {
      const g = bad(edit);
      let want: unknown;
      try {
        encodeGeneration(1, g);
      } catch (err) {
        want = err;
      }
      expect(want, String(edit)).toBeInstanceOf(Error);
      expect(() => encodeColumns(1, g), String(edit)).toThrow((want as Error).message);
    }
  });

  it('prev names the entry each op replaces or removes in the current generation', () => {
    const a = randomGeneration(7, 40);
    const b = changed(a, 7);
    const cur = canonicalColumns(encodeColumns(0, a));
    for (const run of diffColumns(0, cur, canonicalColumns(encodeColumns(0, b)), EMPTY_GROUP_VALUE)) {
      if (run.map === 'lb_settings') continue;
      const col = { lb_listeners: cur.listeners, lb_groups: cur.groups, lb_src_routes: cur.srcRoutes, lb_maglev: cur.maglev }[run.map];
      for (let i = 0; i < run.count; i++) {
        const key = run.keys.subarray(i * run.keySize, (i + 1) * run.keySize);
        const p = run.prev[i]!;
        if (p < 0) {
          for (let j = 0; j < col.count; j++) expect(col.keys.subarray(j * col.keySize, (j + 1) * col.keySize).equals(key)).toBe(false);
        } else {
          expect(col.keys.subarray(p * col.keySize, (p + 1) * col.keySize)).toEqual(key);
        }
      }
    }
  });

  it('sorts keys in byte order, stably, and keeps only what `keep` accepts', () => {
    const keys = Buffer.from([3, 1, 2, 1, 0, 9, 2, 1, 0, 0, 3, 1]); // 6 keys of 2 bytes: 0301 0201 0009 0201 0000 0301
    const values = Buffer.from([0, 1, 2, 3, 4, 5]);
    const c = { keySize: 2, valueSize: 1, count: 6, keys, values };
    expect([...sortedOrder(c)]).toEqual([4, 2, 1, 3, 0, 5]);
    expect([...sortedOrder(c, (v, off) => v[off]! % 2 === 1)]).toEqual([1, 3, 5]); // 0201 0201 0301: equal keys in their order
    const inOrder = { ...c, keys: Buffer.from([0, 1, 0, 2, 0, 2, 1, 0, 1, 1, 2, 0]) };
    expect([...sortedOrder(inOrder)]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('sorts as a stable sort by Buffer.compare does, keys that differ in few bytes (one native sort) or in many (radix passes)', () => {
    let seed = 99;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const naive = (c: Column, keep?: (v: Buffer, o: number) => boolean): number[] => Array.from({ length: c.count }, (_, i) => i)
      .filter((i) => keep === undefined || keep(c.values, i * c.valueSize))
      .sort((a, b) => c.keys.subarray(a * c.keySize, (a + 1) * c.keySize).compare(c.keys.subarray(b * c.keySize, (b + 1) * c.keySize)) || a - b);
    // varying: the key positions that take random bytes (the rest are 0x2a in every key).
    for (const [count, varying] of [[2000, [4, 5, 9, 10, 11]], [2000, [0, 3, 4, 5, 6, 7, 9, 10, 11]], [300, [11]], [70_000, [0, 4, 5, 8, 9, 10]]] as const) {
      const keys = Buffer.alloc(12 * count, 0x2a);
      for (let i = 0; i < count; i++) for (const p of varying) keys[12 * i + p] = rnd() & (count > 1000 ? 255 : 7); // few values: repeated keys
      const c: Column = { keySize: 12, valueSize: 1, count, keys, values: Buffer.from(Array.from({ length: count }, (_, i) => i & 1)) };
      expect([...sortedOrder(c)], `${count} keys varying at ${varying.join(',')}`).toEqual(naive(c));
      const odd = (v: Buffer, o: number): boolean => v[o] === 1;
      expect([...sortedOrder(c, odd)], `${count} keys varying at ${varying.join(',')}, odd ones`).toEqual(naive(c, odd));
    }
  });
});
