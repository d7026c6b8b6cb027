// Byte order of every multi-byte field the control plane writes and the data plane reads
// (the original stored weights big-endian and read them little-endian; docs/design.md §1). Each value is
// chosen so that the byte-swapped reading gives a different packet outcome, the map bytes are
// compared with a layout written out by hand from lb_abi.h (__be* = network order, the rest host
// order, little-endian on x86-64 and arm64), and the packets' outcome proves the kernel reads them so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, LB_DIR_FORWARD, LB_LF_SRC_ROUTES, LB_MAX_GROUPS, encodeGroup, encodeListenerKey, encodeSettings,
  encodeSrcKey, encodeU32, groupIndex, installConfig, ipv4ToU32, readCtl, writeGeneration,
  type GroupTarget,
} from '../../src/dataplane/index.js';
import { chooseTarget, flowHash } from '../../src/core/flow-hash.js';
import {
  LO_IFINDEX, XDP_PASS, clearFlows, closeHarness, config, dnatSpec, expectHalfOpen, flowPair, monoNow, openHarness, predict,
  putFlows, readFlows, runFixture, secondsAgo, statDelta, tcpSpec, tgt, xdpRun,
  type Endpoint, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_ACK, TCP_SYN, buildFrame, parseFrame } from '../lib/packet.js';

const VIP = '10.100.0.1';
const LISTEN_PORT = 0x1f90; // 8080; swapped 0x901f = 36895
const LISTENER_ID = 0x0102; // 258; swapped (16 bit) 0x0201
const X = tgt('10.0.6.1', 0x1f91, 1, 0x0102); // weight 1, target id 258 (swapped 32-bit: 0x02010000, out of range)
const Y = tgt('10.0.6.2', 0x1f92, 256, 0x0103); // weight 256 = 0x100: swapped 0x00010000
const XY = [X, Y];
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ep = (addr: string, port: number): Endpoint => ({ addr, port });
const dstOf = (frame: Buffer): Endpoint => {
  const p = parseFrame(frame);
  return ep(p.ipv4!.dst, p.tcp!.dport);
};

let h: Harness | undefined;
beforeAll(() => { h = openHarness('bo'); });
afterAll(() => { closeHarness(h); });

const cfg = config({
  listeners: [{ vip: VIP, port: LISTEN_PORT, id: LISTENER_ID, group: 1, flags: LB_LF_SRC_ROUTES }],
  groups: { 1: XY, 2: [tgt('10.0.7.16', 9016, 1, 0x0116)], 3: [tgt('10.0.7.24', 9024, 1, 0x0124)], 4: [tgt('10.0.7.25', 9025, 1, 0x0125)] },
  routes: [
    { listenerId: LISTENER_ID, cidr: '192.168.0.0/16', group: 2 },
    { listenerId: LISTENER_ID, cidr: '192.168.1.0/24', group: 3 },
    { listenerId: LISTENER_ID, cidr: '192.168.1.0/25', group: 4 },
  ],
});

describe('weights: host order (1 and 256 would invert the split if swapped)', () => {
  it('lb_groups holds the hand-written layout', () => {
    const dp = h!.dp;
    const gen = installConfig(dp, cfg);
    const want = Buffer.alloc(1032);
    hex('02000000 01010000').copy(want, 0); // count 2, total_weight 257
    hex('01000000 01010000').copy(want, 8); // cum_weight 1, 257
    hex('0a000601 02010000 1f91 0000').copy(want, 264); // addr be, target_id host, port be
    hex('0a000602 03010000 1f92 0000').copy(want, 276);
    expect(encodeGroup({ targets: XY })).toEqual(want);
    expect(dp.maps.lb_groups.lookup(encodeU32(groupIndex(gen, 1)))).toEqual(want);
    expect(encodeU32(groupIndex(1, 1))).toEqual(hex('01400000')); // 1 * 16384 + 1, host order
    expect(LB_MAX_GROUPS).toBe(0x4000);
  });

  it('200 new flows: each lands where the host-order weights say, which the swapped reading would not', () => {
    const dp = h!.dp;
    installConfig(dp, cfg);
    clearFlows(dp);
    let toY = 0;
    let swappedDisagrees = 0;
    const before = { x: dp.readTargetStats(X.targetId), y: dp.readTargetStats(Y.targetId) };
    for (let i = 0; i < 200; i++) {
      const t = { saddr: `172.20.${i}.9`, daddr: VIP, sport: 30000 + i, dport: LISTEN_PORT, proto: IPPROTO_TCP };
      const got = dstOf(xdpRun(dp, buildFrame(tcpSpec(ep(t.saddr, t.sport), ep(VIP, LISTEN_PORT), TCP_SYN))));
      const want = predict(XY, t)!;
      expect(got).toEqual(ep(want.addr, want.port));
      if (want === Y) toY++;
      const hsh = flowHash({ ...t, saddr: ipv4ToU32(t.saddr), daddr: ipv4ToU32(t.daddr) });
      const swapped = chooseTarget(hsh, [0x01000000, 0x00010000]);
      if (XY[swapped] !== want) swappedDisagrees++;
    }
    // 256 of 257 residues belong to Y; read swapped, 256 of 257 would belong to X.
    expect(toY).toBeGreaterThanOrEqual(190);
    expect(swappedDisagrees).toBeGreaterThanOrEqual(180);
    expect(Number(dp.readTargetStats(Y.targetId).newFlows - before.y.newFlows)).toBe(toY);
    expect(Number(dp.readTargetStats(X.targetId).newFlows - before.x.newFlows)).toBe(200 - toY);
  });
});

describe('ports and addresses: network order', () => {
  it('the listener key is {ifindex host, vip be, port be, proto, gen} in the map', () => {
    const dp = h!.dp;
    const gen = installConfig(dp, cfg);
    const want = hex(`01000000 0a640001 1f90 06 0${gen}`);
    expect(encodeListenerKey({ ifindex: LO_IFINDEX, vip: VIP, port: LISTEN_PORT, proto: IPPROTO_TCP, gen })).toEqual(want);
    const keys = [...dp.maps.lb_listeners.keys()].filter((k) => k[11] === gen);
    expect(keys).toEqual([want]);
  });

  it('a packet to port 0x1f90 matches; to 0x901f (the swapped port) it does not', () => {
    const dp = h!.dp;
    installConfig(dp, cfg);
    clearFlows(dp);
    const hit = xdpRun(dp, buildFrame(tcpSpec(ep('172.21.0.1', 40000), ep(VIP, 0x1f90), TCP_SYN)));
    const p = parseFrame(hit);
    expect([X.addr, Y.addr]).toContain(p.ipv4!.dst);
    // backend ports 0x1f91 / 0x1f92 sit on the wire high byte first
    expect(hit.subarray(p.tcp!.offset + 2, p.tcp!.offset + 4)).toEqual(p.ipv4!.dst === X.addr ? hex('1f91') : hex('1f92'));
    const s0 = dp.readStats();
    const miss = buildFrame(tcpSpec(ep('172.21.0.1', 40001), ep(VIP, 0x901f), TCP_SYN));
    expect(xdpRun(dp, miss)).toEqual(miss);
    expect(statDelta(s0, dp.readStats()).not_listener).toBe(1);
  });

  it('a packet to the byte-swapped VIP (1.0.100.10) does not match', () => {
    const dp = h!.dp;
    installConfig(dp, cfg);
    const s0 = dp.readStats();
    const miss = buildFrame(tcpSpec(ep('172.21.0.1', 40002), ep('1.0.100.10', LISTEN_PORT), TCP_SYN));
    expect(xdpRun(dp, miss)).toEqual(miss);
    expect(statDelta(s0, dp.readStats()).not_listener).toBe(1);
  });

  it('lb_flows key and value bytes: addresses and ports be, target_id and last_seen host', () => {
    const dp = h!.dp;
    installConfig(dp, cfg);
    clearFlows(dp);
    const client = ep('172.21.1.1', 0xa1b2);
    const t = { saddr: client.addr, daddr: VIP, sport: client.port, dport: LISTEN_PORT, proto: IPPROTO_TCP };
    const to = predict(XY, t)!;
    const t0 = monoNow();
    // A mid-stream ACK: its flow goes to lb_flows at once (a SYN's would be half-open, same layout).
    xdpRun(dp, buildFrame(tcpSpec(client, ep(VIP, LISTEN_PORT), TCP_ACK)));
    const raw = [...dp.maps.lb_flows.entries()];
    const fwdKey = hex('ac150101 0a640001 a1b2 1f90 06 000000');
    const fwd = raw.find(([k]) => k.equals(fwdKey));
    expect(fwd, 'forward key as hand-written').toBeDefined();
    const v = fwd![1];
    expect(v.readBigUInt64LE(0) >= t0 - 5_000_000n).toBe(true); // last_seen, host order
    expect(v.subarray(8, 12)).toEqual(Buffer.from(to.addr.split('.').map(Number)));
    expect(v.subarray(12, 16)).toEqual(to === X ? hex('02010000') : hex('03010000'));
    expect(v.subarray(16, 18)).toEqual(to === X ? hex('1f91') : hex('1f92'));
    expect([v[18], v[19]]).toEqual([LB_DIR_FORWARD, 0]);
    const revKey = Buffer.concat([Buffer.from(to.addr.split('.').map(Number)), hex('ac150101'), to === X ? hex('1f91') : hex('1f92'), hex('a1b2 06 000000')]);
    expect(raw.some(([k]) => k.equals(revKey)), 'reverse key as hand-written').toBe(true);
    expect(readFlows(dp).length).toBe(2);
  });
});

describe('LPM source-route keys: prefixlen and scope host order, address be', () => {
  it('the /24 key is {56 host, (gen << 31 | 258) host, c0a80100} in the map', () => {
    const dp = h!.dp;
    const gen = installConfig(dp, cfg);
    const scope = Buffer.alloc(4);
    scope.writeUInt32LE(((gen << 31) | LISTENER_ID) >>> 0);
    const want = Buffer.concat([hex('38000000'), scope, hex('c0a80100')]);
    expect(encodeSrcKey({ gen, listenerId: LISTENER_ID, addr: '192.168.1.0', prefixLen: 24 })).toEqual(want);
    expect([...dp.maps.lb_src_routes.keys()].some((k) => k.equals(want))).toBe(true);
  });

  it('a byte-swapped prefix length is refused by the kernel (it reads host order)', () => {
    const swapped = Buffer.concat([hex('00000038'), hex('02010000'), hex('c0a80100')]);
    expect(() => h!.dp.maps.lb_src_routes.update(swapped, encodeU32(3))).toThrow(expect.objectContaining({ code: 'LB_BPF_MAP' }));
  });

  const routeCase = (client: string, want: GroupTarget, why: string): void => {
    it(`${client} -> ${want.addr} (${why})`, () => {
      const c = ep(client, 41000);
      const spec = tcpSpec(c, ep(VIP, LISTEN_PORT), TCP_SYN);
      const input = buildFrame(spec);
      runFixture(h!, {
        description: why, setup: { config: cfg }, input, verdict: XDP_PASS,
        output: buildFrame(dnatSpec(spec, want)),
        counters: { xdp_rx: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
        targets: { [want.targetId]: { packets: 1, bytes: input.length - 14, newFlows: 1 } },
        flows: expectHalfOpen(flowPair(c, ep(VIP, LISTEN_PORT), want, IPPROTO_TCP, want.targetId)),
      });
    });
  };
  routeCase('192.168.1.5', cfg.groups.find((g) => g.id === 4)!.group.targets[0]!, '/25 is the longest match');
  routeCase('192.168.1.200', cfg.groups.find((g) => g.id === 3)!.group.targets[0]!, 'outside the /25, inside the /24');
  routeCase('192.168.7.7', cfg.groups.find((g) => g.id === 2)!.group.targets[0]!, 'only the /16');
  routeCase('192.169.0.1', predict(XY, { saddr: '192.169.0.1', daddr: VIP, sport: 41000, dport: LISTEN_PORT, proto: IPPROTO_TCP })!, 'no route: default group');
});

describe('settings and the generation index: host order', () => {
  const settingsCase = (tcpIdleSec: number, expired: boolean, rawHex: string): void => {
    it(`tcp_idle_sec 0x${tcpIdleSec.toString(16)} (bytes ${rawHex}): a flow idle 10 s ${expired ? 'expires' : 'stays'}`, () => {
      const dp = h!.dp;
      const gen = installConfig(dp, { ...cfg, settings: { ...cfg.settings, tcpIdleSec } });
      expect(dp.maps.lb_settings.lookup(encodeU32(gen))!.subarray(0, 4)).toEqual(hex(rawHex));
      expect(encodeSettings({ tcpIdleSec, udpIdleSec: 0, tcpFinSec: 0, flags: 0 }).subarray(0, 4)).toEqual(hex(rawHex));
      clearFlows(dp);
      const c = ep('172.22.0.1', 42000);
      const old = tgt('10.0.6.99', 8099, 1, 0x0199);
      putFlows(dp, flowPair(c, ep(VIP, LISTEN_PORT), old, IPPROTO_TCP, old.targetId, { lastSeenNs: secondsAgo(10) }));
      const s0 = dp.readStats();
      const out = dstOf(xdpRun(dp, buildFrame(tcpSpec(c, ep(VIP, LISTEN_PORT), TCP_ACK))));
      expect(statDelta(s0, dp.readStats()).ct_expired).toBe(expired ? 1 : 0);
      if (expired) expect(out.addr).not.toBe(old.addr);
      else expect(out).toEqual(ep(old.addr, old.port));
    });
  };
  settingsCase(2, true, '02000000'); // read big-endian: 2^25 s, would never expire
  settingsCase(0x01000000, false, '00000001'); // read big-endian: 1 s, would expire

  it('lb_ctl.active_gen is host order: bytes 01000000 select generation 1, 00000001 generation 0', () => {
    const dp = h!.dp;
    clearFlows(dp);
    const only1 = config({ listeners: [{ vip: VIP, port: 7777, id: 5, group: 1 }], groups: { 1: XY } });
    const empty = config({ listeners: [], groups: {} });
    writeGeneration(dp, 1, only1);
    writeGeneration(dp, 0, empty);
    const frame = buildFrame(tcpSpec(ep('172.23.0.1', 43000), ep(VIP, 7777), TCP_SYN));
    dp.maps.lb_ctl.update(encodeU32(0), hex('01000000 09000000 00000000 00000000'));
    expect(readCtl(dp)).toEqual({ activeGen: 1, serial: 9 });
    expect([X.addr, Y.addr]).toContain(dstOf(xdpRun(dp, frame)).addr);
    clearFlows(dp);
    dp.maps.lb_ctl.update(encodeU32(0), hex('00000001 0a000000 00000000 00000000'));
    expect(xdpRun(dp, frame)).toEqual(frame); // generation 0: no listener
    dp.maps.lb_ctl.update(encodeU32(0), hex('00000000 0b000000 00000000 00000000'));
  });
});
