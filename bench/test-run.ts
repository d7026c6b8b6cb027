// ns/packet of lb's XDP program on its conntrack-hit path, from BPF_PROG_TEST_RUN with repeat,
// against a trivial XDP_PASS program measured the same way (same frame, same ingress device, same
// repeat counts), plus lb's own not-listener path as a second reference.
//
// A catch of BPF_PROG_TEST_RUN: with repeat > 1 the program runs again on the frame as the last
// run left it. lb rewrites the frame (DNAT, TTL, MACs), so from the second run on a VIP frame is
// a frame to the backend, not to a listener: a plain `repeat 1e6` of the hit path measures one
// hit and 999,999 listener misses. So the hit frame here is addressed to backend b1 itself, and a
// listener for b1:9000 whose group is b1:9000 is added for the duration of this suite: every run
// does the whole hit path (listener, conntrack hit, DNAT with checksum updates, bpf_fib_lookup,
// TTL and MAC rewrite, devmap redirect) and leaves a frame that takes the same path again, except
// for its TTL, which drops by one per run. Hence runs are batched: 250 repeats per call from TTL
// 255, and a number of calls. All three programs are measured that way (the ratio compares like
// with like); the baseline and the not-listener path are also measured with one call of the full
// repeat count (1e6 by default), which shows what batching costs: the first runs of each call are
// cache-cold, which adds a few ns to every batched figure.
//
// Each call with repeat > 1 swaps the program into the kernel's XDP dispatcher and back, which
// waits for RCU grace periods (~25 ms of wall time per call here): the number of calls, not the
// number of runs, sets this suite's duration.
//
// The runs happen inside the LB namespace with the frame arriving on veth-c1, so the FIB is the
// real one. Test runs never transmit: XDP_REDIRECT is only the returned verdict.

import { installConfig, type StatName } from '../src/dataplane/index.js';
import { progTestRun } from '../src/dataplane/libbpf.js';
import { BENCH_UDP_PORT } from './lib/bpf.js';
import { BenchError } from './lib/errors.js';
import { udpFrame } from './lib/frame.js';
import { median, ratio, spread } from './lib/stats.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const XDP_PASS = 2;
const XDP_REDIRECT = 4;
const NOT_LISTENER_PORT = 9999;
/** Repeats per call: the hit frame starts at TTL 255 and lb redirects while TTL > 1. */
const BATCH = 250;
const SINGLE_CALL_TIMES = 3;

interface Series { perCall: number[]; mean: number; median: number }

function series(perCall: number[]): Series {
  return { perCall, mean: perCall.reduce((a, b) => a + b, 0) / perCall.length, median: median(perCall) };
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const env = await ctx.env();
  const total = ctx.options.testRunRepeat;
  const calls = ctx.options.testRunCalls;
  const c = env.client;
  const b1 = env.backends[0]!;
  const frame = (dst: string, dport: number): Buffer => udpFrame({
    srcMac: c.iface.mac, dstMac: c.lbIface.mac, src: c.address, dst, sport: 40000, dport, ttl: 255,
  });
  const hit = frame(b1.address, BENCH_UDP_PORT);
  const other = frame(env.vip, NOT_LISTENER_PORT);
  const ifindex = env.lbIn.ifindex;
  const passFd = env.ingressCounter.progFd('bench_pass');

  const base = env.lbConfig();
  const withHitListener = {
    ...base,
    listeners: [...base.listeners, {
      key: { ifindex, vip: b1.address, port: BENCH_UDP_PORT, proto: 17 },
      value: { listenerId: 9, defaultGroup: 9, flags: 0 },
    }],
    groups: [...base.groups, { id: 9, group: { targets: [{ addr: b1.address, port: BENCH_UDP_PORT, weight: 1, targetId: 91 }] } }],
  };

  const batched = { pass: [] as number[], notListener: [] as number[], ctHit: [] as number[] };
  const single = { pass: [] as number[], notListener: [] as number[] };
  const counters: Partial<Record<StatName, number>> = {};
  env.inLb(() => {
    installConfig(env.dp, withHitListener);
    try {
      const prime = env.dp.testRun('xdp', hit, { ifindex });
      if (prime.retval !== XDP_REDIRECT) {
        throw new BenchError(`lb's verdict on the benchmark frame was ${prime.retval}, expected XDP_REDIRECT (4): the FIB did not resolve b1?`);
      }
      const before = env.lbStats();
      for (let i = 0; i < calls; i++) {
        const p = progTestRun(passFd, 'xdp', hit, { repeat: BATCH, ifindex }, 'bench_pass');
        if (p.retval !== XDP_PASS) throw new BenchError(`bench_pass returned ${p.retval}`);
        batched.pass.push(p.durationNs);
        const n = env.dp.testRun('xdp', other, { ifindex, repeat: BATCH });
        if (n.retval !== XDP_PASS) throw new BenchError(`lb's verdict on a non-listener frame was ${n.retval}`);
        batched.notListener.push(n.durationNs);
        const h = env.dp.testRun('xdp', hit, { ifindex, repeat: BATCH });
        if (h.retval !== XDP_REDIRECT) throw new BenchError(`lb's verdict on the hit frame changed to ${h.retval}`);
        batched.ctHit.push(h.durationNs);
      }
      const after = env.lbStats();
      for (const k of ['ct_hit', 'ct_new', 'redirect', 'fib_pass', 'not_listener'] as const) counters[k] = Number(after[k] - before[k]);
      for (let i = 0; i < SINGLE_CALL_TIMES; i++) {
        single.pass.push(progTestRun(passFd, 'xdp', hit, { repeat: total, ifindex }, 'bench_pass').durationNs);
        single.notListener.push(env.dp.testRun('xdp', other, { ifindex, repeat: total }).durationNs);
      }
    } finally {
      installConfig(env.dp, base);
    }
  });
  const runs = calls * BATCH;
  if (counters.ct_hit !== runs || counters.redirect !== runs || counters.not_listener !== runs) {
    throw new BenchError(`expected ${runs} conntrack hits, redirects and listener misses in the batched runs, lb counted ${JSON.stringify(counters)}`, { counters });
  }

  const pass = series(batched.pass);
  const notListener = series(batched.notListener);
  const ctHit = series(batched.ctHit);
  const m = (key: string, label: string, s: Series): Measurement => ({
    key, label, value: Number(s.mean.toFixed(1)), unit: 'ns/pkt',
    detail: { calls, repeatPerCall: BATCH, medianOfCalls: s.median, spread: Number(spread(s.perCall).toFixed(3)) },
  });
  const measurements: Measurement[] = [
    m('testrun.xdp_pass', 'baseline: trivial XDP_PASS program', pass),
    m('testrun.not_listener', 'lb, not-listener path (parse, listener miss, pass)', notListener),
    m('testrun.ct_hit', 'lb, conntrack-hit path (DNAT, FIB, redirect)', ctHit),
    { key: 'testrun.ct_hit_minus_pass', label: 'lb conntrack-hit path minus baseline', value: Number((ctHit.mean - pass.mean).toFixed(1)), unit: 'ns/pkt', detail: { counters } },
    { key: 'testrun.single.xdp_pass', label: `baseline, one call of repeat ${total.toLocaleString('en-US')}`, value: median(single.pass), unit: 'ns/pkt', samples: single.pass },
    { key: 'testrun.single.not_listener', label: `lb not-listener, one call of repeat ${total.toLocaleString('en-US')}`, value: median(single.notListener), unit: 'ns/pkt', samples: single.notListener },
  ];
  return {
    suite: 'testrun',
    title: 'BPF_PROG_TEST_RUN ns/packet',
    method: [
      `BPF_PROG_TEST_RUN, ${calls.toLocaleString('en-US')} calls of repeat ${BATCH} (${runs.toLocaleString('en-US')} runs) per program, interleaved; the figure is the mean of the kernel's per-call averages (ns/run).`,
      `Frame: 60-byte UDP, TTL 255, arriving on the LB namespace's veth-c1. Hit path: to b1:${BENCH_UDP_PORT} with a suite-only listener b1:${BENCH_UDP_PORT} -> {b1:${BENCH_UDP_PORT}}, flow primed, so every run is a conntrack hit that is DNATed, FIB-resolved and redirected (the rewritten frame takes the same path again; see test-run.ts for why).`,
      'Baseline: a trivial XDP_PASS program compiled at run time from C embedded in bench/lib/bpf.ts, same frame and device. Not-listener: lb on a frame to VIP:9999.',
      `Batching check: baseline and not-listener also measured as one call of repeat ${total.toLocaleString('en-US')} (median of ${SINGLE_CALL_TIMES}).`,
    ],
    measurements,
    ratios: [
      { key: 'testrun.ct_hit_over_pass', label: 'lb conntrack hit / XDP_PASS baseline', value: ratio(ctHit.mean, pass.mean) },
      { key: 'testrun.ct_hit_minus_pass', label: 'lb XDP conntrack-hit path over the empty program', value: Number((ctHit.mean - pass.mean).toFixed(1)), unit: 'ns', goal: 100, atMost: true },
      { key: 'testrun.not_listener_over_pass', label: 'lb not-listener / XDP_PASS baseline', value: ratio(notListener.mean, pass.mean) },
    ],
    notes: [],
  };
}

export const testRunSuite: Suite = { name: 'testrun', title: 'BPF_PROG_TEST_RUN ns/packet', run };
