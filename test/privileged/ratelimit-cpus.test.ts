// The over-admission bound of bpf/lib/ratelimit.h, measured with every CPU racing on one bucket:
// test/lib/test-run-cpus.c runs the pinned ingress program with BPF_PROG_TEST_RUN from one thread
// pinned to each CPU, released together, each packet a SYN of a flow of its own. The bound stated
// in ratelimit.h: over T seconds a bucket admits at most burst + rate * (T + 1 ms) + (N_CPU - 1)
// (LB_RL_REFILL_NS: a bucket with tokens is refilled at most once per ms). T is the
// helper's own measure of the race (from the release to the last packet); nothing here asserts on
// time, only on counts against that bound.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeU32, installConfig, instanceDir, readRateLimitStats, type GenerationConfig } from '../../src/dataplane/index.js';
import { LO_IFINDEX, clearFlows, closeHarness, config, openHarness, tcpSpec, tgt, type Harness } from '../lib/fixture-harness.js';
import { TCP_SYN, buildFrame } from '../lib/packet.js';
import { compileTestRunCpus, type TestRunCpus } from '../lib/test-run-cpus.js';

const CPUS = Math.min(availableParallelism(), 64);
const PER_CPU = 3000;
const VIP = '10.100.0.1';
const G = [tgt('10.0.0.1', 8080, 5, 11), tgt('10.0.0.2', 8081, 3, 12), tgt('10.0.0.3', 8082, 2, 13)];
/** LB_RL_REFILL_NS in seconds. */
const REFILL_S = 0.001;

let h: Harness | undefined;
let helper: TestRunCpus | undefined;

beforeAll(() => {
  helper = compileTestRunCpus();
  h = openHarness('rlcpu');
});
afterAll(() => {
  closeHarness(h);
  helper?.remove();
});

function race(prog: 'xdp' | 'tc', base: number): { admitted: number; dropped: number; perCpu: number[]; seconds: number } {
  const frame = buildFrame(tcpSpec({ addr: '172.16.9.10', port: base }, { addr: VIP, port: 80 }, TCP_SYN));
  const pin = join(instanceDir(h!.instance), prog === 'xdp' ? 'prog_xdp' : 'prog_tc_in');
  const r = helper!.run(prog, pin, frame, base, PER_CPU, CPUS, LO_IFINDEX);
  for (const c of r.cpus) expect(c, `CPU ${c.cpu} ran every packet`).toMatchObject({ err: 0, other: 0 });
  const [pass, drop] = prog === 'xdp' ? [2, 1] : [0, 2];
  const perCpu = r.cpus.map((c) => c.verdicts[pass]!);
  const dropped = r.cpus.reduce((n, c) => n + c.verdicts[drop]!, 0);
  expect(perCpu.reduce((a, b) => a + b, 0) + dropped).toBe(CPUS * PER_CPU);
  return { admitted: perCpu.reduce((a, b) => a + b, 0), dropped, perCpu, seconds: r.ns / 1e9 };
}

function resetBuckets(): void {
  const keys = [...h!.dp.maps.lb_rl_src.keys()];
  if (keys.length > 0) h!.dp.maps.lb_rl_src.deleteBatch(keys);
  for (const t of G) h!.dp.maps.lb_rl_backend.update(encodeU32(t.targetId), Buffer.alloc(24));
  clearFlows(h!.dp);
}

const cfg = (settings: Partial<GenerationConfig['settings']>): GenerationConfig =>
  config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G }, settings });

describe(`one bucket raced from ${CPUS} CPUs at once`, () => {
  it('needs more than one CPU to mean anything', () => {
    expect(CPUS).toBeGreaterThan(1);
  });

  for (const prog of ['xdp', 'tc'] as const) {
    it(`per source (${prog}): admitted <= burst + rate * (T + 1 ms) + (N_CPU - 1), and at least the burst`, () => {
      const rate = 2000;
      const burst = 100;
      installConfig(h!.dp, cfg({ perSource: { rate, burst } }));
      resetBuckets();
      const before = readRateLimitStats(h!.dp);
      const r = race(prog, 1024);
      const bound = burst + Math.floor(rate * (r.seconds + REFILL_S)) + (CPUS - 1);
      expect(r.admitted, `admitted ${r.admitted} in ${r.seconds.toFixed(3)} s per CPU ${r.perCpu.join('/')}`).toBeLessThanOrEqual(bound);
      expect(r.admitted).toBeGreaterThanOrEqual(burst);
      // Refill took part in the race (else this is only the burst test again), and every CPU admitted some.
      expect(r.dropped).toBeGreaterThan(0);
      for (const n of r.perCpu) expect(n).toBeGreaterThan(0);
      expect(Number(readRateLimitStats(h!.dp).source_limited - before.source_limited)).toBe(r.dropped);
    });

    it(`per backend (${prog}): the group admits <= its backends' bursts + rate * (T + 1 ms) each + (N_CPU - 1) each`, () => {
      const rate = 1000;
      const burst = 30;
      installConfig(h!.dp, cfg({ perBackend: { rate, burst } }));
      resetBuckets();
      const r = race(prog, 20000);
      const bound = G.length * (burst + Math.floor(rate * (r.seconds + REFILL_S)) + (CPUS - 1));
      expect(r.admitted, `admitted ${r.admitted} in ${r.seconds.toFixed(3)} s`).toBeLessThanOrEqual(bound);
      expect(r.admitted).toBeGreaterThanOrEqual(G.length * burst);
      expect(r.dropped).toBeGreaterThan(0);
    });
  }
});
