// sameJson (src/core/same-json.ts): the read-back's comparison of the decoded generation with the
// desired state. It must answer exactly what comparing the sorted-key JSON texts answers; its
// walk may only say "equal" where the texts are equal.
import { describe, expect, it } from 'vitest';
import { plainEqual, sameJson } from '../../../src/core/same-json.js';
import { stableJson } from '../../../src/apply/transaction.js';

class Box {
  constructor(readonly v: number) {}
}

const pairs: Array<[unknown, unknown]> = [
  [{ a: 1, b: [1, 2, { c: 'x' }] }, { b: [1, 2, { c: 'x' }], a: 1 }],
  [{ a: 1, b: undefined }, { a: 1 }],
  [{ a: 1, f: () => 1 }, { a: 1 }],
  [{ a: 1 }, { a: 1, b: null }],
  [{ a: [1, 2] }, { a: [2, 1] }],
  [{ a: [1, undefined] }, { a: [1, null] }],
  [{ a: Number.NaN }, { a: null }],
  [{ a: Number.NaN }, { a: Number.NaN }],
  [{ d: new Date(0) }, { d: new Date(1) }],
  [{ d: new Date(5) }, { d: new Date(5) }],
  [{ b: new Box(1) }, { b: new Box(2) }],
  [{ b: new Box(1) }, { b: { v: 1 } }],
  [{ a: '1' }, { a: 1 }],
  [{ a: { b: { c: [] } } }, { a: { b: { c: {} } } }],
  [[], {}],
  [{ a: 0 }, { a: -0 }],
];

describe('sameJson', () => {
  it('answers what comparing the sorted-key JSON answers, and its walk says equal only where the texts are equal', () => {
    for (const [a, b] of pairs) {
      const texts = stableJson(a) === stableJson(b);
      expect(sameJson(a, b, stableJson), `${stableJson(a)} vs ${stableJson(b)}`).toBe(texts);
      if (plainEqual(a, b)) expect(texts, `${stableJson(a)} vs ${stableJson(b)}`).toBe(true);
    }
  });

  it('walks plain data without the texts: a differing deep value is found, an equal copy is equal', () => {
    const make = (w: number): unknown => ({ listeners: Array.from({ length: 50 }, (_, i) => ({ proxy: `p${i}`, targets: [{ ip: `10.0.0.${i}`, weight: i === 7 ? w : 1 }] })) });
    expect(plainEqual(make(1), make(1))).toBe(true);
    expect(plainEqual(make(1), make(2))).toBe(false);
    expect(sameJson(make(1), make(2), stableJson)).toBe(false);
  });
});
