// The two configuration generations (src/dataplane/generation.ts): installConfig writes the
// inactive generation and flips lb_ctl; readGeneration decodes what is in the maps;
// writeGeneration replaces a generation's whole content (stale listeners, routes, groups and
// Maglev tables go); and packets consult only the active generation: listeners, groups, Maglev
// tables, source routes and settings.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAGLEV_SIZE, LB_MAX_GROUPS, LB_MAX_TARGETS, decodeListenerKey,
  decodeSrcKey, encodeU32, flipTo, groupIndex, installConfig, readCtl, readGeneration, readGenerationRaw, writeGeneration,
  type DataPlane, type GenerationConfig,
} from '../../src/dataplane/index.js';
import {
  XDP_DROP, XDP_PASS, clearFlows, closeHarness, config, flowPair, openHarness, predict, predictMaglev, putFlows, secondsAgo, statDelta,
  tcpSpec, tgt, xdpRun,
  type Endpoint, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_ACK, TCP_SYN, buildFrame, parseFrame } from '../lib/packet.js';

const VIP = '10.100.0.1';
const ep = (addr: string, port: number): Endpoint => ({ addr, port });

/** Order-insensitive form of a GenerationConfig (the maps have no order). */
function canonical(cfg: GenerationConfig): GenerationConfig {
  const by = <T>(f: (x: T) => string) => (a: T, b: T): number => f(a).localeCompare(f(b));
  return {
    settings: cfg.settings,
    listeners: [...cfg.listeners].sort(by((l) => JSON.stringify(l.key))),
    groups: [...cfg.groups].sort((a, b) => a.id - b.id),
    srcRoutes: [...cfg.srcRoutes].sort(by((r) => `${r.listenerId} ${r.addr} ${r.prefixLen}`)),
    maglev: [...(cfg.maglev ?? [])].sort((a, b) => a.group - b.group),
  };
}

const BIG = config({
  listeners: [
    { vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES },
    { vip: VIP, port: 53, proto: IPPROTO_UDP, id: 2, group: 2 },
    { vip: '0.0.0.0', port: 443, id: 3, group: 3, flags: LB_LF_PERSIST },
    { ifindex: 77, vip: '10.100.0.2', port: 8443, id: 4, group: 4 },
  ],
  groups: {
    1: [tgt('10.0.0.1', 8080, 5, 1), tgt('10.0.0.2', 8080, 0, 2), tgt('10.0.0.3', 8080, 65535, 3)],
    2: [tgt('10.0.1.1', 5353, 1, 4)],
    3: Array.from({ length: LB_MAX_TARGETS }, (_, i) => tgt(`10.0.2.${i + 1}`, 9000 + i, i, 100 + i)),
    4: [tgt('10.0.3.1', 8443, 7, 5)],
    [LB_MAX_GROUPS - 1]: [tgt('10.0.4.1', 1, 1, 6)],
  },
  routes: [
    { listenerId: 1, cidr: '192.168.0.0/16', group: 2 },
    { listenerId: 1, cidr: '192.168.1.0/24', group: 4 },
    { listenerId: 1, cidr: '10.1.2.3/32', group: 4 },
    { listenerId: 1, cidr: '0.0.0.0/0', group: 1 },
  ],
  settings: { tcpIdleSec: 120, udpIdleSec: 30, tcpFinSec: 5, flags: 0 },
  maglev: [3, LB_MAX_GROUPS - 1],
});

const SMALL = config({
  listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES }],
  groups: { 1: [tgt('10.0.0.9', 8080, 1, 9)] },
  routes: [{ listenerId: 1, cidr: '192.168.1.0/24', group: 1 }],
  settings: { tcpIdleSec: 60, udpIdleSec: 0, tcpFinSec: 0, flags: 0 },
});

let h: Harness | undefined;
let dp: DataPlane;
beforeAll(() => {
  h = openHarness('gen');
  dp = h.dp;
});
afterAll(() => { closeHarness(h); });

/** Every raw entry of one generation, for "untouched" comparisons. */
function snapshot(gen: number): string {
  const raw = readGenerationRaw(dp, gen);
  const hex = (rows: Array<[Buffer, Buffer]>): string[] => rows.map(([k, v]) => `${k.toString('hex')}=${v.toString('hex')}`).sort();
  return JSON.stringify({ settings: raw.settings.toString('hex'), listeners: hex(raw.listeners), groups: hex(raw.groups), routes: hex(raw.srcRoutes), maglev: hex(raw.maglev) });
}

describe('installConfig, readGeneration, writeGeneration', () => {
  it('a fresh instance is generation 0, serial 0, both generations empty', () => {
    expect(readCtl(dp)).toEqual({ activeGen: 0, serial: 0 });
    for (const gen of [0, 1]) {
      expect(readGeneration(dp, gen)).toEqual({ settings: { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0, flags: 0 }, listeners: [], groups: [], srcRoutes: [], maglev: [] });
    }
  });

  it('installConfig writes the inactive generation, then flips to it (serial bumped); the other generation is kept', () => {
    const before0 = snapshot(0);
    expect(installConfig(dp, BIG)).toBe(1);
    expect(readCtl(dp)).toEqual({ activeGen: 1, serial: 1 });
    expect(canonical(readGeneration(dp, 1))).toEqual(canonical(BIG));
    expect(snapshot(0)).toBe(before0);

    const before1 = snapshot(1);
    expect(installConfig(dp, SMALL)).toBe(0);
    expect(readCtl(dp)).toEqual({ activeGen: 0, serial: 2 });
    expect(canonical(readGeneration(dp, 0))).toEqual(canonical(SMALL));
    expect(snapshot(1)).toBe(before1); // the previous config stays for an instant rollback
  });

  it('readGeneration round-trips every field (flags, any-address, other interfaces, 64 targets, weight 0 and 65535, the last group index, /0 and /32, Maglev tables)', () => {
    writeGeneration(dp, 1, BIG);
    const back = readGeneration(dp, 1);
    expect(canonical(back)).toEqual(canonical(BIG));
    writeGeneration(dp, 1, back); // what was read writes back to the same bytes
    expect(canonical(readGeneration(dp, 1))).toEqual(canonical(BIG));
  });

  it('writeGeneration removes stale listeners, source routes and groups, and touches only its generation', () => {
    writeGeneration(dp, 1, BIG);
    const other = snapshot(0);
    writeGeneration(dp, 1, SMALL);
    expect(canonical(readGeneration(dp, 1))).toEqual(canonical(SMALL));
    expect(snapshot(0)).toBe(other);
    // raw: nothing of generation 1 beyond SMALL is left in any map
    expect([...dp.maps.lb_listeners.keys()].map(decodeListenerKey).filter((k) => k.gen === 1)).toEqual([
      { ifindex: 1, vip: VIP, port: 80, proto: IPPROTO_TCP, gen: 1 },
    ]);
    expect([...dp.maps.lb_src_routes.keys()].map(decodeSrcKey).filter((k) => k.gen === 1))
      .toEqual([{ gen: 1, listenerId: 1, addr: '192.168.1.0', prefixLen: 24 }]);
    for (const id of [2, 3, 4, LB_MAX_GROUPS - 1]) {
      expect(dp.maps.lb_groups.lookup(encodeU32(groupIndex(1, id)))!.equals(Buffer.alloc(1032)), `group ${id} cleared`).toBe(true);
    }
    // lb_maglev is a hash: the tables of generation 1 are deleted, generation 0's are not touched
    expect([...dp.maps.lb_maglev.keys()].map((k) => k.readUInt32LE(0)).filter((i) => i >= LB_MAX_GROUPS)).toEqual([]);
    // and back to BIG: everything re-added
    writeGeneration(dp, 1, BIG);
    expect(canonical(readGeneration(dp, 1))).toEqual(canonical(BIG));
  });

  it('a Maglev table reads back byte for byte, LB_MAGLEV_SIZE slots, keyed like the group', () => {
    writeGeneration(dp, 1, BIG);
    const table = BIG.maglev!.find((m) => m.group === 3)!.table;
    expect(table.length).toBe(LB_MAGLEV_SIZE);
    expect(dp.maps.lb_maglev.lookup(encodeU32(groupIndex(1, 3)))!.equals(table)).toBe(true);
    // weight-0 target 0 of group 3 owns no slot
    expect(table.includes(0)).toBe(false);
  });

  it('writeGeneration refuses a generation other than 0 or 1', () => {
    for (const gen of [-1, 2, 0.5]) expect(() => writeGeneration(dp, gen, SMALL)).toThrow(RangeError);
  });

  it('an empty group reads back as absent: to the data plane both mean "no target" (new flows are dropped)', () => {
    const cfg = config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 3 }], groups: { 3: [] } });
    const gen = installConfig(dp, cfg);
    expect(readGeneration(dp, gen).groups).toEqual([]);
    clearFlows(dp);
    const s0 = dp.readStats();
    xdpRun(dp, buildFrame(tcpSpec(ep('172.16.0.1', 1000), ep(VIP, 80), TCP_SYN)), XDP_DROP);
    expect(statDelta(s0, dp.readStats()).no_target).toBe(1);
  });

  it('a source route written with host bits set over the same prefix survives the rewrite of its generation', () => {
    // Generation g holds 192.168.1.0/24; the next config names the same prefix as 192.168.1.5/24.
    // The LPM trie treats both keys as one prefix: the update replaces the node, and deleting the
    // "stale" old key must not delete the route that was just written.
    const g = 1 - readCtl(dp).activeGen;
    const withRoute = (addr: string): GenerationConfig => config({
      listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES }],
      groups: { 1: [tgt('10.0.0.1', 8080, 1, 1)], 2: [tgt('10.0.0.2', 8080, 1, 2)] },
      routes: [{ listenerId: 1, cidr: `${addr}/24`, group: 2 }],
    });
    writeGeneration(dp, g, withRoute('192.168.1.0'));
    writeGeneration(dp, g, withRoute('192.168.1.5'));
    flipTo(dp, g);
    clearFlows(dp);
    const out = xdpRun(dp, buildFrame(tcpSpec(ep('192.168.1.20', 1000), ep(VIP, 80), TCP_SYN)));
    expect(parseFrame(out).ipv4!.dst, 'a client of 192.168.1.0/24 follows its source route').toBe('10.0.0.2');
    expect(readGeneration(dp, g).srcRoutes.map((r) => `${r.prefixLen} -> ${r.group}`)).toEqual(['24 -> 2']);
  });
});

describe('packets consult only the active generation', () => {
  const client = ep('192.168.1.20', 40000);
  const syn = (port = 80, c = client): Buffer => buildFrame(tcpSpec(c, ep(VIP, port), TCP_SYN));
  const dstOf = (frame: Buffer): string => parseFrame(frame).ipv4!.dst;

  // Same group ids, same listener id, different contents in each generation.
  const GEN_A = config({
    listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES }],
    groups: { 1: [tgt('10.0.10.1', 8080, 1, 201)], 2: [tgt('10.0.10.2', 8080, 1, 202)] },
    routes: [],
  });
  const GEN_B = config({
    listeners: [
      { vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES },
      { vip: VIP, port: 90, id: 2, group: 1 },
    ],
    groups: { 1: [tgt('10.0.11.1', 8080, 1, 211)], 2: [tgt('10.0.11.2', 8080, 1, 212)] },
    routes: [{ listenerId: 1, cidr: '192.168.1.0/24', group: 2 }],
    settings: { tcpIdleSec: 1, udpIdleSec: 0, tcpFinSec: 0, flags: 0 },
  });

  it('the inactive generation is written, but packets still see only the active one', () => {
    const active = installConfig(dp, GEN_A);
    writeGeneration(dp, 1 - active, GEN_B);
    expect(readCtl(dp).activeGen).toBe(active);
    clearFlows(dp);
    const s0 = dp.readStats();
    // not the inactive generation's source route, nor its group 1: the active default group
    expect(dstOf(xdpRun(dp, syn()))).toBe('10.0.10.1');
    // not the inactive generation's listener
    const other = syn(90);
    expect(xdpRun(dp, other, XDP_PASS)).toEqual(other);
    expect(statDelta(s0, dp.readStats())).toMatchObject({ ct_new: 1, not_listener: 1 });
  });

  it('the inactive generation\'s settings do not apply: an idle flow is kept under the active timeouts', () => {
    clearFlows(dp);
    const c = ep('172.16.1.1', 40001);
    const old = tgt('10.0.12.1', 8080, 1, 221);
    putFlows(dp, flowPair(c, ep(VIP, 80), old, IPPROTO_TCP, old.targetId, { lastSeenNs: secondsAgo(10) }));
    const ack = buildFrame(tcpSpec(c, ep(VIP, 80), TCP_ACK));
    expect(dstOf(xdpRun(dp, ack))).toBe(old.addr); // gen A: default 300 s
    flipTo(dp, 1 - readCtl(dp).activeGen);
    putFlows(dp, flowPair(c, ep(VIP, 80), old, IPPROTO_TCP, old.targetId, { lastSeenNs: secondsAgo(10) }));
    expect(dstOf(xdpRun(dp, ack))).not.toBe(old.addr); // gen B: tcp_idle_sec 1, expired
  });

  it('after the flip: the new listener, source route and groups apply; flipping back rolls back', () => {
    clearFlows(dp);
    expect(dstOf(xdpRun(dp, syn()))).toBe('10.0.11.2'); // gen B's source route to its group 2
    expect(dstOf(xdpRun(dp, syn(90)))).toBe('10.0.11.1'); // gen B's listener on port 90
    expect(dstOf(xdpRun(dp, syn(80, ep('10.20.0.1', 1))))).toBe('10.0.11.1'); // gen B's default group
    flipTo(dp, 1 - readCtl(dp).activeGen);
    clearFlows(dp);
    expect(dstOf(xdpRun(dp, syn()))).toBe('10.0.10.1');
    const other = syn(90);
    expect(xdpRun(dp, other)).toEqual(other);
  });

  it('established flows survive a flip that changes their group (conntrack is not generational)', () => {
    clearFlows(dp);
    const c = ep('10.30.0.1', 5555);
    const first = dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, 80), TCP_SYN))));
    flipTo(dp, 1 - readCtl(dp).activeGen);
    expect(dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, 80), TCP_ACK))))).toBe(first);
    expect(predict(GEN_B.groups[0]!.group.targets, { saddr: c.addr, daddr: VIP, sport: c.port, dport: 80, proto: IPPROTO_TCP })!.addr).not.toBe(first);
  });

  it('a source route naming a group index >= LB_MAX_GROUPS never reaches into the other generation', () => {
    // Generation 0 active: installConfig writes the inactive one and flips, so twice if needed.
    if (installConfig(dp, GEN_B) !== 0) installConfig(dp, GEN_B);
    expect(readCtl(dp).activeGen).toBe(0);
    writeGeneration(dp, 1, GEN_A); // generation 1's group 1: 10.0.10.1
    // gen 0 * LB_MAX_GROUPS + (LB_MAX_GROUPS + 1) is generation 1's group 1, were the index not checked
    const key = [...dp.maps.lb_src_routes.keys()].find((k) => decodeSrcKey(k).gen === 0)!;
    dp.maps.lb_src_routes.update(key, encodeU32(LB_MAX_GROUPS + 1));
    clearFlows(dp);
    const s0 = dp.readStats();
    const frame = syn();
    expect(xdpRun(dp, frame, XDP_DROP)).toEqual(frame);
    expect(statDelta(s0, dp.readStats())).toMatchObject({ no_target: 1, ct_new: 0 });
  });

  it('only the active generation\'s Maglev table is used; a flip switches tables with the groups', () => {
    const targets = [tgt('10.0.13.1', 8080, 1, 231), tgt('10.0.13.2', 8080, 1, 232), tgt('10.0.13.3', 8080, 1, 233)];
    const persist = (maglev: number[]): GenerationConfig => config({
      listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST }], groups: { 1: targets }, maglev,
    });
    // A client whose table choice differs from the cumulative choice over the same hash.
    const c = [...Array(200).keys()].map((i) => ep(`172.19.0.${i + 1}`, 1000))
      .find((x) => predictMaglev(targets, x.addr) !== predict(targets, { saddr: x.addr, daddr: VIP, sport: 0, dport: 80, proto: IPPROTO_TCP }, true))!;
    const cumulative = predict(targets, { saddr: c.addr, daddr: VIP, sport: 0, dport: 80, proto: IPPROTO_TCP }, true)!.addr;
    const gen = installConfig(dp, persist([]));
    writeGeneration(dp, 1 - gen, persist([1]));
    clearFlows(dp);
    expect(dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, 80), TCP_SYN))))).toBe(cumulative);
    flipTo(dp, 1 - gen);
    clearFlows(dp);
    expect(dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, 80), TCP_SYN))))).toBe(predictMaglev(targets, c.addr)!.addr);
    flipTo(dp, gen);
    clearFlows(dp);
    expect(dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, 80), TCP_SYN))))).toBe(cumulative);
  });

  it('a corrupt active_gen still names a generation (its low bit)', () => {
    clearFlows(dp);
    const gen = installConfig(dp, GEN_B); // listener on port 90 only here
    const raw = Buffer.alloc(16);
    raw.writeUInt32LE(gen + 2, 0);
    raw.writeUInt32LE(99, 4);
    dp.maps.lb_ctl.update(encodeU32(0), raw);
    expect(dstOf(xdpRun(dp, syn(90)))).toBe('10.0.11.1');
    raw.writeUInt32LE(gen, 0);
    dp.maps.lb_ctl.update(encodeU32(0), raw);
  });
});
