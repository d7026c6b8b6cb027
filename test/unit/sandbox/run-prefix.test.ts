// The namespace prefixes sandboxes get (src/sandbox/topology.ts): two built by one process never
// share one, even alive at once (the random three letters of before did, 1 in 17,576 per pair, and
// failed an examples run in CI), and a prefix a leftover namespace still uses is passed over.
import { describe, expect, it } from 'vitest';
import { choosePrefix, makeRunPrefix } from '../../../src/sandbox/topology.js';

describe('run prefixes', () => {
  it('are the family, the pid and three letters, and one process never repeats one', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 26 ** 3; i++) {
      const p = makeRunPrefix('lbx');
      expect(p.slice(0, `lbx${process.pid}`.length)).toBe(`lbx${process.pid}`);
      expect(p.slice(`lbx${process.pid}`.length)).toMatch(/^[a-z]{3}$/);
      seen.add(p);
    }
    expect(seen.size).toBe(26 ** 3);
  });

  it('pass over a prefix a leftover namespace uses, and refuse a fixed one in use or invalid', () => {
    const offered: string[] = [];
    // A leftover uses the first prefix offered: the next is taken.
    const chosen = choosePrefix(undefined, (p) => { offered.push(p); return p === offered[0]; });
    expect(offered.length).toBeGreaterThanOrEqual(2);
    expect(chosen).not.toBe(offered[0]);
    expect(() => choosePrefix('lbtfixed', () => true)).toThrow(/namespaces with prefix lbtfixed already exist/);
    expect(() => choosePrefix('1bad-prefix', () => false)).toThrow(/invalid prefix/);
    expect(choosePrefix('lbtfixed', () => false)).toBe('lbtfixed');
  });
});
