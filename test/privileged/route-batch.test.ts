// Source routes written, deleted and checked in the kernel by lb_route_batch (bpf/lb_apply.bpf.c,
// src/dataplane/route-batch.ts): batches larger than one stage, the first failing route reported
// with its index and errno, and the apply's read-back describing it. A real instance; needs root
// and fails (never skips) without it.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBack } from '../../src/apply/read-back.js';
import { LB_ROUTE_STAGE_OPS } from '../../src/core/abi.js';
import { isLbError } from '../../src/core/errors.js';
import { DataPlane, encodeSrcKey, encodeU32 } from '../../src/dataplane/index.js';
import { runRouteBatch, writeRoutes, type RouteEntry } from '../../src/dataplane/route-batch.js';

if (process.getuid?.() !== 0) throw new Error('route-batch.test.ts must run as root: it loads BPF programs');

const instance = `rb-${process.pid}-${randomBytes(3).toString('hex')}`;
const GEN = 1; // the instance's inactive generation: nothing reads it
const N = 2 * LB_ROUTE_STAGE_OPS + 7_000; // three stages, the last one partial

/** Route r: a /32 (or /24 every 10th) of listener r % 500, with the value 3r. */
function route(r: number): RouteEntry {
  const prefixLen = r % 10 === 0 ? 24 : 32;
  const addr = `172.${16 + (r >> 16)}.${(r >> 8) & 255}.${prefixLen === 24 ? 0 : r & 255}`;
  return { key: encodeSrcKey({ gen: GEN, listenerId: r % 500, addr: prefixLen === 24 ? `10.${r >> 16}.${(r >> 8) & 255}.0` : addr, prefixLen }), value: encodeU32(3 * r) };
}

describe('lb_route_batch: source routes in batches, in the kernel', () => {
  let dp: DataPlane | undefined;
  const d = (): DataPlane => dp!;
  const routes = Array.from({ length: N }, (_, r) => route(r));

  beforeAll(() => {
    dp = DataPlane.open({ instance });
  });

  afterAll(() => {
    dp?.close();
    DataPlane.down(instance);
  });

  it('puts routes across several stages: every one answers its value, and verify agrees', () => {
    expect(new Set(routes.map((e) => e.key.toString('hex'))).size).toBe(N); // distinct keys
    expect(runRouteBatch(d(), 'put', routes)).toBeNull();
    for (const r of [0, 1, LB_ROUTE_STAGE_OPS - 1, LB_ROUTE_STAGE_OPS, 2 * LB_ROUTE_STAGE_OPS + 5, N - 1]) {
      expect(d().maps.lb_src_routes.lookup(routes[r]!.key), `route ${r}`).toEqual(routes[r]!.value);
    }
    let answered = 0;
    for (const e of routes) if (d().maps.lb_src_routes.lookup(e.key)?.equals(e.value!)) answered++;
    expect(answered).toBe(N);
    expect(runRouteBatch(d(), 'verify', routes)).toBeNull();
  });

  it('verify names the first route that differs, in a later stage: EBADMSG for another value, ENOENT for none', () => {
    const at = LB_ROUTE_STAGE_OPS + 123;
    const changed = routes.map((e, i) => (i === at ? { key: e.key, value: encodeU32(7) } : e));
    expect(runRouteBatch(d(), 'verify', changed)).toEqual({ index: at, errno: 74 });
    const absent = { key: encodeSrcKey({ gen: GEN, listenerId: 999, addr: '192.0.2.1', prefixLen: 32 }), value: encodeU32(1) };
    expect(runRouteBatch(d(), 'verify', [...routes.slice(0, at), absent, ...routes.slice(at)])).toEqual({ index: at, errno: 2 });
  });

  it("the apply's read-back checks many routes in the kernel and describes the first wrong one", () => {
    const expected = routes.slice(0, 100).map((e) => ({ map: 'lb_src_routes' as const, key: e.key, value: e.value }));
    expect(() => readBack(d(), GEN, expected)).not.toThrow();
    const wrong = expected.map((e, i) => (i === 60 ? { ...e, value: encodeU32(1) } : e));
    expect(() => readBack(d(), GEN, wrong)).toThrow(new RegExp(`lb_src_routes\\[${expected[60]!.key.toString('hex')}\\] differs from the value written`));
  });

  it('a put that fails stops there: LB_BPF_MAP names the route and the errno, the routes before it are written, those after are not', () => {
    const fresh = Array.from({ length: 300 }, (_, i) => ({ key: encodeSrcKey({ gen: GEN, listenerId: 600, addr: `198.51.${i >> 8}.${i & 255}`, prefixLen: 32 }), value: encodeU32(i) }));
    const bad = Buffer.from(fresh[0]!.key);
    bad.writeUInt32LE(65, 0); // prefixlen beyond the trie's 64 bits: EINVAL
    const list = [...fresh.slice(0, 200), { key: bad, value: encodeU32(1) }, ...fresh.slice(200)];
    let caught: unknown;
    try {
      writeRoutes(d(), 'put', list);
    } catch (err) {
      caught = err;
    }
    expect(isLbError(caught, 'LB_BPF_MAP'), String(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/lb_src_routes.*EINVAL/);
    expect((caught as { data: Record<string, unknown> }).data).toMatchObject({ index: 200, key: bad.toString('hex') });
    expect(d().maps.lb_src_routes.lookup(fresh[199]!.key)).toEqual(fresh[199]!.value);
    expect(d().maps.lb_src_routes.lookup(fresh[200]!.key)).toBeUndefined();
    writeRoutes(d(), 'delete', fresh);
  });

  it('deletes in batches, absent keys included; verify then finds the first route gone', () => {
    const absent = { key: encodeSrcKey({ gen: GEN, listenerId: 998, addr: '192.0.2.2', prefixLen: 32 }) };
    writeRoutes(d(), 'delete', [absent, ...routes]);
    expect(runRouteBatch(d(), 'verify', routes)).toEqual({ index: 0, errno: 2 });
    for (const r of [0, LB_ROUTE_STAGE_OPS + 1, N - 1]) expect(d().maps.lb_src_routes.lookup(routes[r]!.key)).toBeUndefined();
  });
});
