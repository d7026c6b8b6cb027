// The apply's read-back and its routes records (src/apply/read-back.ts, src/state/routes-record.ts):
// a wrong source route (value changed, key missing, a deleted key still there behind a covering
// prefix) fails the read-back; the records are written with the flip's serial and trusted only
// then; a drift of the active generation is healed by applying the same configuration again; and
// without records (or with stale ones) the apply reads the maps and still writes exactly.
// Needs root; fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyGeneration } from '../../src/apply/index.js';
import { readBack, readBackRuns } from '../../src/apply/read-back.js';
import { LB_MAX_GROUPS } from '../../src/core/abi.js';
import type { OpRun } from '../../src/core/columns.js';
import { isLbError } from '../../src/core/errors.js';
import { firstDifference } from '../../src/core/ops.js';
import { DataPlane, encodeGeneration, encodeSrcKey, encodeU32, readCtl, readGenerationRaw, readGroupHalf, type GenerationConfig } from '../../src/dataplane/index.js';
import { readRoutesRecord, routesRecordPath } from '../../src/state/routes-record.js';
import { runDir } from '../../src/state/run-dir.js';
import { TargetIds, buildGeneration, type ListenerSpec } from '../lib/apply-fixtures.js';

if (process.getuid?.() !== 0) throw new Error('apply-read-back.test.ts must run as root: it loads BPF programs');

const instance = `t-${process.pid}-${randomBytes(3).toString('hex')}`;
const dir = runDir(instance);
const ids = new TargetIds();
const spec = (net: number, extra = 0): ListenerSpec[] => Array.from({ length: 6 }, (_, k) => ({
  vip: `10.100.0.${k + 1}`, port: 80, targets: [`10.${net}.${k + 1}.1:80`],
  routes: Array.from({ length: 3 + extra }, (_, r) => ({ prefix: `192.168.${r}.0/24`, targets: [`10.${net}.${k + 1}.2:80`] })),
}));
const A = buildGeneration(spec(1), ids);
const B = buildGeneration(spec(2), ids);
const C = buildGeneration(spec(3, 2), ids);

const apply = (gen: GenerationConfig): ReturnType<typeof applyGeneration> => applyGeneration({ instance, generation: gen, interfaces: [] });

/** The active generation holds exactly `gen`. */
function holds(dp: DataPlane, gen: GenerationConfig): string | null {
  const active = readCtl(dp).activeGen;
  return firstDifference(readGenerationRaw(dp, active), encodeGeneration(active, gen));
}

function verifyError(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(isLbError(err, 'LB_APPLY_VERIFY'), String(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('the read-back passed');
}

describe('apply read-back and routes records', () => {
  let dp: DataPlane | undefined;
  const d = (): DataPlane => dp!;

  beforeAll(() => {
    apply(A);
    apply(B);
    dp = DataPlane.open({ instance });
  });

  afterAll(() => {
    dp?.close();
    DataPlane.down(instance);
    rmSync(dir, { recursive: true, force: true });
  });

  it('records both generations with the serial of the flip that made them', () => {
    const ctl = readCtl(d());
    const active = readRoutesRecord(dir, ctl.activeGen)!;
    const inactive = readRoutesRecord(dir, 1 - ctl.activeGen)!;
    expect(active.serial).toBe(ctl.serial);
    expect(inactive.serial).toBeLessThan(ctl.serial);
    expect(active.ctlMapId).toBe(d().maps.lb_ctl.id);
    expect(active.count).toBe(B.srcRoutes.length);
    expect(firstDifference({ ...encodeGeneration(ctl.activeGen, B), srcRoutes: active.entries() }, encodeGeneration(ctl.activeGen, B))).toBeNull();
  });

  it('fails on a route whose value, or whose key, is not what was written', () => {
    const gen = readCtl(d()).activeGen;
    const [key, value] = encodeGeneration(gen, B).srcRoutes[0]!;
    expect(() => readBack(d(), gen, [{ map: 'lb_src_routes', key, value }])).not.toThrow();
    expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_src_routes', key, value: encodeU32(value.readUInt32LE(0) + 1) }]))).toMatch(/lb_src_routes\[.*\] differs/);
    const absent = encodeSrcKey({ gen, listenerId: 1, addr: '172.31.0.0', prefixLen: 24 });
    expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_src_routes', key: absent, value }]))).toMatch(/lb_src_routes lacks key/);
    expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_src_routes', key, value: null }]))).toMatch(/holds key .*, which was deleted/);
  });

  it('tells a deleted route from the covering prefix that still answers its lookup', () => {
    const gen = 1 - readCtl(d()).activeGen; // the inactive generation: no packet reads it
    const wide = encodeSrcKey({ gen, listenerId: 9, addr: '172.30.0.0', prefixLen: 16 });
    const narrow = encodeSrcKey({ gen, listenerId: 9, addr: '172.30.5.0', prefixLen: 24 });
    try {
      d().maps.lb_src_routes.update(wide, encodeU32(1));
      d().maps.lb_src_routes.update(narrow, encodeU32(2));
      expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_src_routes', key: narrow, value: null }]))).toMatch(/which was deleted/);
      d().maps.lb_src_routes.delete(narrow);
      expect(d().maps.lb_src_routes.lookup(narrow)).toEqual(encodeU32(1)); // the /16 answers
      expect(() => readBack(d(), gen, [{ map: 'lb_src_routes', key: narrow, value: null }])).not.toThrow();
    } finally {
      d().maps.lb_src_routes.delete(narrow);
      d().maps.lb_src_routes.delete(wide);
    }
  });

  it('fails on a group slot or a listener that does not hold what was written', () => {
    const gen = readCtl(d()).activeGen;
    const raw = encodeGeneration(gen, B);
    const [gk, gv] = raw.groups[0]!;
    const [lk, lv] = raw.listeners[0]!;
    expect(() => readBack(d(), gen, [{ map: 'lb_groups', key: gk, value: gv }, { map: 'lb_listeners', key: lk, value: lv }])).not.toThrow();
    const other = Buffer.from(gv);
    other[8] = other[8]! ^ 1;
    expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_groups', key: gk, value: other }]))).toMatch(/lb_groups\[.*\] differs/);
    expect(verifyError(() => readBack(d(), gen, [{ map: 'lb_listeners', key: lk, value: null }]))).toMatch(/lb_listeners holds key/);
  });

  it('a run of many group slots (read back in one batch, compared word by word) fails on the one slot that differs', () => {
    const gen = readCtl(d()).activeGen;
    const half = Buffer.from(readGroupHalf(d(), gen)); // every slot's bytes now, groups and empty slots
    const size = d().maps.lb_groups.valueSize;
    const count = 300; // above the batch threshold
    const keys = Buffer.alloc(4 * count);
    for (let i = 0; i < count; i++) keys.writeUInt32LE(gen * LB_MAX_GROUPS + i, 4 * i);
    const run = (values: Buffer): OpRun => ({ map: 'lb_groups', kind: 'put', keySize: 4, valueSize: size, count, keys, values, prev: new Int32Array(count).fill(-1) });
    expect(() => readBackRuns(d(), gen, [run(half.subarray(0, count * size))])).not.toThrow();
    for (const at of [size * 2 + 8, size * 250 + size - 1]) { // a weight of slot 2; the last byte of slot 250 (an empty slot)
      const other = Buffer.from(half.subarray(0, count * size));
      other[at] = other[at]! ^ 1;
      const slot = Math.floor(at / size);
      expect(verifyError(() => readBackRuns(d(), gen, [run(other)]))).toMatch(new RegExp(`lb_groups\\[${Buffer.from(keys.subarray(4 * slot, 4 * slot + 4)).toString('hex')}\\] differs`));
    }
  });

  it('the same configuration again is a no-op; after a drift of the active routes it is applied again', () => {
    expect(apply(B).changed).toBe(false);
    const gen = readCtl(d()).activeGen;
    const [key, value] = encodeGeneration(gen, B).srcRoutes[2]!;
    d().maps.lb_src_routes.update(key, encodeU32(value.readUInt32LE(0) + 1)); // drift behind the records' back
    expect(holds(d(), B)).not.toBeNull();
    const r = apply(B);
    expect(r.changed).toBe(true);
    expect(holds(d(), B)).toBeNull();
  });

  it('without records, or with stale ones, the apply reads the maps and writes exactly', () => {
    rmSync(routesRecordPath(dir, 0), { force: true });
    rmSync(routesRecordPath(dir, 1), { force: true });
    expect(apply(C).changed).toBe(true);
    expect(holds(d(), C)).toBeNull();
    expect(readRoutesRecord(dir, readCtl(d()).activeGen)?.serial).toBe(readCtl(d()).serial);
    // A flip nobody recorded (lb_ctl written by hand), after a route the records do not know was
    // added to the generation the next apply writes: the records no longer match lb_ctl's serial,
    // so the apply reads that generation and removes the route.
    const ctl = readCtl(d());
    d().maps.lb_src_routes.update(encodeSrcKey({ gen: ctl.activeGen, listenerId: 1, addr: '172.29.0.0', prefixLen: 24 }), encodeU32(1));
    d().maps.lb_ctl.update(encodeU32(0), Buffer.concat([encodeU32(1 - ctl.activeGen), encodeU32(ctl.serial + 1), Buffer.alloc(8)]));
    expect(apply(A).changed).toBe(true);
    expect(holds(d(), A)).toBeNull();
    expect(apply(C).changed).toBe(true);
    expect(holds(d(), C)).toBeNull();
  });
});
