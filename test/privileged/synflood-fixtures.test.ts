// The SYN-flood defence (bpf/lib/halfopen.h) through BPF_PROG_TEST_RUN: a TCP SYN creates its
// flow in lb_halfopen, not in lb_flows; the client's next packet promotes both entries into
// lb_flows; the backend's SYN-ACK and RST are found in lb_halfopen by TC egress. The fixture table
// checks output frames, counters and both tables whole (test/lib/fixture-harness.ts). Last, a
// flood of distinct SYNs larger than lb_flows itself (so that without the defence it would evict
// every established flow) is run from every CPU by test/lib/test-run-cpus.c: the established
// flows must all still be in lb_flows, and still go to their backends after the weights change.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, LB_CT_FIN_CLIENT, LB_CT_REPLIED, LB_DIR_FORWARD, LB_MAX_FLOWS, LB_MAX_HALFOPEN, encodeFlow, encodeFlowKey, installConfig,
  instanceDir,
} from '../../src/dataplane/index.js';
import {
  LO_IFINDEX, TC_ACT_OK, XDP_PASS, clearFlows, closeHarness, config, dnatSpec, expectHalfOpen, expectPair, flowPair, install,
  openHarness, readFlows, runFixture, secondsAgo, snatSpec, statDelta, tcpSpec, tgt, totLen, xdpRun,
  type Endpoint, type ExpectedFlow, type FixtureCase, type FlowEntry, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, buildFrame, type FrameSpec } from '../lib/packet.js';
import { compileTestRunCpus, type TestRunCpus } from '../lib/test-run-cpus.js';

const HTTP: Endpoint = { addr: '10.100.0.1', port: 80 };
const A = tgt('10.0.0.1', 8080, 1, 11);
const B = tgt('10.0.0.2', 8080, 0, 12);
const BA: Endpoint = { addr: A.addr, port: A.port };
const CFG = config({ listeners: [{ vip: HTTP.addr, port: HTTP.port, id: 1, group: 1 }], groups: { 1: [A, B] } });
/** The backend set changes: every new flow goes to B now, established ones must stay on A. */
const MOVED = config({ listeners: [{ vip: HTTP.addr, port: HTTP.port, id: 1, group: 1 }], groups: { 1: [{ ...A, weight: 0 }, { ...B, weight: 1 }] } });
const client = (port: number, addr = '172.16.7.10'): Endpoint => ({ addr, port });
const pairOf = (c: Endpoint): [FlowEntry, FlowEntry] => flowPair(c, HTTP, BA, IPPROTO_TCP, A.targetId);
const syn = (c: Endpoint): FrameSpec => tcpSpec(c, HTTP, TCP_SYN);
const fromBackend = (c: Endpoint, flags: number): FrameSpec => tcpSpec(BA, c, flags);

let h: Harness | undefined;
const xdp = (spec: FrameSpec): Buffer => xdpRun(h!.dp, buildFrame(spec));
const egress = (spec: FrameSpec): Buffer => {
  const res = h!.dp.testRun('tc', buildFrame(spec), { ifindex: LO_IFINDEX });
  expect(res.retval).toBe(TC_ACT_OK);
  return res.data;
};

/** Entries with LB_CT_REPLIED (and `forwardBits` on the forward one): a SYN-ACK passed. */
function answered(entries: ExpectedFlow[], forwardBits = 0): ExpectedFlow[] {
  return entries.map((e) => ({
    ...e, value: { ...e.value, state: e.value.state | LB_CT_REPLIED | (e.value.dir === LB_DIR_FORWARD ? forwardBits : 0) },
  }));
}

beforeAll(() => { h = openHarness('synflood'); });
afterAll(() => { closeHarness(h); });

describe('half-open flows: lb_halfopen until the client\'s next packet', () => {
  const c1 = client(50001);
  const c2 = client(50002);
  const c3 = client(50003);
  const c4 = client(50004);
  const c5 = client(50005);
  const c6 = client(50006);
  const c7 = client(50007);
  const cases: FixtureCase[] = [
    {
      description: 'SYN: DNAT, both entries in lb_halfopen, none in lb_flows',
      setup: { config: CFG }, input: buildFrame(syn(c1)), verdict: XDP_PASS, output: buildFrame(dnatSpec(syn(c1), A)),
      counters: { xdp_rx: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
      targets: { [A.targetId]: { packets: 1, bytes: totLen(buildFrame(syn(c1))), newFlows: 1 } },
      flows: expectHalfOpen(pairOf(c1)),
    },
    {
      description: 'a retransmitted SYN: the half-open flow\'s backend, still half-open, even after the weights moved',
      setup: { config: CFG, before: (dp) => { xdpRun(dp, buildFrame(syn(c2))); installConfig(dp, MOVED); } },
      input: buildFrame(syn(c2)), verdict: XDP_PASS, output: buildFrame(dnatSpec(syn(c2), A)),
      counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
      targets: { [A.targetId]: { packets: 1, bytes: totLen(buildFrame(syn(c2))) } },
      flows: expectHalfOpen(pairOf(c2)),
    },
    {
      description: 'TC egress: the backend\'s SYN-ACK is translated from the half-open reverse entry; LB_CT_REPLIED on both, still half-open',
      prog: 'tc',
      setup: { config: CFG, before: () => { xdp(syn(c3)); } },
      input: buildFrame(fromBackend(c3, TCP_SYN | TCP_ACK)), verdict: TC_ACT_OK,
      output: buildFrame(snatSpec(fromBackend(c3, TCP_SYN | TCP_ACK), HTTP)),
      counters: { tc_revnat: 1 },
      flows: answered(expectHalfOpen(pairOf(c3))),
    },
    {
      description: 'the client\'s ACK after the SYN-ACK promotes both entries into lb_flows (its backend kept though the weights moved)',
      setup: {
        config: CFG,
        before: (dp) => { xdp(syn(c4)); egress(fromBackend(c4, TCP_SYN | TCP_ACK)); installConfig(dp, MOVED); },
      },
      input: buildFrame(tcpSpec(c4, HTTP, TCP_ACK)), verdict: XDP_PASS, output: buildFrame(dnatSpec(tcpSpec(c4, HTTP, TCP_ACK), A)),
      counters: { xdp_rx: 1, ct_hit: 1, ho_promoted: 1, fib_pass: 1 },
      targets: { [A.targetId]: { packets: 1, bytes: totLen(buildFrame(tcpSpec(c4, HTTP, TCP_ACK))) } },
      flows: answered(expectPair(pairOf(c4))),
    },
    {
      description: 'a promotion whose reverse entry the LRU evicted writes it anew in lb_flows',
      setup: {
        config: CFG,
        before: (dp) => {
          xdp(syn(c5));
          dp.maps.lb_halfopen.delete(encodeFlowKey(pairOf(c5)[1].key));
        },
      },
      input: buildFrame(tcpSpec(c5, HTTP, TCP_ACK)), verdict: XDP_PASS, output: buildFrame(dnatSpec(tcpSpec(c5, HTTP, TCP_ACK), A)),
      counters: { xdp_rx: 1, ct_hit: 1, ho_promoted: 1, fib_pass: 1 },
      targets: { [A.targetId]: { packets: 1, bytes: totLen(buildFrame(tcpSpec(c5, HTTP, TCP_ACK))) } },
      flows: expectPair(pairOf(c5)),
    },
    {
      description: 'the backend refuses (RST to the SYN): failed_conns, both half-open entries gone, lb_flows untouched',
      prog: 'tc',
      setup: { config: CFG, before: () => { xdp(syn(c6)); } },
      input: buildFrame(fromBackend(c6, TCP_RST | TCP_ACK)), verdict: TC_ACT_OK,
      output: buildFrame(snatSpec(fromBackend(c6, TCP_RST | TCP_ACK), HTTP)),
      counters: { tc_revnat: 1, ct_closed: 1 },
      targets: { [A.targetId]: { closedFlows: 1, failedConns: 1 } },
      flows: [],
    },
    {
      description: 'a half-open flow older than the FIN timeout: the next SYN chooses again (under the moved weights: B)',
      setup: {
        config: CFG,
        before: (dp) => {
          installConfig(dp, MOVED);
          for (const f of pairOf(c7)) {
            f.value.lastSeenNs = secondsAgo(60);
            dp.maps.lb_halfopen.update(encodeFlowKey(f.key), encodeFlow(f.value));
          }
          dp.markFlowDestinations([pairOf(c7)[0].key]);
        },
      },
      input: buildFrame(syn(c7)), verdict: XDP_PASS, output: buildFrame(dnatSpec(syn(c7), B)),
      counters: { xdp_rx: 1, ct_expired: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
      targets: { [A.targetId]: { closedFlows: 1 }, [B.targetId]: { packets: 1, bytes: totLen(buildFrame(syn(c7))), newFlows: 1 } },
      flows: expectHalfOpen(flowPair(c7, HTTP, { addr: B.addr, port: B.port }, IPPROTO_TCP, B.targetId)),
    },
  ];
  for (const c of cases) it(c.description, () => runFixture(h!, c));

  it('a FIN racing the handshake: the backend\'s FIN while half-open, then the client\'s FIN|ACK promotes and is the second FIN', () => {
    const dp = h!.dp;
    install(dp, CFG);
    clearFlows(dp);
    const c = client(50008);
    xdp(syn(c));
    egress(fromBackend(c, TCP_SYN | TCP_ACK));
    egress(fromBackend(c, TCP_FIN | TCP_ACK));
    xdp(tcpSpec(c, HTTP, TCP_FIN | TCP_ACK));
    expect(readFlows(dp, 'halfopen')).toEqual([]);
    const fwd = readFlows(dp).find((f) => f.key.saddr === c.addr && f.key.sport === c.port)!;
    expect(fwd.value.state & LB_CT_FIN_CLIENT).toBe(LB_CT_FIN_CLIENT);
    expect((fwd.value.ev ?? 0n) & 1n, 'its conn-close was emitted (LB_CT_EV_CLOSED)').toBe(1n);
  });

  it('a client port reused toward another VIP port with the same backend: the new SYN-ACK gets the new VIP port, not the old flow\'s', () => {
    // Two listeners whose groups hold the same backend A: client:port -> VIP:81 -> A, then the
    // same client:port -> VIP:80 -> A. Both flows share the backend's tuple A -> client:port, whose
    // reverse entry in lb_flows (the first flow's) TC egress reads before lb_halfopen.
    const dp = h!.dp;
    const OTHER: Endpoint = { addr: HTTP.addr, port: 81 };
    install(dp, config({ listeners: [{ vip: HTTP.addr, port: HTTP.port, id: 1, group: 1 }, { vip: OTHER.addr, port: OTHER.port, id: 2, group: 2 }], groups: { 1: [A], 2: [A] } }));
    clearFlows(dp);
    const c = client(50009);
    xdp(tcpSpec(c, OTHER, TCP_SYN));
    egress(fromBackend(c, TCP_SYN | TCP_ACK));
    xdp(tcpSpec(c, OTHER, TCP_ACK));
    expect(readFlows(dp).length, 'the first flow is established in lb_flows').toBe(2);
    xdp(syn(c));
    expect(egress(fromBackend(c, TCP_SYN | TCP_ACK))).toEqual(buildFrame(snatSpec(fromBackend(c, TCP_SYN | TCP_ACK), HTTP)));
  });
});

describe('a flood of distinct SYNs larger than lb_flows', () => {
  const CPUS = Math.min(availableParallelism(), 64);
  const ESTABLISHED = 64;
  /** Source addresses of the flood; each sends SYNs from up to 60,000 source ports. */
  const PER_ADDRESS = 60_000;
  /** More SYNs than lb_flows holds flows, so that without the defence none of the established would survive. */
  const FLOOD = Math.ceil((LB_MAX_FLOWS / 2 + LB_MAX_HALFOPEN) / PER_ADDRESS) * PER_ADDRESS;
  let helper: TestRunCpus | undefined;
  beforeAll(() => { helper = compileTestRunCpus(); });
  afterAll(() => { helper?.remove(); });

  it(`${FLOOD} SYNs from spoofed sources leave every established flow in lb_flows, on its backend after the weights change`, () => {
    const dp = h!.dp;
    install(dp, CFG);
    clearFlows(dp);
    const est = Array.from({ length: ESTABLISHED }, (_, i) => client(20000 + i, '172.16.8.1'));
    for (const c of est) {
      xdp(syn(c));
      egress(fromBackend(c, TCP_SYN | TCP_ACK));
      xdp(tcpSpec(c, HTTP, TCP_ACK));
    }
    const before = dp.readStats();
    const pin = join(instanceDir(h!.instance), 'prog_xdp');
    const perCpu = Math.floor(PER_ADDRESS / CPUS);
    let sent = 0;
    for (let a = 0; sent < FLOOD; a++, sent += perCpu * CPUS) {
      const frame = buildFrame(syn(client(1, `198.18.${a}.7`)));
      const r = helper!.run('xdp', pin, frame, 1024, perCpu, CPUS, LO_IFINDEX);
      for (const c of r.cpus) expect(c, `CPU ${c.cpu} ran every SYN`).toMatchObject({ err: 0, other: 0 });
      expect(r.cpus.reduce((n, c) => n + c.verdicts[XDP_PASS]!, 0)).toBe(perCpu * CPUS);
    }
    // The flood churned lb_halfopen, not lb_flows: exactly the established pairs are there.
    const flows = readFlows(dp);
    const lost = est.filter((c) => !flows.some((f) => f.key.saddr === c.addr && f.key.sport === c.port));
    expect(lost.map((c) => `${c.addr}:${c.port}`), 'established flows evicted from lb_flows').toEqual([]);
    for (const c of est) {
      const fwd = flows.find((f) => f.key.saddr === c.addr && f.key.sport === c.port);
      expect(fwd?.value, `${c.addr}:${c.port} forward entry`).toMatchObject({ natAddr: A.addr, natPort: A.port, dir: LB_DIR_FORWARD });
    }
    expect(flows.length).toBe(2 * ESTABLISHED);
    const d = statDelta(before, dp.readStats());
    expect(d.ho_new, 'every SYN made a half-open flow').toBe(sent);
    expect(d.ho_promoted).toBe(0);
    expect(d.ct_new).toBe(d.ho_new);
    expect(dp.maps.lb_halfopen.lookupBatch(8192).length).toBeLessThanOrEqual(LB_MAX_HALFOPEN);
    // The backend set changes: an established flow's next packet still goes to A.
    install(dp, MOVED);
    for (const c of est) {
      const out = xdp(tcpSpec(c, HTTP, TCP_ACK | TCP_PSH));
      expect(out.subarray(30, 34), `${c.addr}:${c.port} after the flood`).toEqual(Buffer.from([10, 0, 0, 1]));
    }
  });
});
