// The delta apply's planning (src/apply/delta.ts) against the full path: over a sequence of small
// changes applied to alternating generations, the delta's ops are exactly the ops of the full diff
// (same entries, same order), its digest is the digest of the whole desired generation, and the
// generation it leaves (copied or patched in place) is the desired one, entry for entry.
import { describe, expect, it } from 'vitest';
import { canonicalColumns, columnsDigest, columnsDigestState, diffColumns, encodeColumns, encodedOf, rawOpsOf, type Columns } from '../../../src/core/columns.js';
import { EMPTY_GROUP_VALUE, type RawOp } from '../../../src/core/ops.js';
import { configDelta } from '../../../src/core/config-delta.js';
import { differingKeys, planDelta, type AppliedState, type GenContent } from '../../../src/apply/delta.js';
import { changeReach } from '../../../src/apply/read-back-delta.js';
import { decodeGeneration as decodeLogical } from '../../../src/core/compile/decode.js';
import { listenerKey } from '../../../src/core/state.js';
import { decodeGeneration as decodeRaw, type GenerationConfig } from '../../../src/dataplane/index.js';
import { prng } from '../../lib/prng.js';
import { randomGeneration } from '../../lib/random-generation.js';

const hex = (ops: RawOp[]): string[] => ops.map((o) => `${o.map} ${o.kind} ${o.key.toString('hex')} ${o.value?.toString('hex') ?? '-'}`);
const entries = (c: Columns): string[] => {
  const e = encodedOf(c);
  return [e.settings.toString('hex'), ...(['listeners', 'groups', 'srcRoutes', 'maglev'] as const).flatMap((l) => e[l].map(([k, v]) => `${l} ${k.toString('hex')} ${v.toString('hex')}`))];
};
const content = (gen: number, cfg: GenerationConfig): GenContent => {
  const columns = canonicalColumns(encodeColumns(gen, cfg));
  return { columns, digest: columnsDigestState(columns) };
};

/** A small change: a few entries edited, one removed and one inserted in the middle of each list, sometimes the settings. */
function nudged(base: GenerationConfig, seed: number): GenerationConfig {
  const r = prng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const cfg = structuredClone(base);
  cfg.maglev = (base.maglev ?? []).map((m) => ({ ...m, table: Buffer.from(m.table) })); // structuredClone makes Uint8Arrays
  for (let k = 0; k < 3; k++) {
    const l = cfg.listeners[int(cfg.listeners.length)]!;
    l.value.flags ^= 1;
    const g = cfg.groups[int(cfg.groups.length)]!;
    g.group.targets = g.group.targets.length > 0 ? g.group.targets.map((t) => ({ ...t, weight: t.weight + 1 })) : [{ addr: '10.0.0.1', port: 80, weight: 1, targetId: 1 }];
    cfg.srcRoutes[int(cfg.srcRoutes.length)]!.group ^= 1;
  }
  const at = (n: number): number => 1 + int(Math.max(1, n - 2));
  const moved = cfg.listeners.splice(at(cfg.listeners.length), 1)[0]!;
  cfg.listeners.splice(at(cfg.listeners.length), 0, { ...moved, key: { ...moved.key, port: moved.key.port ^ 0x8000 } });
  const route = cfg.srcRoutes.splice(at(cfg.srcRoutes.length), 1)[0]!;
  cfg.srcRoutes.splice(at(cfg.srcRoutes.length), 0, { ...route, listenerId: route.listenerId + 50_000 });
  cfg.groups.splice(at(cfg.groups.length), 1); // its slot is cleared
  if (cfg.maglev!.length > 0) {
    const table = cfg.maglev![int(cfg.maglev!.length)]!.table;
    const i = int(100);
    table[i] = table[i]! ^ 1;
  }
  if (r() < 0.3) cfg.settings = { ...cfg.settings, tcpIdleSec: cfg.settings.tcpIdleSec + 1 };
  return cfg;
}

describe('delta apply planning', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: ten small changes in a row give the full path's ops, digest and generation`, () => {
      const seq = [randomGeneration(seed, 120)];
      for (let k = 1; k <= 11; k++) seq.push(nudged(seq[k - 1]!, seed * 100 + k));
      let s: AppliedState = { mapIds: '', activeGen: 1, serial: 1, config: seq[1], gens: [content(0, seq[0]!), content(1, seq[1]!)], differ: differingKeys(seq[0]!, seq[1]!) };
      for (let k = 2; k < seq.length; k++) {
        const target = 1 - s.activeGen;
        const inactive = s.gens[target]!.columns;
        const want = canonicalColumns(encodeColumns(target, seq[k]!));
        const full = rawOpsOf(diffColumns(target, inactive, want, EMPTY_GROUP_VALUE));
        const plan = planDelta(s, target, seq[k]!);
        expect(plan, `change ${k}`).not.toBeNull();
        expect(full.length, `change ${k} writes something`).toBeGreaterThan(0);
        expect(hex(rawOpsOf(diffColumns(target, plan!.current, plan!.want, EMPTY_GROUP_VALUE))), `change ${k}`).toEqual(hex(full));
        expect(plan!.desiredDigest, `change ${k}`).toBe(columnsDigest(want));
        // Every other change reads the whole desired generation before the commit (copies), the others patch in place.
        if (k % 2 === 0) expect(entries(plan!.desired), `change ${k}`).toEqual(entries(want));
        const written = plan!.commit();
        expect(entries(written), `change ${k}`).toEqual(entries(want));
        s = { ...s, activeGen: target, config: seq[k], differ: plan!.changed, gens: target === 0 ? [{ columns: written, digest: plan!.digest }, s.gens[1]] : [s.gens[0], { columns: written, digest: plan!.digest }] };
      }
    });
  }

  it('the read-back of a delta decodes every listener whose decoded form changed, and the groups and Maglev tables it wrote', () => {
    const env = { ifname: (i: number) => `if${i}`, proxyOf: () => null, interfaces: [] };
    const byKey = (cfg: GenerationConfig): Map<string, string> => new Map(decodeLogical(cfg, env).listeners.map((l) => [listenerKey(l), JSON.stringify(l)]));
    let checked = 0;
    for (const seed of [4, 5, 6]) {
      const seq = [randomGeneration(seed, 120)];
      for (let k = 1; k <= 6; k++) seq.push(nudged(seq[k - 1]!, seed * 100 + k));
      let s: AppliedState = { mapIds: '', activeGen: 1, serial: 1, config: seq[1], gens: [content(0, seq[0]!), content(1, seq[1]!)], differ: differingKeys(seq[0]!, seq[1]!) };
      for (let k = 2; k < seq.length; k++) {
        const target = 1 - s.activeGen;
        const plan = planDelta(s, target, seq[k]!)!;
        const reach = changeReach(plan.desired, [plan.current, plan.want]);
        const part = decodeRaw(target, reach);
        const inPart = new Set(decodeLogical(part, env).listeners.map(listenerKey));
        // Outside the part, every listener decodes as it did in the generation applied before (already compared then).
        const [before, after] = [byKey(seq[k - 1]!), byKey(seq[k]!)];
        for (const [key, text] of after) {
          if (inPart.has(key)) continue;
          expect(before.get(key), `change ${k} of seed ${seed}: listener ${key} changed outside the part`).toBe(text);
          checked++;
        }
        // Every group slot and Maglev table the change wrote is in the part (their check sees them).
        const slots = (pairs: Array<[Buffer, Buffer]>): Set<number> => new Set(pairs.map(([k]) => k.readUInt32LE(0)));
        const [groups, tables] = [slots(reach.groups), slots(reach.maglev)];
        for (const [k] of encodedOf(plan.want).groups) expect(groups.has(k.readUInt32LE(0))).toBe(true);
        for (const [k] of encodedOf(plan.want).maglev) expect(tables.has(k.readUInt32LE(0))).toBe(true);
        expect(inPart.size, `change ${k}: the part is not the whole generation`).toBeLessThan(after.size);
        const written = plan.commit();
        s = { ...s, activeGen: target, config: seq[k], differ: plan.changed, gens: target === 0 ? [{ columns: written, digest: plan.digest }, s.gens[1]] : [s.gens[0], { columns: written, digest: plan.digest }] };
      }
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('takes the full path when the configuration did not change, when the generations are not known, and when a quarter of the entries change', () => {
    const a = randomGeneration(7, 60);
    const b = nudged(a, 8);
    const s: AppliedState = { mapIds: '', activeGen: 1, serial: 1, config: b, gens: [content(0, a), content(1, b)], differ: differingKeys(a, b) };
    expect(planDelta(s, 0, nudged(b, 9))).not.toBeNull();
    expect(planDelta(s, 0, b)).toBeNull();
    expect(planDelta({ ...s, differ: null }, 0, nudged(b, 9))).toBeNull();
    expect(planDelta({ ...s, gens: [undefined, s.gens[1]] }, 0, nudged(b, 9))).toBeNull();
    expect(planDelta(s, 0, randomGeneration(10, 60))).toBeNull();
  });

  it('finds every changed entry, whatever the positions: in place, by common prefix and suffix, or by a short edit script', () => {
    const a = randomGeneration(11, 40);
    const moved = { ...a, listeners: [...a.listeners.slice(1), a.listeners[0]!] };
    const d = configDelta(a, moved);
    expect(d.prev.listeners.length).toBe(a.listeners.length); // a rotation: every position differs
    const shorter = { ...a, srcRoutes: a.srcRoutes.filter((_, i) => i !== 5) };
    const e = configDelta(a, shorter);
    expect(e.prev.srcRoutes).toEqual([5]);
    expect(e.next.srcRoutes).toEqual([]);
    expect(e.settings).toBe(false);
    // 300 routes: 100 scattered edits stay in place; a route removed near the start and one added
    // near the end (every position between them shifted) is found as two edits.
    const big = randomGeneration(12, 300);
    const scattered = { ...big, srcRoutes: big.srcRoutes.map((r, i) => (i % 3 === 0 ? { ...r, group: r.group + 1 } : r)) };
    const sd = configDelta(big, scattered);
    expect(sd.prev.srcRoutes.length).toBe(Math.ceil(big.srcRoutes.length / 3));
    const shifted = { ...big, srcRoutes: [...big.srcRoutes.slice(0, 10), ...big.srcRoutes.slice(11, -10), { ...big.srcRoutes[10]!, listenerId: 99_999 }, ...big.srcRoutes.slice(-10)] };
    const hd = configDelta(big, shifted);
    expect(hd.prev.srcRoutes).toEqual([10]);
    expect(hd.next.srcRoutes).toEqual([big.srcRoutes.length - 11]);
    const reweighted = structuredClone(a);
    reweighted.groups[3]!.group.targets[0] = { ...reweighted.groups[3]!.group.targets[0]!, targetId: 16383 };
    if (a.groups[3]!.group.targets.length > 0) expect(configDelta(a, reweighted).next.groups).toEqual([3]);
  });
});
