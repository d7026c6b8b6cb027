import { describe, expect, it } from 'vitest';
import { isLbError } from '../../../src/core/errors.js';
import { flowHash } from '../../../src/core/flow-hash.js';
import { ipv4ToU32 } from '../../../src/core/abi.js';
import {
  buildMaglevTable, isPrime, MAGLEV_DEFAULT_SIZE, MAGLEV_MAX_SIZE, maglevDisruption, maglevLookup, type MaglevBackend,
} from '../../../src/core/maglev.js';

const backends = (n: number, weight = 100): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ id: `10.0.${i >> 8}.${i & 255}:8080`, weight }));

function shares(table: Int32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const x of table) counts[x]! += 1;
  return counts.map((c) => c / table.length);
}

describe('Maglev table', () => {
  it('uses prime sizes only', () => {
    expect(isPrime(MAGLEV_DEFAULT_SIZE)).toBe(true);
    expect(isPrime(MAGLEV_MAX_SIZE)).toBe(true);
    for (const size of [1000, 4, MAGLEV_MAX_SIZE + 2, 3]) {
      let err: unknown;
      try { buildMaglevTable(backends(3), size); } catch (e) { err = e; }
      expect(isLbError(err, 'LB_RUNTIME_MAGLEV_TABLE')).toBe(true);
    }
  });

  it('fills every slot, balanced for equal weights (within one slot)', () => {
    const t = buildMaglevTable(backends(10), 1009);
    expect(t.every((x) => x >= 0 && x < 10)).toBe(true);
    const counts = shares(t, 10).map((s) => Math.round(s * 1009));
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  });

  it('shares slots in proportion to weight; weight 0 gets none; no weight at all: empty', () => {
    const t = buildMaglevTable([{ id: 'a', weight: 100 }, { id: 'b', weight: 200 }, { id: 'z', weight: 0 }, { id: 'c', weight: 300 }]);
    const s = shares(t, 4);
    expect(s[0]).toBeCloseTo(1 / 6, 2);
    expect(s[1]).toBeCloseTo(2 / 6, 2);
    expect(s[2]).toBe(0);
    expect(s[3]).toBeCloseTo(3 / 6, 2);
    expect(buildMaglevTable([{ id: 'a', weight: 0 }], 7).every((x) => x === -1)).toBe(true);
    expect(buildMaglevTable([], 7).every((x) => x === -1)).toBe(true);
  });

  it('is deterministic and independent of the backends order', () => {
    const bs = backends(8);
    const a = buildMaglevTable(bs, 1009);
    const reversed = [...bs].reverse();
    const b = buildMaglevTable(reversed, 1009);
    expect(maglevDisruption(a, bs, b, reversed)).toBe(0);
    expect(buildMaglevTable(bs, 1009)).toEqual(a);
  });

  it.each([3, 10, 64])('disruption bound: removing one of N=%i equal backends moves at most 1/N + 1.5%% of the slots', (n) => {
    const bs = backends(n);
    const full = buildMaglevTable(bs);
    for (let k = 0; k < n; k += Math.ceil(n / 8)) {
      const rest = bs.filter((_, i) => i !== k);
      const moved = maglevDisruption(full, bs, buildMaglevTable(rest), rest);
      expect(moved).toBeGreaterThanOrEqual(1 / n - 0.001); // the removed backend's own slots must move
      expect(moved).toBeLessThanOrEqual(1 / n + 0.015);
    }
  });

  it('a recovered backend gets its old slots back: the table depends on the backend set only', () => {
    const bs = backends(10);
    const rest = bs.filter((_, i) => i !== 4);
    const before = buildMaglevTable(bs);
    expect(maglevDisruption(before, bs, buildMaglevTable(rest), rest)).toBeGreaterThan(0);
    expect(maglevDisruption(before, bs, buildMaglevTable(bs), bs)).toBe(0);
  });

  it('a weight ramp moves only about the share the ramping backend gains', () => {
    const at = (w: number): MaglevBackend[] => backends(5).map((b, i) => (i === 3 ? { ...b, weight: w } : b));
    for (const [from, to] of [[25, 50], [50, 75], [75, 100], [0, 25]] as const) {
      const moved = maglevDisruption(buildMaglevTable(at(from)), at(from), buildMaglevTable(at(to)), at(to));
      const ideal = to / (400 + to) - from / (400 + from);
      expect(moved).toBeGreaterThanOrEqual(ideal - 0.001);
      expect(moved).toBeLessThanOrEqual(ideal + 0.015);
    }
  });

  it('persistence: 50 clients keep their backends while another backend of the group fails', () => {
    const bs = backends(5);
    const before = buildMaglevTable(bs);
    const failed = bs.map((b, i) => (i === 2 ? { ...b, weight: 0 } : b));
    const after = buildMaglevTable(failed);
    let kept = 0;
    let onFailed = 0;
    for (let c = 0; c < 50; c++) {
      const h = flowHash({ saddr: ipv4ToU32(`192.168.1.${c + 10}`), daddr: 0, sport: 0, dport: 0, proto: 6 }, true);
      const was = maglevLookup(before, h);
      const now = maglevLookup(after, h);
      expect(now).not.toBe(2);
      if (was === 2) onFailed++;
      else if (was === now) kept++;
    }
    expect(onFailed).toBeGreaterThan(0);
    // Maglev's epsilon is about 1% of slots here, so at most one of the ~40 others may move.
    expect(kept).toBeGreaterThanOrEqual(50 - onFailed - 1);
  });
});
