// What the rate limits (bpf/lib/ratelimit.h) cost lb's XDP program, from BPF_PROG_TEST_RUN:
// - the conntrack-hit path with limits configured against the same path without: established
//   flows never read a bucket, so the two should be equal within noise. Measured as in
//   test-run.ts (a suite-only listener b1:9000 -> {b1:9000}, a primed flow, batches of 250 runs
//   from TTL 255), in blocks without / with / without / with limits.
// - the new-flow path (listener, weighted choice, both conntrack entries, DNAT, FIB, redirect)
//   with both limits on (a per-source bucket and a per-backend bucket taken per flow) against
//   none. A new flow happens once per frame, so each call runs one frame (repeat 1) with a flow of
//   its own (source ports of several source addresses: more flows than one address has ports);
//   the settings cycle between consecutive calls, and the order within a cycle rotates from one
//   cycle to the next, so every setting takes every position equally often (a call's cost depends
//   on what ran just before it). The figures are per-call differences against the no-limit call
//   of the same cycle: their median, and their mean with the top and bottom 10% trimmed (a
//   preempted call costs microseconds). The limits are high enough that no flow is refused.

import { encodeSettings, encodeU32, installConfig, readCtl, type GenerationConfig } from '../src/dataplane/index.js';
import { BENCH_UDP_PORT } from './lib/bpf.js';
import { BenchError } from './lib/errors.js';
import { udpFrame } from './lib/frame.js';
import { median, spread } from './lib/stats.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const XDP_REDIRECT = 4;
const BATCH = 250;
const BLOCKS = 4;
/** High enough that no new flow of the suite is refused, so both paths do the same work besides the buckets. */
const LIMIT = { rate: 4_000_000_000, burst: 4_000_000_000 };

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const env = await ctx.env();
  const calls = ctx.options.testRunCalls;
  /** Flows per source address (ports 1024..61023), and addresses: enough for newFlowCalls. */
  const PORTS = 60_000;
  const newFlowCalls = Math.min(calls * 2000, 160_000);
  const c = env.client;
  const b1 = env.backends[0]!;
  const ifindex = env.lbIn.ifindex;
  const frame = (dst: string, sport: number, src = c.address): Buffer => udpFrame({
    srcMac: c.iface.mac, dstMac: c.lbIface.mac, src, dst, sport, dport: BENCH_UDP_PORT, ttl: 255,
  });
  /** The i-th new flow's source: the client's address first, then 10.201.250.x (lb matches by destination). */
  const newFlowFrame = (i: number): Buffer => frame(env.vip, 1024 + (i % PORTS), i < PORTS ? c.address : `10.201.250.${Math.floor(i / PORTS)}`);
  const hit = frame(b1.address, 40000);

  const base = env.lbConfig();
  const hitCfg: GenerationConfig = {
    ...base,
    listeners: [...base.listeners, { key: { ifindex, vip: b1.address, port: BENCH_UDP_PORT, proto: 17 }, value: { listenerId: 9, defaultGroup: 9, flags: 0 } }],
    groups: [...base.groups, { id: 9, group: { targets: [{ addr: b1.address, port: BENCH_UDP_PORT, weight: 1, targetId: 91 }] } }],
  };
  const limited = (g: GenerationConfig): GenerationConfig => ({ ...g, settings: { ...g.settings, perSource: LIMIT, perBackend: LIMIT } });

  const hitNs = { off: [] as number[], on: [] as number[] };
  const newNs = { off: [] as number[], source: [] as number[], backend: [] as number[], on: [] as number[] };
  env.inLb(() => {
    try {
      for (let block = 0; block < BLOCKS; block++) {
        const on = block % 2 === 1;
        installConfig(env.dp, on ? limited(hitCfg) : hitCfg);
        const prime = env.dp.testRun('xdp', hit, { ifindex });
        if (prime.retval !== XDP_REDIRECT) throw new BenchError(`lb's verdict on the hit frame was ${prime.retval}, expected XDP_REDIRECT (4)`);
        for (let i = 0; i < calls / 2; i++) {
          const h = env.dp.testRun('xdp', hit, { ifindex, repeat: BATCH });
          if (h.retval !== XDP_REDIRECT) throw new BenchError(`lb's verdict on the hit frame changed to ${h.retval}`);
          (on ? hitNs.on : hitNs.off).push(h.durationNs);
        }
      }
      // New flows: the limits toggled between consecutive calls by rewriting the active
      // generation's lb_settings in place (one map write, where an apply rewrites the generation),
      // so drift and cache state hit both settings alike.
      installConfig(env.dp, base);
      const gen = readCtl(env.dp).activeGen;
      const settings = {
        off: encodeSettings(base.settings),
        source: encodeSettings({ ...base.settings, perSource: LIMIT }),
        backend: encodeSettings({ ...base.settings, perBackend: LIMIT }),
        on: encodeSettings(limited(base).settings),
      };
      const order = ['off', 'source', 'backend', 'on'] as const;
      for (let i = 0; i < newFlowCalls; i++) {
        const cycle = Math.floor(i / order.length);
        const which = order[(i + cycle) % order.length]!; // rotated by one position per cycle
        env.dp.maps.lb_settings.update(encodeU32(gen), settings[which]);
        const n = env.dp.testRun('xdp', newFlowFrame(i), { ifindex });
        if (n.retval !== XDP_REDIRECT) throw new BenchError(`lb's verdict on a new flow was ${n.retval} (limits ${which})`);
        newNs[which][cycle] = n.durationNs;
      }
    } finally {
      installConfig(env.dp, base);
    }
  });

  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const m = (key: string, label: string, xs: number[], how: 'mean' | 'median'): Measurement => ({
    key, label, value: Number((how === 'mean' ? mean(xs) : median(xs)).toFixed(1)), unit: 'ns/pkt',
    detail: { calls: xs.length, repeatPerCall: key.includes('hit') ? BATCH : 1, median: median(xs), spread: Number(spread(xs).toFixed(3)) },
  });
  const hitOff = mean(hitNs.off);
  const hitOn = mean(hitNs.on);
  const newOff = median(newNs.off);
  const newOn = median(newNs.on);
  // Each cycle of four consecutive calls gives one paired difference: drift cancels within a cycle.
  const diffs = (xs: number[]): number[] => xs.map((x, i) => x - newNs.off[i]!).filter((d) => Number.isFinite(d));
  const paired = (xs: number[]): number => median(diffs(xs));
  const trimmedMean = (xs: number[]): number => {
    const d = diffs(xs).sort((a, b) => a - b);
    const cut = Math.floor(d.length / 10);
    return Number(mean(d.slice(cut, d.length - cut)).toFixed(1));
  };
  return {
    suite: 'ratelimit',
    title: 'Rate limits: cost on the conntrack-hit and new-flow paths',
    method: [
      `Conntrack hit: BPF_PROG_TEST_RUN, ${calls} calls of repeat ${BATCH} per setting, in ${BLOCKS} alternating blocks (limits off, on, off, on); mean of the kernel's per-call averages. Frame and listener as in the testrun suite.`,
      `New flow: ${newFlowCalls} calls of repeat 1 (a 60-byte UDP frame to the VIP:${BENCH_UDP_PORT}, each a flow of its own), limits cycled between consecutive calls (none, per-source, per-backend, both), the order rotated by one each cycle; median of the kernel's per-call durations for each setting, and the median and 10%-trimmed mean of the per-cycle differences against none.`,
      `Limits on: per-source and per-backend ${LIMIT.rate}/s, burst ${LIMIT.burst} (every flow admitted: one per-source bucket and one per-backend bucket read, refilled and taken per flow).`,
    ],
    measurements: [
      m('ratelimit.ct_hit_off', 'conntrack hit, no limits', hitNs.off, 'mean'),
      m('ratelimit.ct_hit_on', 'conntrack hit, limits configured', hitNs.on, 'mean'),
      m('ratelimit.new_flow_off', 'new flow, no limits', newNs.off, 'median'),
      m('ratelimit.new_flow_source', 'new flow, per-source limit', newNs.source, 'median'),
      m('ratelimit.new_flow_backend', 'new flow, per-backend limit', newNs.backend, 'median'),
      m('ratelimit.new_flow_on', 'new flow, per-source and per-backend limits', newNs.on, 'median'),
    ],
    ratios: [
      { key: 'ratelimit.ct_hit_delta', label: 'conntrack hit: limits on minus off', value: Number((hitOn - hitOff).toFixed(1)), unit: 'ns', note: 'within the noise of the testrun suite' },
      { key: 'ratelimit.new_flow_delta', label: 'new flow: limits on minus off (difference of medians)', value: Number((newOn - newOff).toFixed(1)), unit: 'ns' },
      { key: 'ratelimit.new_flow_source_paired', label: 'new flow: per-source minus none, median of paired calls', value: paired(newNs.source), unit: 'ns' },
      { key: 'ratelimit.new_flow_backend_paired', label: 'new flow: per-backend minus none, median of paired calls', value: paired(newNs.backend), unit: 'ns' },
      { key: 'ratelimit.new_flow_paired', label: 'new flow: both limits minus none, median of paired calls', value: paired(newNs.on), unit: 'ns', goal: 30, atMost: true },
      { key: 'ratelimit.new_flow_source_trimmed', label: 'new flow: per-source minus none, trimmed mean of paired calls', value: trimmedMean(newNs.source), unit: 'ns' },
      { key: 'ratelimit.new_flow_backend_trimmed', label: 'new flow: per-backend minus none, trimmed mean of paired calls', value: trimmedMean(newNs.backend), unit: 'ns' },
      { key: 'ratelimit.new_flow_trimmed', label: 'new flow: both limits minus none, trimmed mean of paired calls', value: trimmedMean(newNs.on), unit: 'ns', goal: 30, atMost: true },
    ],
    notes: [],
  };
}

export const rateLimitSuite: Suite = { name: 'ratelimit', title: 'Rate limits: cost on the conntrack-hit and new-flow paths', run };
