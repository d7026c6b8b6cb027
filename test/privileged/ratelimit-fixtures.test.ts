// Rate limits on new flows (bpf/lib/ratelimit.h) through BPF_PROG_TEST_RUN, on both ingress paths
// (lb_xdp_ingress and lb_tc_ingress share the decision): exact burst admission, refill after a
// known time (the test ages a bucket by rewriting its last_ns, the refill clock), established
// flows untouched at zero tokens, per-backend spill following the weights then drops, and limits
// that come and go with the generation. The same fixture checks as xdp-fixtures.test.ts (verdict,
// output bytes, lb_stats, lb_tstats, the whole of lb_flows) plus the lb_rl_stats deltas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_RL_SCALE, decodeRateLimitBucket, encodeRateLimitBucket, encodeU32, installConfig,
  readBackendBucket, readRateLimitStats, topLimitedSources,
  type DataPlane, type GenerationConfig, type GroupTarget, type ProgKind, type RateLimitBucket, type RateLimitValue,
} from '../../src/dataplane/index.js';
import {
  LO_IFINDEX, TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, closeHarness, config, dnatFrames, expectCreated, flowPair, monoNow,
  openHarness, predict, runFixture, tcpSpec, tgt, totLen, udpSpec,
  type Endpoint, type FixtureCase, type Harness, type StatDeltas,
} from '../lib/fixture-harness.js';
import { TCP_ACK, TCP_SYN, buildFrame, type FrameSpec } from '../lib/packet.js';

const VIP = '10.100.0.1';
const HTTP: Endpoint = { addr: VIP, port: 80 };
const DNS: Endpoint = { addr: VIP, port: 53 };
const CLIENT = '172.16.7.10';
const OTHER = '172.16.7.11';
const A = tgt('10.0.0.1', 8080, 5, 11);
const B = tgt('10.0.0.2', 8081, 3, 12);
const C = tgt('10.0.0.3', 8082, 2, 13);
const G = [A, B, C];
const U = [tgt('10.0.1.1', 5353, 1, 21)];

/** A bucket that never refills while the test runs: its refill clock is far in the future. */
const FROZEN = 1n << 62n;

function cfg(limits: { perSource?: RateLimitValue; perBackend?: RateLimitValue } = {}): GenerationConfig {
  return config({
    listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }, { vip: VIP, port: 53, proto: IPPROTO_UDP, id: 2, group: 2 }],
    groups: { 1: G, 2: U },
    settings: limits,
  });
}

const ep = (addr: string, port: number): Endpoint => ({ addr, port });
const syn = (sport: number, src = CLIENT): FrameSpec => tcpSpec(ep(src, sport), HTTP, TCP_SYN);
const srcKey = (addr: string): Buffer => Buffer.from(addr.split('.').map(Number));

function putSourceBucket(dp: DataPlane, addr: string, b: Partial<RateLimitBucket>): void {
  dp.maps.lb_rl_src.update(srcKey(addr), encodeRateLimitBucket({ tokensScaled: 0n, lastNs: FROZEN, limited: 0n, ...b }));
}
function sourceBucket(dp: DataPlane, addr: string): RateLimitBucket | undefined {
  const v = dp.maps.lb_rl_src.lookup(srcKey(addr));
  return v ? decodeRateLimitBucket(v) : undefined;
}
function putBackendBucket(dp: DataPlane, targetId: number, b: Partial<RateLimitBucket>): void {
  dp.maps.lb_rl_backend.update(encodeU32(targetId), encodeRateLimitBucket({ tokensScaled: 0n, lastNs: FROZEN, limited: 0n, ...b }));
}
/** Every bucket back to its initial state: no source buckets, backend buckets zero (full at first use). */
function resetBuckets(dp: DataPlane): void {
  const keys = [...dp.maps.lb_rl_src.keys()];
  if (keys.length > 0) dp.maps.lb_rl_src.deleteBatch(keys);
  for (const t of [...G, ...U]) dp.maps.lb_rl_backend.update(encodeU32(t.targetId), Buffer.alloc(24));
}

interface Path { prog: ProgKind; rx: 'xdp_rx' | 'tc_rx'; pass: number; drop: number }
const PATHS: Path[] = [
  { prog: 'xdp', rx: 'xdp_rx', pass: XDP_PASS, drop: XDP_DROP },
  { prog: 'tc_ingress', rx: 'tc_rx', pass: TC_ACT_OK, drop: TC_ACT_SHOT },
];

function rlDelta(dp: DataPlane, run: () => void): Record<string, number> {
  const before = readRateLimitStats(dp);
  run();
  const after = readRateLimitStats(dp);
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Number(v - before[k as keyof typeof before])]));
}
const RL0 = { source_limited: 0, backend_spilled: 0, backend_limited: 0 };

for (const path of PATHS) {
  describe(`rate limits on new flows through lb_${path.prog === 'xdp' ? 'xdp' : 'tc'}_ingress`, () => {
    let h: Harness | undefined;
    beforeAll(() => { h = openHarness(`rl${path.prog === 'xdp' ? 'x' : 't'}`); });
    afterAll(() => { closeHarness(h); });

    const run = (frame: Buffer): number => h!.dp.testRun(path.prog, frame, { ifindex: LO_IFINDEX }).retval;
    const counters = (c: StatDeltas): StatDeltas => ({ [path.rx]: 1, ...c });

    /** A new flow DNATed to `to` (predicted when omitted): the fixture of xdp-fixtures' newFlow. */
    function admitted(description: string, config: GenerationConfig, spec: FrameSpec, before: (dp: DataPlane) => void,
      to: GroupTarget = predict(G, tuple(spec))!): FixtureCase {
      const frames = dnatFrames(spec, to);
      const made = expectCreated(spec, to);
      return {
        description, prog: path.prog, setup: { config, before }, input: frames.input, verdict: path.pass, output: frames.output,
        counters: counters({ ct_new: 1, fib_pass: 1, ...made.counters }),
        targets: { [to.targetId]: { packets: 1, bytes: totLen(frames.input), newFlows: 1 } },
        flows: made.flows,
      };
    }
    function dropped(description: string, config: GenerationConfig, spec: FrameSpec, before: (dp: DataPlane) => void): FixtureCase {
      return {
        description, prog: path.prog, setup: { config, before }, input: buildFrame(spec), verdict: path.drop, output: 'input',
        counters: counters({}), flows: [],
      };
    }

    it('per source: exactly burst new flows from a full bucket, then drops (refill frozen)', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 5 } }));
      resetBuckets(dp);
      putSourceBucket(dp, CLIENT, { tokensScaled: 5n * BigInt(LB_RL_SCALE) });
      const verdicts: number[] = [];
      const d = rlDelta(dp, () => { for (let i = 0; i < 8; i++) verdicts.push(run(buildFrame(syn(41000 + i)))); });
      expect(verdicts).toEqual([...Array(5).fill(path.pass), ...Array(3).fill(path.drop)]);
      expect(d).toEqual({ ...RL0, source_limited: 3 });
      expect(sourceBucket(dp, CLIENT)).toEqual({ tokensScaled: 0n, lastNs: FROZEN, limited: 3n });
      expect(topLimitedSources(dp, 10)).toEqual([{ addr: CLIENT, limited: 3n, tokens: 0 }]);
    });

    it('per source: a source seen for the first time gets a full bucket minus its first flow', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 4 } }));
      resetBuckets(dp);
      const t0 = monoNow();
      expect(run(buildFrame(syn(42000)))).toBe(path.pass);
      const b = sourceBucket(dp, CLIENT)!;
      expect(b.tokensScaled).toBe(3n * BigInt(LB_RL_SCALE));
      expect(b.lastNs >= t0 && b.lastNs <= monoNow()).toBe(true);
    });

    it('per source: the dropped SYN (bucket empty) leaves no flow and counts nothing but the packet', () => {
      const c = dropped('empty bucket: SYN dropped', cfg({ perSource: { rate: 1, burst: 5 } }), syn(43000), (dp) => {
        resetBuckets(dp);
        putSourceBucket(dp, CLIENT, {});
      });
      const d = rlDelta(h!.dp, () => runFixture(h!, c));
      expect(d).toEqual({ ...RL0, source_limited: 1 });
    });

    it('per source: another source is not limited by the first one\'s empty bucket', () => {
      const c = admitted('second source admitted', cfg({ perSource: { rate: 1, burst: 5 } }), syn(43001, OTHER), (dp) => {
        resetBuckets(dp);
        putSourceBucket(dp, CLIENT, {});
      });
      expect(rlDelta(h!.dp, () => runFixture(h!, c))).toEqual(RL0);
    });

    it('per source: refill after time passes: a bucket last credited 5.2 s ago at 1/s holds 5 tokens', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 100 } }));
      resetBuckets(dp);
      // The refill clock rewritten into the past: 5.2 s at 1 token/s is 5 tokens and 200
      // milli-tokens toward the sixth.
      const last = monoNow() - 5_200_000_000n;
      putSourceBucket(dp, CLIENT, { lastNs: last });
      const verdicts: number[] = [];
      for (let i = 0; i < 7; i++) verdicts.push(run(buildFrame(syn(44000 + i))));
      // 5 tokens at once; a sixth only once the clock has passed 6 s since `last`, which these
      // seven packets take milliseconds to reach on a quiet machine, and a busy one may stretch:
      // the bound comes from the clock read after them, not from an assumed pace.
      const aged = Number((monoNow() - last) / 1_000_000_000n);
      const passed = verdicts.filter((v) => v === path.pass).length;
      expect(passed).toBeGreaterThanOrEqual(5);
      expect(passed).toBeLessThanOrEqual(Math.min(aged, 7));
      expect(verdicts).toEqual([...Array(passed).fill(path.pass), ...Array(7 - passed).fill(path.drop)]);
      // Every ns credited is one milli-token at 1/s (no fraction lost or gained): the time the
      // clock advanced is the tokens taken plus what is left.
      const b = sourceBucket(dp, CLIENT)!;
      expect(b.lastNs - last).toBe(BigInt(passed) * 1_000_000_000n + b.tokensScaled * 1_000_000n);
      expect(b.tokensScaled < BigInt(LB_RL_SCALE)).toBe(true);
      expect(b.limited).toBe(BigInt(7 - passed));
    });

    it('per source: a full bucket does not grow past burst, however long it was idle', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 3 } }));
      resetBuckets(dp);
      // Idle for an hour, or since boot on a machine up for less (the monotonic clock starts there;
      // a CI machine is fresh): either is far more than the 3 s that fill the burst.
      const hour = 3_600_000_000_000n;
      const now = monoNow();
      putSourceBucket(dp, CLIENT, { lastNs: now > hour ? now - hour : 1n });
      const t0 = monoNow();
      const verdicts: number[] = [];
      for (let i = 0; i < 5; i++) verdicts.push(run(buildFrame(syn(45000 + i))));
      // Long idle refills 3 tokens (the burst), not 3,600; a fourth takes 1 s more, which these
      // packets take milliseconds to reach unless a busy machine stalls them (bounded by the clock).
      const more = Number((monoNow() - t0) / 1_000_000_000n);
      const passed = verdicts.filter((v) => v === path.pass).length;
      expect(passed).toBeGreaterThanOrEqual(3);
      expect(passed).toBeLessThanOrEqual(3 + more);
      expect(verdicts).toEqual([...Array(passed).fill(path.pass), ...Array(5 - passed).fill(path.drop)]);
    });

    it('at zero tokens an established flow keeps flowing (ct_hit, its backend)', () => {
      const client = ep(CLIENT, 46000);
      const spec = tcpSpec(client, HTTP, TCP_ACK);
      const frames = dnatFrames(spec, B);
      const c: FixtureCase = {
        description: 'established at zero tokens', prog: path.prog,
        setup: {
          config: cfg({ perSource: { rate: 1, burst: 1 }, perBackend: { rate: 1, burst: 1 } }),
          flows: () => flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId),
          before: (dp) => { resetBuckets(dp); putSourceBucket(dp, CLIENT, {}); for (const t of G) putBackendBucket(dp, t.targetId, {}); },
        },
        input: frames.input, verdict: path.pass, output: frames.output,
        counters: counters({ ct_hit: 1, fib_pass: 1 }),
        targets: { [B.targetId]: { packets: 1, bytes: totLen(frames.input) } },
        flows: 'unchanged',
      };
      expect(rlDelta(h!.dp, () => runFixture(h!, c))).toEqual(RL0);
    });

    it('at zero tokens a TCP packet without SYN of an unknown flow is not a new connection: not limited', () => {
      const c = admitted('mid-stream ACK at zero tokens', cfg({ perSource: { rate: 1, burst: 1 } }), tcpSpec(ep(CLIENT, 46001), HTTP, TCP_ACK), (dp) => {
        resetBuckets(dp);
        putSourceBucket(dp, CLIENT, {});
      });
      expect(rlDelta(h!.dp, () => runFixture(h!, c))).toEqual(RL0);
    });

    it('UDP: the first packet of a flow takes a token; the next packets of that flow do not', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 1 } }));
      resetBuckets(dp);
      putSourceBucket(dp, CLIENT, { tokensScaled: BigInt(LB_RL_SCALE) });
      const first = buildFrame(udpSpec(ep(CLIENT, 47000), DNS));
      expect(run(first)).toBe(path.pass);
      expect(run(first)).toBe(path.pass);
      expect(run(first)).toBe(path.pass);
      expect(run(buildFrame(udpSpec(ep(CLIENT, 47001), DNS)))).toBe(path.drop);
      expect(sourceBucket(dp, CLIENT)!.limited).toBe(1n);
    });

    it('per backend: the chosen backend out of tokens: the flow goes to another, chosen by the weights of those with tokens', () => {
      const spec = syn(48000);
      const first = predict(G, tuple(spec))!;
      // The data plane's spill choice: the same flow hash over the group with the empty backend at weight 0.
      const spilled = predict(G.map((t) => (t === first ? { ...t, weight: 0 } : t)), tuple(spec))!;
      expect(spilled).not.toBe(first);
      const c = admitted('spill', cfg({ perBackend: { rate: 1, burst: 10 } }), spec, (dp) => {
        resetBuckets(dp);
        putBackendBucket(dp, first.targetId, {});
      }, spilled);
      expect(rlDelta(h!.dp, () => runFixture(h!, c))).toEqual({ ...RL0, backend_spilled: 1 });
      expect(readBackendBucket(h!.dp, first.targetId).limited).toBe(1n);
    });

    it('per backend: spill follows the weights: over many flows the two remaining backends share 3:2', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perBackend: { rate: 1, burst: 1000 } }));
      resetBuckets(dp);
      putBackendBucket(dp, A.targetId, {});
      putBackendBucket(dp, B.targetId, { tokensScaled: 1000n * BigInt(LB_RL_SCALE) });
      putBackendBucket(dp, C.targetId, { tokensScaled: 1000n * BigInt(LB_RL_SCALE) });
      const want = new Map<number, number>();
      for (let i = 0; i < 200; i++) {
        const spec = syn(49000 + i);
        const t = predict([{ ...A, weight: 0 }, B, C], tuple(spec))!;
        want.set(t.targetId, (want.get(t.targetId) ?? 0) + 1);
        expect(run(buildFrame(spec))).toBe(path.pass);
      }
      const used = (id: number): number => 1000 - Number(readBackendBucket(dp, id).tokensScaled / BigInt(LB_RL_SCALE));
      expect(used(B.targetId)).toBe(want.get(B.targetId));
      expect(used(C.targetId)).toBe(want.get(C.targetId));
      expect(used(B.targetId) + used(C.targetId)).toBe(200);
    });

    it('per backend: every backend out of tokens: the new flow is dropped (backend_limited, not no_target)', () => {
      const c = dropped('all backends empty', cfg({ perBackend: { rate: 1, burst: 1 } }), syn(50000), (dp) => {
        resetBuckets(dp);
        for (const t of G) putBackendBucket(dp, t.targetId, {});
      });
      expect(rlDelta(h!.dp, () => runFixture(h!, c))).toEqual({ ...RL0, backend_limited: 1 });
    });

    it('per backend: burst 2 on each of 3 backends admits exactly 6 new flows (refill frozen), then drops', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perBackend: { rate: 1, burst: 2 } }));
      resetBuckets(dp);
      for (const t of G) putBackendBucket(dp, t.targetId, { tokensScaled: 2n * BigInt(LB_RL_SCALE) });
      const verdicts: number[] = [];
      const d = rlDelta(dp, () => { for (let i = 0; i < 9; i++) verdicts.push(run(buildFrame(syn(51000 + i)))); });
      expect(verdicts.filter((v) => v === path.pass)).toHaveLength(6);
      expect(verdicts.slice(6)).toEqual(Array(3).fill(path.drop));
      expect(d.backend_limited).toBe(3);
      for (const t of G) expect(readBackendBucket(dp, t.targetId).tokensScaled).toBe(0n);
    });

    it('limits are per generation: flipping to one without limits admits from an empty bucket, flipping back limits again', () => {
      const dp = h!.dp;
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 1 } }));
      resetBuckets(dp);
      putSourceBucket(dp, CLIENT, {});
      expect(run(buildFrame(syn(52000)))).toBe(path.drop);
      installConfig(dp, cfg());
      expect(run(buildFrame(syn(52001)))).toBe(path.pass);
      installConfig(dp, cfg({ perSource: { rate: 1, burst: 1 } }));
      expect(run(buildFrame(syn(52002)))).toBe(path.drop);
    });
  });
}

function tuple(spec: FrameSpec): { saddr: string; daddr: string; sport: number; dport: number; proto: number } {
  const l4 = spec.l4 as { kind: string; sport: number; dport: number };
  return { saddr: spec.ipv4!.src, daddr: spec.ipv4!.dst, sport: l4.sport, dport: l4.dport, proto: l4.kind === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP };
}
