// Weighted choice through the real program: 10,000 new flows (distinct client addresses and
// ports) over weights 50/30/20, each one SYN through lb_xdp_ingress with BPF_PROG_TEST_RUN.
// The shares (counted twice: lb_tstats new_flows and the output packets' destinations) must be
// within 3 percentage points of the weights, and every single flow must land on the backend the
// TypeScript mirror predicts, which proves flowHash/chooseTarget bit-identical to hash.h.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_LF_PERSIST, LB_MAX_TARGETS } from '../../src/dataplane/index.js';
import {
  XDP_PASS, clearFlows, closeHarness, config, install, openHarness, predict, statDelta, tcpSpec, tgt, udpSpec,
  type Endpoint, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_SYN, buildFrame, verifyChecksums } from '../lib/packet.js';

const FLOWS = 10_000;
const VIP = '10.100.0.1';
const TARGETS = [tgt('10.0.8.1', 8080, 50, 81), tgt('10.0.8.2', 8080, 30, 82), tgt('10.0.8.3', 8080, 20, 83)];
const ep = (addr: string, port: number): Endpoint => ({ addr, port });
/** Client i: a distinct address in 172.16.0.0/12 and a distinct port. */
const clientOf = (i: number): Endpoint => ep(`172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, 1024 + ((i * 7919) % 64000));

let h: Harness | undefined;
beforeAll(() => { h = openHarness('wc'); });
afterAll(() => { closeHarness(h); });

describe('weighted choice over 50/30/20', () => {
  it(`${FLOWS} TCP flows: shares within 3 points, every flow on its predicted backend`, () => {
    const dp = h!.dp;
    install(dp, config({ listeners: [{ vip: VIP, port: 443, id: 1, group: 1 }], groups: { 1: TARGETS } }));
    clearFlows(dp);
    const s0 = dp.readStats();
    const t0 = TARGETS.map((t) => dp.readTargetStats(t.targetId));
    const byDst = new Map<string, number>();
    const mismatches: string[] = [];
    let badChecksums = 0;
    for (let i = 0; i < FLOWS; i++) {
      const c = clientOf(i);
      const res = dp.testRun('xdp', buildFrame(tcpSpec(c, ep(VIP, 443), TCP_SYN)), { ifindex: 1 });
      if (res.retval !== XDP_PASS) throw new Error(`flow ${i}: verdict ${res.retval}`);
      const dst = `${res.data[30]}.${res.data[31]}.${res.data[32]}.${res.data[33]}`;
      byDst.set(dst, (byDst.get(dst) ?? 0) + 1);
      const want = predict(TARGETS, { saddr: c.addr, daddr: VIP, sport: c.port, dport: 443, proto: IPPROTO_TCP })!;
      if (want.addr !== dst && mismatches.length < 5) mismatches.push(`${c.addr}:${c.port} -> ${dst}, predicted ${want.addr}`);
      if (i % 97 === 0 && !verifyChecksums(res.data).ok) badChecksums++;
    }
    expect(mismatches).toEqual([]);
    expect(badChecksums).toBe(0);

    const d = statDelta(s0, dp.readStats());
    expect(d).toMatchObject({ xdp_rx: FLOWS, ct_new: FLOWS, ho_new: FLOWS, fib_pass: FLOWS, ct_hit: 0, no_target: 0 });
    const newFlows = TARGETS.map((t, i) => Number(dp.readTargetStats(t.targetId).newFlows - t0[i]!.newFlows));
    expect(newFlows.reduce((a, b) => a + b, 0)).toBe(FLOWS);
    TARGETS.forEach((t, i) => {
      const share = (100 * newFlows[i]!) / FLOWS;
      expect(Math.abs(share - t.weight), `${t.addr}: ${share.toFixed(2)}% of new flows (lb_tstats), weight ${t.weight}`).toBeLessThanOrEqual(3);
      expect(byDst.get(t.addr), `${t.addr}: output packets agree with lb_tstats`).toBe(newFlows[i]);
    });
    expect([...byDst.keys()].sort()).toEqual(TARGETS.map((t) => t.addr).sort());
    // SYNs: every flow is half-open (bpf/lib/halfopen.h)
    expect(dp.maps.lb_halfopen.lookupBatch(4096).length).toBe(2 * FLOWS);
  });

  it('64 targets with runs of weight 0 (equal cumulative weights): the binary search agrees with the TS scan on 4,000 flows', () => {
    const dp = h!.dp;
    // weights 0,1,2,3,0,0,5,... : consecutive zeros give equal cum_weight neighbours, the case a
    // binary search for "first cum_weight > r" gets wrong when it stops on the first equal one
    const weights = Array.from({ length: LB_MAX_TARGETS }, (_, i) => (i % 7 === 4 || i % 7 === 5 || i === 0 || i === 63 ? 0 : 1 + (i * 37) % 11));
    const group = weights.map((w, i) => tgt(`10.0.9.${i + 1}`, 7000 + i, w, 300 + i));
    install(dp, config({ listeners: [{ vip: VIP, port: 8443, id: 1, group: 1 }], groups: { 1: group } }));
    clearFlows(dp);
    const hits = new Array<number>(LB_MAX_TARGETS).fill(0);
    const mismatches: string[] = [];
    for (let i = 0; i < 4000; i++) {
      const c = clientOf(100_000 + i);
      const out = dp.testRun('xdp', buildFrame(tcpSpec(c, ep(VIP, 8443), TCP_SYN)), { ifindex: 1 }).data;
      const idx = out[33]! - 1;
      hits[idx] = (hits[idx] ?? 0) + 1;
      const want = predict(group, { saddr: c.addr, daddr: VIP, sport: c.port, dport: 8443, proto: IPPROTO_TCP })!;
      if (want !== group[idx] && mismatches.length < 5) mismatches.push(`${c.addr}:${c.port} -> target ${idx}, predicted ${group.indexOf(want)}`);
    }
    expect(mismatches).toEqual([]);
    weights.forEach((w, i) => { if (w === 0) expect(hits[i], `target ${i} has weight 0`).toBe(0); });
    expect(hits.filter((n, i) => n > 0 && weights[i]! > 0).length).toBeGreaterThan(40);
  });

  it('UDP flows and the persistence hash follow the TS prediction too (2,000 flows each)', () => {
    const dp = h!.dp;
    install(dp, config({
      listeners: [
        { vip: VIP, port: 53, proto: IPPROTO_UDP, id: 1, group: 1 },
        { vip: VIP, port: 443, id: 2, group: 1, flags: LB_LF_PERSIST },
      ],
      groups: { 1: TARGETS },
    }));
    clearFlows(dp);
    const mismatches: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const c = clientOf(50_000 + i);
      for (const [spec, proto, persist] of [
        [udpSpec(c, ep(VIP, 53)), IPPROTO_UDP, false],
        [tcpSpec(c, ep(VIP, 443), TCP_SYN), IPPROTO_TCP, true],
      ] as const) {
        const out = dp.testRun('xdp', buildFrame(spec), { ifindex: 1 }).data;
        const dst = `${out[30]}.${out[31]}.${out[32]}.${out[33]}`;
        const dport = proto === IPPROTO_UDP ? 53 : 443;
        const want = predict(TARGETS, { saddr: c.addr, daddr: VIP, sport: c.port, dport, proto }, persist)!;
        if (want.addr !== dst && mismatches.length < 5) mismatches.push(`${proto} ${c.addr}:${c.port} -> ${dst}, predicted ${want.addr}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});
