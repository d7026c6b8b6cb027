// Packets per second delivered to the backends: 64-byte UDP frames with random source ports from
// trafgen in the client namespace, through each forwarder of the LB namespace (env.ts), counted
// where they arrive. Rounds interleave the forwarders (rotating their order), so a change of
// background load hits every forwarder alike; the median of the rounds is reported.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatName } from '../src/dataplane/index.js';
import { BENCH_UDP_PORT } from './lib/bpf.js';
import type { BenchEnv, Forwarder } from './lib/env.js';
import { BenchError } from './lib/errors.js';
import { median, ratio, sleep, spread } from './lib/stats.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

/** Minimum Ethernet frame: 60 bytes here, 64 on a wire with the FCS. */
const FRAME_LENGTH = 60;
const HEADERS = 14 + 20 + 8;
/** Upper bound on what trafgen may send in one window, whatever its speed. */
const MAX_PPS_BOUND = 5_000_000;
const TRAFGEN_SEED = 42;

type Variant = 'ceiling' | 'xdp-redirect' | 'lb' | 'lb-xdp' | 'nft' | 'kernel';
const VARIANTS: Variant[] = ['ceiling', 'xdp-redirect', 'lb', 'lb-xdp', 'nft', 'kernel'];

const LABELS: Record<Variant, string> = {
  ceiling: 'arrival ceiling (XDP_DROP at LB ingress)',
  'xdp-redirect': 'XDP redirect floor (fixed next hop, no LB)',
  lb: 'lb, the path auto picks (veth: TC DNAT + redirect_neigh)',
  'lb-xdp': 'lb, XDP path (XDP DNAT + devmap redirect)',
  nft: 'nftables DNAT (numgen random mod 3)',
  kernel: 'kernel forwarding, direct to b1',
};

interface Sample {
  pps: number;
  offeredPps: number;
  seconds: number;
  perBackend: number[];
  lb?: Partial<Record<StatName, number>>;
}

function trafgenConfig(env: BenchEnv, daddr: string): string {
  const c = env.client;
  return [
    '/* lb benchmark: minimum-size UDP frames, random source port (a new flow per port) */',
    '{',
    `  eth(da=${c.lbIface.mac}, sa=${c.iface.mac}, type=0x0800),`,
    `  ipv4(saddr=${c.address}, daddr=${daddr}, ttl=64),`,
    `  udp(sp=drnd(), dp=${BENCH_UDP_PORT}),`,
    `  fill(0x00, ${FRAME_LENGTH - HEADERS})`,
    '}',
    '',
  ].join('\n');
}

async function measureOnce(ctx: SuiteContext, env: BenchEnv, variant: Variant, configs: Record<'vip' | 'direct', string>): Promise<Sample> {
  const { ppsSeconds, ppsWarmupSeconds } = ctx.options;
  const fwd: Forwarder = variant;
  await env.setForwarder(fwd);
  const cfg = variant === 'kernel' ? configs.direct : configs.vip;
  const limitS = Math.ceil(ppsWarmupSeconds + ppsSeconds + 3);
  const maxPackets = limitS * MAX_PPS_BOUND;
  // -P 1: one generator process (trafgen pins it to CPU 0); --no-sock-mem and --notouch-irq keep
  // trafgen from changing host-wide socket memory sysctls and IRQ affinities; timeout bounds it
  // even if this process dies.
  const gen = env.topo.spawnIn('c1', ['timeout', '-k', '1', String(limitS), 'trafgen', '-i', cfg, '-o', 'eth0',
    '-n', String(maxPackets), '-P', '1', '-E', String(TRAFGEN_SEED), '--prio-high', '--no-sock-mem', '--notouch-irq'], { label: `trafgen (${variant})` });
  try {
    await sleep(ppsWarmupSeconds * 1000);
    if (!gen.running) throw new BenchError(`trafgen exited early (${variant}): ${gen.stderr.trim() || gen.stdout.trim()}`);
    const count = (): bigint[] => (variant === 'ceiling' ? [env.ingressCounter.count()] : env.backendCounts());
    const lbStats = (): Record<StatName, bigint> | undefined => (variant === 'lb' || variant === 'lb-xdp' ? env.lbStats() : undefined);
    const tx0 = await env.linkStats('c1', 'eth0');
    const s0 = lbStats();
    const c0 = count();
    const t0 = process.hrtime.bigint();
    await sleep(ppsSeconds * 1000);
    const c1 = count();
    const t1 = process.hrtime.bigint();
    const s1 = lbStats();
    const tx1 = await env.linkStats('c1', 'eth0');
    if (!gen.running) throw new BenchError(`trafgen stopped before the end of the window (${variant}): ${gen.stderr.trim()}`);
    const seconds = Number(t1 - t0) / 1e9;
    const perBackend = c1.map((v, i) => Number(v - c0[i]!) / seconds);
    const sample: Sample = {
      pps: perBackend.reduce((a, b) => a + b, 0),
      offeredPps: (tx1.txPackets - tx0.txPackets) / seconds,
      seconds,
      perBackend,
    };
    if (s0 && s1) {
      const keys: StatName[] = ['xdp_rx', 'tc_rx', 'ct_hit', 'ct_new', 'redirect', 'redirect_neigh', 'redirect_err', 'fib_pass', 'no_target', 'not_listener'];
      sample.lb = Object.fromEntries(keys.map((k) => [k, Number(s1[k] - s0[k])]));
    }
    return sample;
  } finally {
    await gen.stop(2000);
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const env = await ctx.env();
  const configs = { vip: join(env.tmp, 'trafgen-vip.cfg'), direct: join(env.tmp, 'trafgen-direct.cfg') };
  writeFileSync(configs.vip, trafgenConfig(env, env.vip));
  writeFileSync(configs.direct, trafgenConfig(env, env.backends[0]!.address));

  const samples: Record<Variant, Sample[]> = { ceiling: [], 'xdp-redirect': [], lb: [], 'lb-xdp': [], nft: [], kernel: [] };
  env.attachBackendCounters();
  try {
    for (let r = 0; r < ctx.options.rounds; r++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length]!);
      for (const v of order) {
        const s = await measureOnce(ctx, env, v, configs);
        samples[v].push(s);
        ctx.log(`pps round ${r + 1}/${ctx.options.rounds} ${v.padEnd(12)} ${fmt(s.pps)} pps delivered (offered ${fmt(s.offeredPps)})`);
      }
    }
  } finally {
    await env.setForwarder('kernel');
    env.detachBackendCounters();
  }

  const med = (v: Variant): number => median(samples[v].map((s) => s.pps));
  const measurements: Measurement[] = VARIANTS.map((v) => {
    const list = samples[v];
    // The round nearest the median stands for the per-backend split and lb's counters.
    const pick = [...list].sort((a, b) => Math.abs(a.pps - med(v)) - Math.abs(b.pps - med(v)))[0];
    const detail: Record<string, unknown> = {
      offeredPps: Math.round(median(list.map((s) => s.offeredPps))),
      spread: Number(spread(list.map((s) => s.pps)).toFixed(3)),
    };
    if (v !== 'ceiling') detail.perBackendPps = pick?.perBackend.map(Math.round);
    if (v === 'lb' || v === 'lb-xdp') detail.lbCounters = pick?.lb;
    return { key: `pps.${v}`, label: LABELS[v], value: Math.round(med(v)), unit: 'pkt/s', samples: list.map((s) => Math.round(s.pps)), detail };
  });

  // Per-packet cost beyond arrival: generator, veth and forwarding share one CPU (the sends are
  // processed in the sender's softirq), so 1/pps is the CPU time of one packet end to end, and
  // subtracting the ceiling's leaves what the forwarder (and delivery) adds. An estimate.
  const extraNs = (v: Variant): number => 1e9 / med(v) - 1e9 / med('ceiling');
  for (const v of ['xdp-redirect', 'lb', 'lb-xdp', 'nft', 'kernel'] as const) {
    measurements.push({ key: `pps.extra_ns.${v}`, label: `${v}: est. ns/packet beyond arrival`, value: Number(extraNs(v).toFixed(0)), unit: 'ns/pkt' });
  }

  const ratios: Ratio[] = [
    { key: 'pps.lb_over_kernel', label: 'lb (auto path) / kernel forwarding', value: ratio(med('lb'), med('kernel')), goal: 1 },
    { key: 'pps.lb_over_nft', label: 'lb (auto path) / nftables DNAT', value: ratio(med('lb'), med('nft')), goal: 1.5 },
    { key: 'pps.lb_xdp_over_xdp_redirect', label: 'lb XDP path / XDP redirect floor', value: ratio(med('lb-xdp'), med('xdp-redirect')), goal: 0.9 },
    { key: 'pps.lb_xdp_over_kernel', label: 'lb XDP path / kernel forwarding', value: ratio(med('lb-xdp'), med('kernel')) },
    { key: 'pps.lb_over_ceiling', label: 'lb (auto path) / arrival ceiling', value: ratio(med('lb'), med('ceiling')) },
    { key: 'pps.nft_over_kernel', label: 'nftables / kernel forwarding', value: ratio(med('nft'), med('kernel')) },
    { key: 'pps.extra_nft_over_lb', label: 'est. per-packet forwarding cost, nft / lb', value: ratio(extraNs('nft'), extraNs('lb')), note: 'beyond arrival; estimate' },
  ];

  const notes: string[] = [];
  for (const v of ['lb', 'lb-xdp'] as const) {
    const c = measurements.find((m) => m.key === `pps.${v}`)?.detail?.lbCounters as Record<string, number> | undefined;
    const seen = (c?.xdp_rx ?? 0) + (c?.tc_rx ?? 0);
    if (!c || seen === 0) continue;
    const forwarded = (c.redirect ?? 0) + (c.redirect_neigh ?? 0);
    notes.push(`${v} (${v === 'lb' ? 'path auto picks: TC' : 'XDP'}): ${((forwarded / seen) * 100).toFixed(1)}% of the ${seen} packets it saw were forwarded by lb itself ` +
      `(${c.fib_pass ?? 0} went to the kernel, ${c.redirect_err ?? 0} redirect failures, ${c.no_target ?? 0} dropped for lack of a target); ` +
      `${c.ct_new ?? 0} new flows, ${c.ct_hit ?? 0} conntrack hits in the window.`);
  }
  for (const v of VARIANTS) {
    const s = spread(samples[v].map((x) => x.pps));
    if (s > 0.25) notes.push(`${v}: rounds disagree by ${(s * 100).toFixed(0)}% (background load on the machine?)`);
  }

  return {
    suite: 'pps',
    title: 'UDP packets/s delivered to the backends (64-byte frames, random source ports)',
    method: [
      `Generator: trafgen, one process (-P 1) in the client namespace, ${FRAME_LENGTH}-byte frames (64 on a wire), UDP to port ${BENCH_UDP_PORT}, source port drnd() (up to 65536 flows), fixed seed.`,
      `Each window: ${ctx.options.ppsWarmupSeconds}s warm-up, then ${ctx.options.ppsSeconds}s measured; ${ctx.options.rounds} rounds, forwarders interleaved, median reported.`,
      'Delivered: an XDP program on each backend\'s eth0 counts benchmark packets in a per-CPU array and drops them (no reply traffic, no backend stack cost).',
      'Ceiling: the same program on the LB\'s veth-c1 ingress counts and drops every arrival (lb detached).',
      'kernel: trafgen sends to b1\'s address directly, plain IPv4 forwarding in the LB namespace; nft: nat prerouting dnat to numgen random mod 3, lb detached.',
      'lb: the data path auto chooses for veth-c1 (the TC path); lb-xdp: the XDP path forced (native XDP on the tuned veth, devmap redirect).',
      'XDP redirect floor: a 10-line XDP program on veth-c1 that rewrites the MACs for b1 and redirects through a devmap: the XDP redirect path without any load-balancing work.',
    ],
    measurements,
    ratios,
    notes,
  };
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export const ppsSuite: Suite = { name: 'pps', title: 'UDP packets per second', run };
