// The raw-op model: diffing one generation's entries into puts and deletes, canonical comparison,
// the exact undo of saved entries, and batched execution that stops at a fault-injection point.
import { describe, expect, it } from 'vitest';
import {
  EMPTY_GROUP_VALUE, canonicalText, describeOp, diffGeneration, firstDifference, groupPresent, restoreOps,
  type RawOp,
} from '../../../src/core/ops.js';
import { executeOps } from '../../../src/apply/execute-ops.js';
import { maglevTable } from '../../../src/core/compile/encode.js';
import { LB_MAGLEV_SIZE, encodeGeneration, encodeU32, type DataPlane, type GenerationConfig } from '../../../src/dataplane/index.js';
import { TargetIds, buildGeneration } from '../../lib/apply-fixtures.js';

const ids = new TargetIds();
const base = buildGeneration([
  { vip: '10.0.0.1', port: 80, targets: ['10.1.0.1:80', '10.1.0.2:80'] },
  { vip: '10.0.0.2', port: 80, targets: ['10.1.0.3:80'], routes: [{ prefix: '192.168.0.0/16', targets: ['10.1.0.4:80'] }] },
], ids);

describe('diffGeneration', () => {
  it('is empty between a generation and itself', () => {
    expect(diffGeneration(1, encodeGeneration(1, base), encodeGeneration(1, base))).toEqual([]);
  });

  it('writes everything into an empty generation: settings, groups, routes, listeners, in that order', () => {
    const empty: GenerationConfig = { settings: { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0, flags: 0 }, listeners: [], groups: [], srcRoutes: [] };
    const ops = diffGeneration(0, encodeGeneration(0, empty), encodeGeneration(0, base));
    expect(ops.map((o) => `${o.map}:${o.kind}`)).toEqual([
      'lb_settings:put', 'lb_groups:put', 'lb_groups:put', 'lb_groups:put', 'lb_src_routes:put', 'lb_listeners:put', 'lb_listeners:put',
    ]);
    expect(ops[0]!.key).toEqual(encodeU32(0));
  });

  it('removes what the desired generation lacks: listeners and routes deleted, groups cleared', () => {
    const smaller = buildGeneration([{ vip: '10.0.0.1', port: 80, targets: ['10.1.0.1:80', '10.1.0.2:80'] }], ids);
    const ops = diffGeneration(1, encodeGeneration(1, base), encodeGeneration(1, smaller));
    expect(ops.map((o) => `${o.map}:${o.kind}`)).toEqual(['lb_listeners:delete', 'lb_src_routes:delete', 'lb_groups:put', 'lb_groups:put']);
    const clears = ops.filter((o) => o.map === 'lb_groups');
    for (const c of clears) expect(c.value).toEqual(EMPTY_GROUP_VALUE);
    expect(clears.map(describeOp)[0]).toMatch(/^clear lb_groups\[/);
  });

  it('rewrites only the entries whose bytes change', () => {
    const reweighted = structuredClone(base);
    reweighted.groups[0]!.group.targets[1]!.weight = 7;
    const ops = diffGeneration(0, encodeGeneration(0, base), encodeGeneration(0, reweighted));
    expect(ops).toHaveLength(1);
    expect(ops[0]!.map).toBe('lb_groups');
    expect(ops[0]!.key).toEqual(encodeU32(0));
  });

  it('treats an empty group like an absent one', () => {
    const withEmpty = structuredClone(base);
    withEmpty.groups.push({ id: 9, group: { targets: [] } });
    expect(diffGeneration(0, encodeGeneration(0, base), encodeGeneration(0, withEmpty))).toEqual([]);
    expect(firstDifference(encodeGeneration(0, withEmpty), encodeGeneration(0, base))).toBeNull();
    expect(groupPresent(EMPTY_GROUP_VALUE)).toBe(false);
  });
});

describe('canonical comparison', () => {
  it('ignores entry order and names the first difference', () => {
    const a = encodeGeneration(0, base);
    const shuffled = { ...a, listeners: [...a.listeners].reverse(), groups: [...a.groups].reverse() };
    expect(canonicalText(shuffled)).toBe(canonicalText(a));
    expect(firstDifference(shuffled, a)).toBeNull();
    const other = encodeGeneration(0, buildGeneration([{ vip: '10.0.0.1', port: 81, targets: ['10.1.0.1:80'] }], ids));
    expect(firstDifference(other, a)).toMatch(/^lb_(listeners|groups)/);
    expect(firstDifference({ ...a, settings: Buffer.alloc(16) }, a)).toMatch(/^lb_settings holds/);
  });
});

describe('restoreOps', () => {
  it('puts saved values back and deletes keys that were absent', () => {
    const key = Buffer.from('01', 'hex');
    const ops = restoreOps([
      { map: 'lb_listeners', key, value: null },
      { map: 'lb_groups', key: encodeU32(3), value: EMPTY_GROUP_VALUE },
    ]);
    expect(ops).toEqual([
      { map: 'lb_listeners', kind: 'delete', key },
      { map: 'lb_groups', kind: 'put', key: encodeU32(3), value: EMPTY_GROUP_VALUE },
    ]);
  });
});

describe('executeOps', () => {
  function fakePlane(): { dp: DataPlane; calls: string[]; keys: number[] } {
    const calls: string[] = [];
    const keys: number[] = [];
    const map = (name: string): unknown => ({
      update: (k: Buffer) => { calls.push(`${name}.update ${k.toString('hex')}`); keys.push(k.readUInt32LE(0)); },
      updateBatch: (e: Array<[Buffer, Buffer]>) => { calls.push(`${name}.updateBatch ${e.length}`); keys.push(...e.map(([k]) => k.readUInt32LE(0))); },
      deleteBatch: (k: Buffer[]) => { calls.push(`${name}.deleteBatch ${k.length}`); keys.push(...k.map((x) => x.readUInt32LE(0))); },
    });
    const maps = Object.fromEntries(['lb_settings', 'lb_groups', 'lb_src_routes', 'lb_listeners'].map((n) => [n, map(n)]));
    return { dp: { maps } as unknown as DataPlane, calls, keys };
  }
  const op = (map: RawOp['map'], kind: RawOp['kind'], n: number): RawOp => ({ map, kind, key: encodeU32(n), ...(kind === 'put' ? { value: Buffer.alloc(4) } : {}) });
  const ops = [op('lb_settings', 'put', 0), op('lb_groups', 'put', 1), op('lb_groups', 'put', 2), op('lb_groups', 'put', 3),
    op('lb_listeners', 'delete', 4), op('lb_listeners', 'delete', 5)];

  it('batches consecutive ops of one map and kind', () => {
    const { dp, calls } = fakePlane();
    expect(executeOps(dp, ops)).toBe(6);
    expect(calls).toEqual(['lb_settings.update 00000000', 'lb_groups.updateBatch 3', 'lb_listeners.deleteBatch 2']);
  });

  it('runs exactly the ops before the stop index', () => {
    for (let stop = 0; stop <= ops.length; stop++) {
      const { dp, keys } = fakePlane();
      expect(executeOps(dp, ops, stop)).toBe(stop);
      expect(keys).toEqual(ops.slice(0, stop).map((o) => o.key.readUInt32LE(0)));
    }
  });
});

describe('Maglev tables (lb_maglev)', () => {
  const ids2 = new TargetIds();
  const persistent = buildGeneration([
    { vip: '10.0.0.1', port: 80, targets: ['10.1.0.1:80', '10.1.0.2:80'], persist: true },
    { vip: '10.0.0.2', port: 80, targets: ['10.1.0.3:80'], routes: [{ prefix: '192.168.0.0/16', targets: ['10.1.0.4:80', '10.1.0.5:80@0'] }], persist: true },
  ], ids2);

  it('are put with their groups, after the group puts and before the routes', () => {
    const empty: GenerationConfig = { settings: { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0, flags: 0 }, listeners: [], groups: [], srcRoutes: [] };
    const ops = diffGeneration(0, encodeGeneration(0, empty), encodeGeneration(0, persistent));
    expect(ops.map((o) => `${o.map}:${o.kind}`)).toEqual([
      'lb_settings:put', 'lb_groups:put', 'lb_groups:put', 'lb_groups:put', 'lb_maglev:put', 'lb_maglev:put', 'lb_maglev:put',
      'lb_src_routes:put', 'lb_listeners:put', 'lb_listeners:put',
    ]);
    expect(ops.filter((o) => o.map === 'lb_maglev').map((o) => o.value!.length)).toEqual([LB_MAGLEV_SIZE, LB_MAGLEV_SIZE, LB_MAGLEV_SIZE]);
  });

  it('a reweight rewrites the group and its table; a listener losing persistence has its tables deleted (not cleared)', () => {
    const reweighted = structuredClone(persistent);
    reweighted.groups[0]!.group.targets[1]!.weight = 0;
    reweighted.maglev![0] = { group: 0, table: maglevTable(reweighted.groups[0]!.group.targets)! };
    const ops = diffGeneration(1, encodeGeneration(1, persistent), encodeGeneration(1, reweighted));
    expect(ops.map((o) => `${o.map}:${o.kind}`)).toEqual(['lb_groups:put', 'lb_maglev:put']);

    const plain = buildGeneration([
      { vip: '10.0.0.1', port: 80, targets: ['10.1.0.1:80', '10.1.0.2:80'] },
      { vip: '10.0.0.2', port: 80, targets: ['10.1.0.3:80'], routes: [{ prefix: '192.168.0.0/16', targets: ['10.1.0.4:80', '10.1.0.5:80@0'] }] },
    ], ids2);
    const removed = diffGeneration(1, encodeGeneration(1, persistent), encodeGeneration(1, plain));
    expect(removed.map((o) => `${o.map}:${o.kind}`)).toEqual(['lb_listeners:put', 'lb_listeners:put', 'lb_maglev:delete', 'lb_maglev:delete', 'lb_maglev:delete']);
  });

  it('take part in the canonical comparison', () => {
    const a = encodeGeneration(0, persistent);
    const other = structuredClone(persistent);
    other.maglev![1]!.table[7] = other.maglev![1]!.table[7] === 0 ? 1 : 0;
    expect(firstDifference(encodeGeneration(0, other), a)).toMatch(/^lb_maglev\[/);
    expect(firstDifference({ ...a, maglev: a.maglev.slice(1) }, a)).toMatch(/^lb_maglev lacks key/);
    expect(canonicalText({ ...a, maglev: [...a.maglev].reverse() })).toBe(canonicalText(a));
  });
});
