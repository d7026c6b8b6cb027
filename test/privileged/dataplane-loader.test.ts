// The loader against the real kernel: load and pin, adopt, map round-trips through the abi.ts
// codecs, per-CPU reads, BPF_PROG_TEST_RUN, and XDP/TC attach/detach on interfaces of a network
// namespace this file creates. Needs root; it fails (never skips) without it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLbError, LbError } from '../../src/core/errors.js';
import {
  BPF_NOEXIST, DataPlane, IPPROTO_TCP, IPPROTO_UDP, LB_MAGLEV_SIZE, LB_MAX_GROUPS, LB_MAX_TARGET_IDS, TargetCounters, readBackendBucket, LB_PATH_TC, LB_PATH_XDP, LB_STAT_CT_CLOSED, MAP_NAMES,
  decodeGroup, decodeListener, decodeListenerKey, decodeSrcKey, decodeU32, encodeGroup, encodeListener,
  encodeListenerKey, encodeSrcKey, encodeU32, groupIndex, instanceDir, interfaceIndex, listPins, possibleCpus,
  type Group,
} from '../../src/dataplane/index.js';
import { withNetns } from '../../src/sandbox/netns.js';
import { tcEgressProgIds, tcProgIds } from '../e2e/lib/kernel.js';

/** BPF_F_NO_PREALLOC (linux/bpf.h): lb_maglev allocates only the tables that exist. */
const BPF_F_NO_PREALLOC = 1;

if (process.getuid?.() !== 0) {
  throw new Error('dataplane-loader.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const objectDir = 'build/bpf';
const run = `${process.pid}-${randomBytes(3).toString('hex')}`;
const instance = `t-${run}`;
const other = `t-${run}-b`;
const netns = `lbt-${run}`;
const XDP_PASS = 2;
const TC_ACT_OK = 0;

const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });

/** An ARP request frame: not IPv4, so XDP must pass it and count not_ipv4. */
function arpFrame(): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  Buffer.from([0x02, 0, 0, 0, 0, 1]).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // htype ethernet
  f.writeUInt16BE(0x0800, 16); // ptype IPv4
  f.writeUInt8(6, 18);
  f.writeUInt8(4, 19);
  f.writeUInt16BE(1, 20); // request
  return f;
}

function xdpProgOn(ns: string, ifname: string): { id: number; mode: number } | undefined {
  const [link] = JSON.parse(sh('ip', ['-n', ns, '-j', '-d', 'link', 'show', 'dev', ifname])) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>;
  return link?.xdp?.prog ? { id: link.xdp.prog.id, mode: link.xdp.mode } : undefined;
}


const opened: DataPlane[] = [];
function open(options: Parameters<typeof DataPlane.open>[0]): DataPlane {
  const dp = DataPlane.open(options);
  opened.push(dp);
  return dp;
}

afterAll(() => {
  for (const dp of opened) dp.close();
  for (const name of [instance, other]) {
    try {
      if (existsSync(`/run/netns/${netns}`)) withNetns(netns, () => DataPlane.down(name));
    } finally {
      DataPlane.down(name);
      rmSync(instanceDir(name), { recursive: true, force: true });
    }
  }
  try { sh('ip', ['netns', 'del', netns]); } catch { /* not created */ }
});

/** Everything but the maps that a load pins: programs and tracepoint links. */
const PINS = ['link_devmap_xmit', 'link_redirect_err', 'prog_route_batch', 'prog_tc', 'prog_tc_in', 'prog_xdp'];

describe('DataPlane.open: load, pin, adopt', () => {
  let dp: DataPlane;

  it('rejects unsafe instance names', () => {
    for (const bad of ['', '../x', 'a/b', '.hidden', 'a.b', 'x'.repeat(65)]) {
      expect(() => DataPlane.open({ instance: bad, objectDir })).toThrow(expect.objectContaining({ code: 'LB_INSTANCE_NAME' }));
    }
  });

  it('reports a missing object and leaves no instance directory behind', () => {
    const name = `${instance}-missing`;
    try {
      DataPlane.open({ instance: name, objectDir: '/nonexistent' });
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_BPF_OPEN')).toBe(true);
      expect((err as LbError).data).toMatchObject({ errnoName: 'ENOENT', object: '/nonexistent/lb_xdp.bpf.o' });
    }
    expect(existsSync(instanceDir(name))).toBe(false);
  });

  it('a program the verifier refuses fails with LB_BPF_LOAD and the verifier log; nothing stays pinned', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lb-bad-'));
    const name = `${instance}-bad`;
    try {
      writeFileSync(join(dir, 'bad.c'), [
        '#include <linux/bpf.h>',
        '#include <bpf/bpf_helpers.h>',
        'struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64);',
        '  __uint(pinning, LIBBPF_PIN_BY_NAME); } lb_stats SEC(".maps");',
        'SEC("xdp") int lb_xdp_ingress(struct xdp_md *ctx) {',
        '  unsigned char *d = (void *)(long)ctx->data; __u32 k = 0; __u64 *v = bpf_map_lookup_elem(&lb_stats, &k);',
        '  if (v) *v += 1; return d[20]; /* no bounds check: the verifier must refuse */ }',
        'char LICENSE[] SEC("license") = "GPL";',
      ].join('\n'));
      sh('clang', ['-O2', '-g', '-target', 'bpf', '-I', `/usr/include/${sh('gcc', ['-dumpmachine']).trim()}`, '-c', join(dir, 'bad.c'), '-o', join(dir, 'lb_xdp.bpf.o')]);
      copyFileSync(join(objectDir, 'lb_tc.bpf.o'), join(dir, 'lb_tc.bpf.o'));
      try {
        DataPlane.open({ instance: name, objectDir: dir });
        expect.unreachable();
      } catch (err) {
        expect(isLbError(err, 'LB_BPF_LOAD')).toBe(true);
        const e = err as LbError;
        expect(e.data).toMatchObject({ errnoName: 'EACCES', object: join(dir, 'lb_xdp.bpf.o') });
        expect(String(e.data.log)).toMatch(/invalid access to packet/);
        expect(e.message).toMatch(/invalid access to packet/);
      }
      expect(existsSync(instanceDir(name))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      DataPlane.down(name);
    }
  });

  it('first open loads the three objects, pins the maps, the four programs and the two tracepoint links', () => {
    dp = open({ instance, objectDir });
    expect(dp.adopted).toBe(false);
    expect(listPins(instanceDir(instance))).toEqual([...MAP_NAMES, ...PINS].sort());
    expect(Object.keys(dp.maps).sort()).toEqual([...MAP_NAMES].sort());
    expect(dp.programs.xdp.name).toBe('lb_xdp_ingress');
    expect(dp.programs.tc.name).toBe('lb_tc_egress');
    expect(dp.maps.lb_stats_v4.perCpu).toBe(true);
    expect(dp.maps.lb_stats_v4.cpus).toBe(possibleCpus());
    expect(dp.maps.lb_flows.perCpu).toBe(false); // NAT state is shared by all CPUs
    // Maglev tables: a hash without preallocation, so only existing tables take memory
    expect(dp.maps.lb_maglev.typeName).toBe('hash');
    expect(dp.maps.lb_maglev.valueSize).toBe(LB_MAGLEV_SIZE);
    expect(dp.maps.lb_maglev.flags & BPF_F_NO_PREALLOC).toBe(BPF_F_NO_PREALLOC);
  });

  it('a second open adopts the pins: same program and map ids, shared contents', () => {
    const again = open({ instance, objectDir });
    expect(again.adopted).toBe(true);
    expect(again.programs.xdp.id).toBe(dp.programs.xdp.id);
    expect(again.programs.tc.id).toBe(dp.programs.tc.id);
    for (const name of MAP_NAMES) expect(again.maps[name].id, name).toBe(dp.maps[name].id);
    const key = encodeListenerKey({ ifindex: 7, vip: '10.1.2.3', port: 443, proto: IPPROTO_TCP, gen: 1 });
    dp.maps.lb_listeners.update(key, encodeListener({ listenerId: 9, defaultGroup: 3, flags: 0 }));
    expect(decodeListener(again.maps.lb_listeners.lookup(key)!)).toEqual({ listenerId: 9, defaultGroup: 3, flags: 0 });
    expect(again.maps.lb_listeners.delete(key)).toBe(true);
    again.close();
    again.close(); // idempotent
    expect(() => again.maps.lb_ctl.lookup(encodeU32(0))).toThrow(/closed/);
  });

  it('lb_listeners (hash) round-trips: update, lookup, iterate, delete, flags', () => {
    const map = dp.maps.lb_listeners;
    const k = { ifindex: 3, vip: '192.0.2.10', port: 8080, proto: IPPROTO_TCP, gen: 0 };
    const v = { listenerId: 0x1234, defaultGroup: 77, flags: 3 };
    expect(map.lookup(encodeListenerKey(k))).toBeUndefined();
    map.update(encodeListenerKey(k), encodeListener(v));
    expect(decodeListener(map.lookup(encodeListenerKey(k))!)).toEqual(v);
    expect([...map.keys()].map(decodeListenerKey)).toEqual([k]);
    const entries = [...map.entries()].map(([kk, vv]) => [decodeListenerKey(kk), decodeListener(vv)]);
    expect(entries).toEqual([[k, v]]);
    try {
      map.update(encodeListenerKey(k), encodeListener(v), BPF_NOEXIST);
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_BPF_MAP')).toBe(true);
      expect((err as LbError).data).toMatchObject({ map: 'lb_listeners', op: 'bpf_map_update_elem', errnoName: 'EEXIST' });
    }
    expect(map.delete(encodeListenerKey(k))).toBe(true);
    expect(map.delete(encodeListenerKey(k))).toBe(false);
    expect(map.lookup(encodeListenerKey(k))).toBeUndefined();
    expect(() => map.lookup(Buffer.alloc(3))).toThrow(expect.objectContaining({ code: 'LB_BPF_MAP' }));
  });

  it('lb_listeners batch update, lookup and delete', () => {
    const map = dp.maps.lb_listeners;
    const rows = Array.from({ length: 300 }, (_, i) => [
      encodeListenerKey({ ifindex: 1 + (i % 5), vip: `10.0.${i >> 8}.${i & 255}`, port: 1000 + i, proto: i % 2 ? IPPROTO_UDP : IPPROTO_TCP, gen: i % 2 }),
      encodeListener({ listenerId: i, defaultGroup: i % 100, flags: 0 }),
    ] as const);
    expect(map.updateBatch(rows, 0, 128)).toBe(300);
    const read = map.lookupBatch(64);
    expect(read.length).toBe(300);
    const byKey = new Map(read.map(([k, v]) => [k.toString('hex'), decodeListener(v).listenerId]));
    rows.forEach(([k], i) => expect(byKey.get(k.toString('hex'))).toBe(i));
    // absent keys are skipped, the rest deleted
    const absent = encodeListenerKey({ ifindex: 99, vip: '0.0.0.0', port: 1, proto: IPPROTO_TCP, gen: 0 });
    expect(map.deleteBatch([absent, ...rows.map(([k]) => k), absent], 100)).toBe(300);
    expect([...map.keys()]).toEqual([]);
  });

  it('lb_groups (array) round-trips through the group codec; arrays refuse deletes with EINVAL', () => {
    const map = dp.maps.lb_groups;
    expect(map.maxEntries).toBe(2 * LB_MAX_GROUPS);
    const group: Group = {
      targets: [
        { addr: '10.0.0.1', port: 8080, weight: 50, targetId: 1 },
        { addr: '10.0.0.2', port: 8081, weight: 0x102, targetId: 0x203 },
        { addr: '172.16.255.254', port: 65535, weight: 1, targetId: 16383 },
      ],
    };
    const key = encodeU32(groupIndex(1, 5));
    map.update(key, encodeGroup(group));
    expect(decodeGroup(map.lookup(key)!)).toEqual(group);
    expect(decodeGroup(map.lookup(encodeU32(groupIndex(0, 5)))!)).toEqual({ targets: [] });
    // an array's keys are all its indexes
    let n = 0;
    for (const k of map.keys()) expect(decodeU32(k)).toBe(n++);
    expect(n).toBe(map.maxEntries);
    // batch lookup of an array
    const all = map.lookupBatch(4096);
    expect(all.length).toBe(map.maxEntries);
    expect(decodeGroup(all[groupIndex(1, 5)]![1])).toEqual(group);
    // ...and of its first slots only (the runtime sampler reads the target ids in use): keys 0..n-1, whole rounds cut short
    const first = map.lookupBatchColumns(64, groupIndex(1, 5) + 1);
    expect(first.count).toBeGreaterThanOrEqual(groupIndex(1, 5) + 1);
    expect(first.count).toBeLessThan(groupIndex(1, 5) + 1 + 64);
    for (let i = 0; i < first.count; i++) expect(first.keys.readUInt32LE(i * first.keySize)).toBe(i);
    const at = groupIndex(1, 5) * first.valueSize;
    expect(decodeGroup(first.values.subarray(at, at + first.valueSize))).toEqual(group);
    try {
      map.delete(key);
      expect.unreachable();
    } catch (err) {
      expect((err as LbError).data).toMatchObject({ map: 'lb_groups', errnoName: 'EINVAL', key: key.toString('hex') });
      expect((err as Error).message).toMatch(/lb_groups/);
    }
    map.update(key, encodeGroup({ targets: [] }));
  });

  it('lb_src_routes (LPM trie) round-trips and matches longest prefix', () => {
    const map = dp.maps.lb_src_routes;
    const wide = { gen: 0, listenerId: 4, addr: '192.168.0.0', prefixLen: 16 };
    const narrow = { gen: 0, listenerId: 4, addr: '192.168.1.0', prefixLen: 24 };
    map.update(encodeSrcKey(wide), encodeU32(1));
    map.update(encodeSrcKey(narrow), encodeU32(2));
    expect(decodeU32(map.lookup(encodeSrcKey({ ...narrow, addr: '192.168.1.77', prefixLen: 32 }))!)).toBe(2);
    expect(decodeU32(map.lookup(encodeSrcKey({ ...wide, addr: '192.168.9.9', prefixLen: 32 }))!)).toBe(1);
    expect(map.lookup(encodeSrcKey({ ...wide, listenerId: 5, addr: '192.168.9.9', prefixLen: 32 }))).toBeUndefined();
    expect([...map.keys()].map(decodeSrcKey).sort((a, b) => a.prefixLen - b.prefixLen)).toEqual([wide, narrow]);
    expect(map.deleteBatch([encodeSrcKey(wide), encodeSrcKey(narrow)])).toBe(2);
  });

  it('lb_stats reads one value per CPU and readStats sums them', () => {
    const map = dp.maps.lb_stats_v4;
    const cpus = possibleCpus();
    const key = encodeU32(LB_STAT_CT_CLOSED);
    const full = Buffer.alloc(map.valueBufferSize);
    for (let cpu = 0; cpu < cpus; cpu++) full.writeBigUInt64LE(BigInt(cpu + 1) << 32n, cpu * map.valueStride);
    map.update(key, full);
    const slots = map.lookupPerCpu(key)!;
    expect(slots.length).toBe(cpus);
    slots.forEach((s, cpu) => expect(s.readBigUInt64LE(0)).toBe(BigInt(cpu + 1) << 32n));
    expect(dp.readStats().ct_closed).toBe((BigInt(cpus * (cpus + 1)) / 2n) << 32n);
    map.update(key, Buffer.alloc(8)); // one value: written to every CPU
    expect(dp.readStats().ct_closed).toBe(0n);
    expect(dp.readTargetStats(0)).toEqual({ packets: 0n, bytes: 0n, newFlows: 0n, closedFlows: 0n, failedConns: 0n });
    expect(() => dp.readTargetStats(1 << 20)).toThrow(expect.objectContaining({ code: 'LB_BPF_ABI' }));
  });

  it('TargetCounters: one batch walk of lb_tstats and lb_rl_backend reads what readTargetStats and readBackendBucket read', () => {
    const tstats = dp.maps.lb_tstats;
    const cpus = possibleCpus();
    const ids = [0, 1, 777, LB_MAX_TARGET_IDS - 1];
    for (const [n, id] of ids.entries()) {
      const full = Buffer.alloc(tstats.valueBufferSize);
      for (let cpu = 0; cpu < cpus; cpu++) {
        for (let field = 0; field < 5; field++) full.writeBigUInt64LE(BigInt((n + 1) * 1000 + cpu * 10 + field), cpu * tstats.valueStride + field * 8);
      }
      tstats.update(encodeU32(id), full);
      const bucket = Buffer.alloc(dp.maps.lb_rl_backend.valueSize);
      bucket.writeBigUInt64LE(BigInt(n + 5), 16); // limited
      dp.maps.lb_rl_backend.update(encodeU32(id), bucket);
    }
    try {
      const table = TargetCounters.read(dp, { buckets: true });
      for (const id of [...ids, 2, 5000]) {
        expect(table.targetStats(id)).toEqual(dp.readTargetStats(id));
        expect(table.limited(id)).toBe(readBackendBucket(dp, id).limited);
      }
      expect(table.targetStats(777).packets).toBe(BigInt(cpus * 3000 + 10 * (cpus * (cpus - 1)) / 2)); // summed over CPUs
      expect(table.limited(777)).toBe(7n);
      expect(TargetCounters.read(dp, { buckets: false }).limited(777)).toBe(0n); // not read
    } finally {
      for (const id of ids) {
        tstats.update(encodeU32(id), Buffer.alloc(tstats.valueSize));
        dp.maps.lb_rl_backend.update(encodeU32(id), Buffer.alloc(dp.maps.lb_rl_backend.valueSize));
      }
    }
  });

  it('testRun: a non-IPv4 frame passes XDP untouched and counts not_ipv4 (the program reads what it counts)', () => {
    const frame = arpFrame();
    const before = dp.readStats();
    const res = dp.testRun('xdp', frame, { ifindex: 1 });
    expect(res.retval).toBe(XDP_PASS);
    expect(res.data).toEqual(frame);
    expect(dp.readStats().not_ipv4 - before.not_ipv4).toBe(1n);
    dp.testRun('xdp', frame, { repeat: 5 });
    expect(dp.readStats().not_ipv4 - before.not_ipv4).toBe(6n);
  });

  it('testRun: TC passes a non-IPv4 frame; a missing ifindex is reported', () => {
    const frame = arpFrame();
    const res = dp.testRun('tc', frame);
    expect(res.retval).toBe(TC_ACT_OK);
    expect(res.data).toEqual(frame);
    expect(dp.testRun('tc', frame, { ifindex: 1 }).retval).toBe(TC_ACT_OK);
    try {
      dp.testRun('xdp', frame, { ifindex: 0x7ffffff0 });
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_BPF_TEST_RUN')).toBe(true);
      expect((err as LbError).data).toMatchObject({ errnoName: 'ENODEV', prog: 'xdp' });
    }
  });
});

describe('DataPlane attach/detach in a network namespace', () => {
  let dp: DataPlane;

  beforeAll(() => {
    sh('ip', ['netns', 'add', netns]);
    sh('ip', ['-n', netns, 'link', 'add', 'lbv0', 'type', 'veth', 'peer', 'name', 'lbv1']);
    sh('ip', ['-n', netns, 'link', 'add', 'lbi0', 'type', 'ifb']);
    for (const dev of ['lo', 'lbv0', 'lbv1', 'lbi0']) sh('ip', ['-n', netns, 'link', 'set', dev, 'up']);
    dp = open({ instance, objectDir });
    expect(dp.adopted).toBe(true);
  });

  it('attach auto on a veth runs native XDP and the TC egress filter; again is a no-op', () => {
    const r = withNetns(netns, () => dp.attach('lbv0'));
    expect(r).toMatchObject({ ifname: 'lbv0', xdpMode: 'native', xdpChanged: true, tcChanged: true, replacedProgIds: [] });
    expect(xdpProgOn(netns, 'lbv0')).toEqual({ id: dp.programs.xdp.id, mode: 1 });
    expect(tcEgressProgIds(netns, 'lbv0')).toEqual([dp.programs.tc.id]);
    const again = withNetns(netns, () => dp.attach('lbv0', { xdpMode: 'auto' }));
    expect(again).toMatchObject({ xdpMode: 'native', xdpChanged: false, tcChanged: false });
  });

  it('an ifb device has no native XDP: native fails naming it, auto and generic fall back to generic', () => {
    try {
      withNetns(netns, () => dp.attach('lbi0', { xdpMode: 'native' }));
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_BPF_ATTACH')).toBe(true);
      expect((err as LbError).data).toMatchObject({ ifname: 'lbi0', mode: 'native' });
      expect((err as Error).message).toMatch(/lbi0/);
    }
    expect(xdpProgOn(netns, 'lbi0')).toBeUndefined();
    expect(tcEgressProgIds(netns, 'lbi0')).toEqual([]); // the TC half was rolled back
    const r = withNetns(netns, () => dp.attach('lbi0'));
    expect(r).toMatchObject({ xdpMode: 'generic', xdpChanged: true });
    expect(r.nativeError).toMatch(/native/);
    expect(xdpProgOn(netns, 'lbi0')).toEqual({ id: dp.programs.xdp.id, mode: 2 });
    expect(withNetns(netns, () => dp.attach('lbi0', { xdpMode: 'generic' }))).toMatchObject({ xdpMode: 'generic', xdpChanged: false });
  });

  it('attachments() is read live from the kernel', () => {
    const list = withNetns(netns, () => dp.attachments());
    const by = Object.fromEntries(list.map((a) => [a.ifname, a]));
    expect(Object.keys(by).sort()).toEqual(['lbi0', 'lbv0', 'lbv1', 'lo']);
    expect(by.lbv0).toMatchObject({ xdp: 'native', tc: true, stale: false });
    expect(by.lbi0).toMatchObject({ xdp: 'generic', tc: true, stale: false });
    expect(by.lbv1).toMatchObject({ xdp: null, tc: false, stale: false });
    expect(() => withNetns(netns, () => dp.attach('nope0'))).toThrow(expect.objectContaining({ code: 'LB_NET_IFACE' }));
  });

  it('the tc path: TC ingress and egress, no XDP; switching paths puts the new one on before taking the old off', () => {
    const progs = (): { xdp?: number; tcIn: number[]; tcOut: number[] } =>
      ({ xdp: xdpProgOn(netns, 'lbv0')?.id, tcIn: tcProgIds(netns, 'lbv0', 'ingress'), tcOut: tcEgressProgIds(netns, 'lbv0') });
    const ifindex = withNetns(netns, () => interfaceIndex('lbv0'));
    const pathOf = (): number | undefined => dp.maps.lb_ifaces.lookup(encodeU32(ifindex))?.readUInt32LE(0);
    expect(pathOf()).toBe(LB_PATH_XDP);
    const r = withNetns(netns, () => dp.attach('lbv0', { path: 'tc' }));
    expect(r).toMatchObject({ ifname: 'lbv0', path: 'tc', xdpMode: null, xdpChanged: true, tcChanged: true });
    expect(progs()).toEqual({ xdp: undefined, tcIn: [dp.programs.tc_ingress.id], tcOut: [dp.programs.tc.id] });
    expect(pathOf()).toBe(LB_PATH_TC);
    expect(withNetns(netns, () => dp.attachments()).find((a) => a.ifname === 'lbv0'))
      .toMatchObject({ path: 'tc', xdp: null, tcIngress: true, tc: true, stale: false });
    expect(withNetns(netns, () => dp.attach('lbv0', { path: 'tc' }))).toMatchObject({ xdpChanged: false, tcChanged: false });
    const back = withNetns(netns, () => dp.attach('lbv0', { path: 'xdp' }));
    expect(back).toMatchObject({ path: 'xdp', xdpMode: 'native', xdpChanged: true, tcChanged: true });
    expect(progs()).toEqual({ xdp: dp.programs.xdp.id, tcIn: [], tcOut: [dp.programs.tc.id] });
    expect(pathOf()).toBe(LB_PATH_XDP);
  });

  it('lb_tx_ports gets every interface but lo that can transmit XDP frames, and loses stale ones', () => {
    // lbv1's peer lbv0 runs native XDP (NAPI): lbv1 can take redirected frames. lbv0's peer has
    // neither XDP nor GRO, and an ifb has no XDP at all: a redirect there would be dropped.
    sh('ip', ['netns', 'exec', netns, 'ethtool', '-K', 'lbv1', 'gro', 'off']);
    const synced = withNetns(netns, () => dp.syncTxPorts());
    expect(synced.ports.map((p) => p.ifname)).toEqual(['lbv1']);
    expect(Object.fromEntries(synced.refused.map((r) => [r.ifname, r.reason]))).toEqual({
      lbv0: 'cannot transmit XDP frames (xdp_features without ndo-xmit)',
      lbi0: 'cannot transmit XDP frames (xdp_features without ndo-xmit)',
    });
    const idx = Object.fromEntries(synced.ports.map((p) => [p.ifname, p.ifindex]));
    expect([...dp.maps.lb_tx_ports.keys()].map(decodeU32)).toEqual([idx.lbv1]);
    // GRO on lbv1 gives lbv0 a receiver with NAPI: now it can take redirects too.
    sh('ip', ['netns', 'exec', netns, 'ethtool', '-K', 'lbv1', 'gro', 'on']);
    const both = withNetns(netns, () => dp.syncTxPorts());
    expect(both.ports.map((p) => p.ifname).sort()).toEqual(['lbv0', 'lbv1']);
    const narrowed = withNetns(netns, () => dp.setTxPorts(['lbv1', 'lo']));
    expect(narrowed.removed).toEqual([both.ports.find((p) => p.ifname === 'lbv0')!.ifindex]);
    expect([...dp.maps.lb_tx_ports.keys()].map(decodeU32)).toEqual([idx.lbv1]);
    sh('ip', ['netns', 'exec', netns, 'ethtool', '-K', 'lbv1', 'gro', 'off']);
  });

  it("another instance's program is never replaced", () => {
    const b = open({ instance: other, objectDir });
    expect(b.adopted).toBe(false);
    expect(withNetns(netns, () => b.attach('lbv1', { xdpMode: 'generic' }))).toMatchObject({ xdpMode: 'generic' });
    try {
      withNetns(netns, () => dp.attach('lbv1'));
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_BPF_ATTACH')).toBe(true);
      expect((err as LbError).data).toMatchObject({ ifname: 'lbv1' });
    }
    expect(xdpProgOn(netns, 'lbv1')?.id).toBe(b.programs.xdp.id);
    // Nor is the TC path put behind it: that XDP program would see every packet first. (Its TC
    // egress filter goes, so that only the XDP program stands in the way.)
    sh('tc', ['-n', netns, 'filter', 'del', 'dev', 'lbv1', 'egress']);
    expect(() => withNetns(netns, () => dp.attach('lbv1', { path: 'tc' })))
      .toThrow(expect.objectContaining({ code: 'LB_BPF_ATTACH', message: expect.stringMatching(/lbv1 already runs XDP program id \d+ \(generic\)/) }));
    expect(tcProgIds(netns, 'lbv1', 'ingress'), 'nothing of ours is left behind').toEqual([]);
    expect(tcEgressProgIds(netns, 'lbv1')).toEqual([]);
    const down = withNetns(netns, () => DataPlane.down(other));
    expect(down.detached).toEqual([{ ifname: 'lbv1', ifindex: expect.any(Number), xdp: true, tc: false }]);
    expect(xdpProgOn(netns, 'lbv1')).toBeUndefined();
    // our own attachments are untouched by the other instance going down
    expect(xdpProgOn(netns, 'lbv0')?.id).toBe(dp.programs.xdp.id);
  });

  it('reload loads new programs over the same maps; attach replaces the old ones atomically', () => {
    const ctlKey = encodeU32(0);
    const marker = Buffer.from('01000000070000000000000000000000', 'hex');
    dp.maps.lb_ctl.update(ctlKey, marker);
    const next = open({ instance, objectDir, reload: true });
    expect(next.adopted).toBe(false);
    expect(next.programs.xdp.id).not.toBe(dp.programs.xdp.id);
    for (const name of MAP_NAMES) expect(next.maps[name].id, name).toBe(dp.maps[name].id);
    expect(next.maps.lb_ctl.lookup(ctlKey)).toEqual(marker);
    const before = Object.fromEntries(withNetns(netns, () => next.attachments()).map((a) => [a.ifname, a]));
    expect(before.lbv0).toMatchObject({ xdp: null, tc: false, stale: true });
    const r = withNetns(netns, () => next.attach('lbv0'));
    expect(r).toMatchObject({ xdpMode: 'native', xdpChanged: true, tcChanged: true });
    expect(r.replacedProgIds.sort()).toEqual([dp.programs.xdp.id, dp.programs.tc.id].sort());
    expect(xdpProgOn(netns, 'lbv0')?.id).toBe(next.programs.xdp.id);
    expect(tcEgressProgIds(netns, 'lbv0')).toEqual([next.programs.tc.id]);
    expect(withNetns(netns, () => next.attach('lbi0'))).toMatchObject({ xdpMode: 'generic', xdpChanged: true });
    dp.close();
    dp = next;
  });

  it('detach removes our XDP program, TC filter and the emptied clsact qdisc; idempotent', () => {
    const r = withNetns(netns, () => dp.detach('lbv0'));
    expect(r).toMatchObject({ ifname: 'lbv0', xdp: true, tc: true });
    expect(xdpProgOn(netns, 'lbv0')).toBeUndefined();
    expect(sh('tc', ['-n', netns, 'qdisc', 'show', 'dev', 'lbv0'])).not.toMatch(/clsact/);
    expect(withNetns(netns, () => dp.detach('lbv0'))).toMatchObject({ xdp: false, tc: false });
  });

  it('down detaches everywhere in the namespace, unpins everything and is idempotent', () => {
    withNetns(netns, () => dp.attach('lbv0'));
    const res = withNetns(netns, () => DataPlane.down(instance));
    expect(res.detached.map((d) => d.ifname).sort()).toEqual(['lbi0', 'lbv0']);
    expect(res.unpinned).toEqual([...MAP_NAMES, ...PINS].sort());
    expect(res.removedDir).toBe(true);
    expect(existsSync(instanceDir(instance))).toBe(false);
    for (const dev of ['lbv0', 'lbv1', 'lbi0']) {
      expect(xdpProgOn(netns, dev), dev).toBeUndefined();
      expect(tcEgressProgIds(netns, dev), dev).toEqual([]);
    }
    expect(withNetns(netns, () => DataPlane.down(instance))).toEqual({ instance, detached: [], unpinned: [], removedDir: false });
  });
});
