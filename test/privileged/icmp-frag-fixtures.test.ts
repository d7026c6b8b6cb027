// ICMP errors and fragments through BPF_PROG_TEST_RUN (bpf/lib/icmp.h, bpf/lib/frag.h). Each
// ingress case runs through lb_xdp_ingress and lb_tc_ingress, each egress case through
// lb_tc_egress; the output must be byte for byte the frame test/lib/packet.ts builds for the
// translated packet (every checksum, the quoted ones included, computed from scratch), and a
// packet lb must not translate leaves byte-identical. Counter deltas and the whole lb_flows table
// are checked after each packet (runFixture). Behaviour: docs/dataplane.md, "ICMP errors" and
// "Fragments".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_CT_REPLIED, type DataPlane } from '../../src/dataplane/index.js';
import {
  TC_ACT_OK, XDP_PASS, closeHarness, config, expectPair, flowPair, openHarness, predict, runFixture, tgt, totLen,
  type Endpoint, type FixtureCase, type FlowEntry, type Harness,
} from '../lib/fixture-harness.js';
import {
  ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_FRAG_NEEDED, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED, buildFrame,
  type FrameSpec, type InnerPacketSpec, type L4Spec,
} from '../lib/packet.js';

const ep = (addr: string, port: number): Endpoint => ({ addr, port });
const HTTP = ep('10.100.0.1', 80);
const DNS = ep('10.100.0.1', 53);
const A = tgt('10.0.0.1', 8080, 1, 11);
const U = tgt('10.0.1.1', 5353, 1, 21);
const BA = ep(A.addr, A.port);
const BU = ep(U.addr, U.port);
const CLIENT = '172.16.5.10';
const client = (port: number): Endpoint => ep(CLIENT, port);
const CLIENT_ROUTER = '172.16.5.1'; // a router on the client's side (or the balancer's client-facing address)
const BACKEND_ROUTER = '10.0.0.254'; // a router between the balancer and the backends
const HOST_UNREACH = 1;
const ICMP_NET_UNREACH = 0;

const CFG = config({
  listeners: [{ vip: HTTP.addr, port: 80, id: 1, group: 1 }, { vip: DNS.addr, port: 53, proto: IPPROTO_UDP, id: 2, group: 2 }],
  groups: { 1: [A], 2: [U] },
});

const tcpFlow = (c: Endpoint): [FlowEntry, FlowEntry] => flowPair(c, HTTP, BA, IPPROTO_TCP, A.targetId);
const udpFlow = (c: Endpoint): [FlowEntry, FlowEntry] => flowPair(c, DNS, BU, IPPROTO_UDP, U.targetId);

const tcpL4 = (src: Endpoint, dst: Endpoint): L4Spec =>
  ({ kind: 'tcp', sport: src.port, dport: dst.port, seq: 7000, ack: 9000, flags: 0x18, payload: Buffer.alloc(600, 0x5a) });
const udpL4 = (src: Endpoint, dst: Endpoint, checksum?: 'zero'): L4Spec =>
  ({ kind: 'udp', sport: src.port, dport: dst.port, payload: Buffer.alloc(900, 0x33), ...(checksum ? { checksum } : {}) });

interface Quote { src: Endpoint; dst: Endpoint; proto: 'tcp' | 'udp'; options?: Buffer; quoteBytes?: number; zeroCsum?: boolean; ttl?: number }

/** The quoted datagram: its IP header and `quoteBytes` (default IHL + 8, RFC 792) of it. */
function quote(q: Quote): InnerPacketSpec {
  const l4 = q.proto === 'tcp' ? tcpL4(q.src, q.dst) : udpL4(q.src, q.dst, q.zeroCsum ? 'zero' : undefined);
  return {
    ipv4: { src: q.src.addr, dst: q.dst.addr, id: 0x2222, ttl: q.ttl ?? 63, df: true, ...(q.options ? { options: q.options } : {}) },
    l4, ...(q.quoteBytes !== undefined ? { quoteBytes: q.quoteBytes } : {}),
  };
}

function icmpError(src: string, dst: string, type: number, code: number, inner: InnerPacketSpec, extra: { mtu?: number; mf?: boolean } = {}): FrameSpec {
  return {
    ipv4: { src, dst, id: 0x0bad, ttl: 64, ...(extra.mf ? { mf: true } : {}) },
    l4: { kind: 'icmp', type, code, inner, ...(extra.mtu !== undefined ? { mtu: extra.mtu } : {}) },
  };
}

// ---- Toward the backend: errors from the client side about replies lb sent from the VIP ----

/**
 * An error sent to the VIP by `from` about a reply VIP -> client; translated, it goes to the
 * backend and quotes backend -> client.
 */
function towardBackend(description: string, from: string, type: number, code: number, q: Omit<Quote, 'src' | 'dst'>, c: Endpoint,
  vip: Endpoint, backend: Endpoint, flows: () => FlowEntry[], mtu?: number): FixtureCase {
  const extra = mtu !== undefined ? { mtu } : {};
  const input = buildFrame(icmpError(from, vip.addr, type, code, quote({ ...q, src: vip, dst: c }), extra));
  const output = buildFrame(icmpError(from, backend.addr, type, code, quote({ ...q, src: backend, dst: c }), extra));
  return {
    description, setup: { config: CFG, flows }, input, verdict: XDP_PASS, output,
    counters: { xdp_rx: 1, icmp_xlat: 1 }, flows: 'unchanged',
  };
}

function ingressUntouched(description: string, input: Buffer, flows: () => FlowEntry[], counter: 'not_ipv4' | 'fragment' = 'not_ipv4'): FixtureCase {
  return { description, setup: { config: CFG, flows }, input, verdict: XDP_PASS, output: 'input', counters: { xdp_rx: 1, [counter]: 1 }, flows: 'unchanged' };
}

const RR_OPTION = Buffer.concat([Buffer.from([0x07, 11, 4]), Buffer.alloc(8), Buffer.from([0])]); // record route: IHL 8

const ingressCases: FixtureCase[] = [
  towardBackend('UDP port unreachable from the client about a reply: to the backend, quoting backend:port -> client',
    CLIENT, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, { proto: 'udp' }, client(42000), DNS, BU, () => udpFlow(client(42000))),
  towardBackend('fragmentation needed from a client-side router about a TCP reply (8-byte quote): translated, MTU kept',
    CLIENT_ROUTER, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, { proto: 'tcp' }, client(42001), HTTP, BA, () => tcpFlow(client(42001)), 1280),
  towardBackend('time exceeded quoting a whole TCP header (the quoted TCP checksum is updated too)',
    CLIENT_ROUTER, ICMP_TIME_EXCEEDED, 0, { proto: 'tcp', quoteBytes: 20 + 20 + 40 }, client(42002), HTTP, BA, () => tcpFlow(client(42002))),
  towardBackend('host unreachable quoting a datagram with IPv4 options (IHL 8)',
    CLIENT_ROUTER, ICMP_DEST_UNREACH, HOST_UNREACH, { proto: 'udp', options: RR_OPTION }, client(42003), DNS, BU, () => udpFlow(client(42003))),
  towardBackend('net unreachable quoting a UDP reply without a checksum (0 stays 0)',
    CLIENT_ROUTER, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, { proto: 'udp', zeroCsum: true, quoteBytes: 60 }, client(42004), DNS, BU,
    () => udpFlow(client(42004))),
  towardBackend('a quote of the whole reply (576-byte error, RFC 1812)',
    CLIENT_ROUTER, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, { proto: 'udp', quoteBytes: 548 }, client(42005), DNS, BU, () => udpFlow(client(42005))),
  ingressUntouched('a quote with 4 bytes of UDP (ports only, no checksum): untouched', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42010), proto: 'udp', quoteBytes: 24 }))), () => udpFlow(client(42010))),
  ingressUntouched('a quote cut inside the quoted IPv4 header: untouched', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42011), proto: 'udp', quoteBytes: 16 }))), () => udpFlow(client(42011))),
  ingressUntouched('a quote whose IPv4 options end past the message: untouched', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42012), proto: 'udp', options: RR_OPTION, quoteBytes: 30 }))),
  () => udpFlow(client(42012))),
  ingressUntouched('an error about a flow lb does not have: untouched', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42013), proto: 'udp' }))), () => udpFlow(client(42099))),
  ingressUntouched('an error quoting TCP under a UDP flow: untouched (the protocol is part of the key)', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42014), proto: 'tcp' }))), () => udpFlow(client(42014))),
  ingressUntouched('an error about the reply sent to another address than the VIP: untouched', buildFrame(icmpError(CLIENT, '10.100.0.9',
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42015), proto: 'udp' }))), () => udpFlow(client(42015))),
  ingressUntouched('an error from the backend to the client (the egress case) arriving on an ingress path: untouched',
    buildFrame(icmpError(U.addr, CLIENT, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: client(42016), dst: BU, proto: 'udp' }))),
    () => udpFlow(client(42016))),
  ingressUntouched('a fragmented ICMP error (MF set): untouched', buildFrame(icmpError(CLIENT, DNS.addr,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: DNS, dst: client(42017), proto: 'udp' }), { mf: true })), () => udpFlow(client(42017))),
  ingressUntouched('an echo reply to the VIP: untouched', buildFrame({
    ipv4: { src: CLIENT, dst: DNS.addr }, l4: { kind: 'icmp', type: ICMP_ECHO_REPLY, id: 1, seq: 2, payload: Buffer.from('ping') },
  }), () => udpFlow(client(42018))),
];

// ---- Toward the client (TC egress): errors about DNATed client packets ----

/** An error to the client by `from` about client -> backend; translated, it quotes client -> VIP. */
function towardClient(description: string, from: string, type: number, code: number, q: Omit<Quote, 'src' | 'dst'>, c: Endpoint,
  vip: Endpoint, backend: Endpoint, flows: () => FlowEntry[], mtu?: number): FixtureCase {
  const extra = mtu !== undefined ? { mtu } : {};
  const outFrom = from === backend.addr ? vip.addr : from; // the backend speaking for itself speaks as the VIP
  return {
    description, prog: 'tc', setup: { config: CFG, flows },
    input: buildFrame(icmpError(from, c.addr, type, code, quote({ ...q, src: c, dst: backend }), extra)),
    verdict: TC_ACT_OK,
    output: buildFrame(icmpError(outFrom, c.addr, type, code, quote({ ...q, src: c, dst: vip }), extra)),
    counters: { icmp_xlat: 1 }, flows: 'unchanged',
  };
}

function egressUntouched(description: string, input: Buffer, flows: () => FlowEntry[]): FixtureCase {
  return { description, prog: 'tc', setup: { config: CFG, flows }, input, verdict: TC_ACT_OK, output: 'input', counters: {}, flows: 'unchanged' };
}

const egressCases: FixtureCase[] = [
  towardClient("fragmentation needed from the balancer's own kernel about a DNATed segment: the quote names VIP:80 again",
    CLIENT_ROUTER, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, { proto: 'tcp' }, client(43000), HTTP, BA, () => tcpFlow(client(43000)), 1280),
  towardClient('UDP port unreachable from the backend itself: outer source and quote become the VIP',
    U.addr, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, { proto: 'udp' }, client(43001), DNS, BU, () => udpFlow(client(43001))),
  towardClient('time exceeded from a router behind the balancer (whole TCP header quoted): its address stays',
    BACKEND_ROUTER, ICMP_TIME_EXCEEDED, 0, { proto: 'tcp', quoteBytes: 20 + 20 + 40, ttl: 1 }, client(43002), HTTP, BA, () => tcpFlow(client(43002))),
  towardClient('host unreachable with IPv4 options in the quote (IHL 8)',
    BACKEND_ROUTER, ICMP_DEST_UNREACH, HOST_UNREACH, { proto: 'udp', options: RR_OPTION }, client(43003), DNS, BU, () => udpFlow(client(43003))),
  towardClient('TCP port unreachable (RST-less refusal) from the backend, quote of 28 bytes',
    A.addr, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, { proto: 'tcp' }, client(43004), HTTP, BA, () => tcpFlow(client(43004))),
  egressUntouched('a quote with 4 bytes of TCP: untouched', buildFrame(icmpError(CLIENT_ROUTER, CLIENT,
    ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, quote({ src: client(43010), dst: BA, proto: 'tcp', quoteBytes: 24 }), { mtu: 1280 })), () => tcpFlow(client(43010))),
  egressUntouched('a quote cut inside the quoted IPv4 options: untouched', buildFrame(icmpError(CLIENT_ROUTER, CLIENT,
    ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, quote({ src: client(43011), dst: BA, proto: 'tcp', options: RR_OPTION, quoteBytes: 26 }))),
  () => tcpFlow(client(43011))),
  egressUntouched('an error to the client about a flow lb does not have: untouched', buildFrame(icmpError(U.addr, CLIENT,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: client(43012), dst: BU, proto: 'udp' }))), () => udpFlow(client(43099))),
  egressUntouched('an error about the client\'s packet sent to another address than the client: untouched', buildFrame(icmpError(U.addr, '172.16.5.99',
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: client(43014), dst: BU, proto: 'udp' }))), () => udpFlow(client(43014))),
  egressUntouched('an error quoting client -> VIP (already the client view): untouched', buildFrame(icmpError(CLIENT_ROUTER, CLIENT,
    ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quote({ src: client(43013), dst: DNS, proto: 'udp' }))), () => udpFlow(client(43013))),
];

// ---- Fragments ----

const FRAG_ID = 0x7777;
const fragClient = client(44000);
/** The UDP backend the first fragment's flow gets (the group has one target, predicted anyway). */
const fragTarget = predict([U], { saddr: CLIENT, daddr: DNS.addr, sport: fragClient.port, dport: DNS.port, proto: IPPROTO_UDP })!;
const firstFragment = (src: Endpoint, dst: Endpoint): Buffer => buildFrame({
  ipv4: { src: src.addr, dst: dst.addr, id: FRAG_ID, mf: true }, l4: udpL4(src, dst),
});
const laterFragment = (src: string, dst: string, mf: boolean): Buffer => buildFrame({
  ipv4: { src, dst, id: FRAG_ID, fragOffset: 115, ...(mf ? { mf: true } : {}) }, l4: { kind: 'raw', protocol: IPPROTO_UDP, data: Buffer.alloc(400, 0x44) },
});

function clearFrags(dp: DataPlane): void {
  const keys = [...dp.maps.lb_frags.keys()];
  if (keys.length > 0) dp.maps.lb_frags.deleteBatch(keys);
}

const fragIngressCases: FixtureCase[] = [
  {
    description: 'a later fragment after its first one: DNATed to the first fragment\'s backend (IPv4 checksum only)',
    setup: {
      config: CFG,
      before: (dp) => {
        clearFrags(dp);
        expect(dp.testRun('xdp', firstFragment(fragClient, DNS), { ifindex: 1 }).retval).toBe(XDP_PASS);
      },
    },
    input: laterFragment(CLIENT, DNS.addr, true),
    verdict: XDP_PASS,
    output: laterFragment(CLIENT, U.addr, true),
    counters: { xdp_rx: 1, frag_nat: 1, fib_pass: 1 },
    targets: { [U.targetId]: { packets: 1, bytes: totLen(laterFragment(CLIENT, DNS.addr, true)) } },
    flows: expectPair(flowPair(fragClient, DNS, ep(fragTarget.addr, fragTarget.port), IPPROTO_UDP, fragTarget.targetId)),
  },
  {
    description: 'the last fragment (MF clear) of a tracked datagram: DNATed',
    setup: {
      config: CFG,
      before: (dp) => {
        clearFrags(dp);
        expect(dp.testRun('xdp', firstFragment(fragClient, DNS), { ifindex: 1 }).retval).toBe(XDP_PASS);
      },
    },
    input: laterFragment(CLIENT, DNS.addr, false),
    verdict: XDP_PASS,
    output: laterFragment(CLIENT, U.addr, false),
    counters: { xdp_rx: 1, frag_nat: 1, fib_pass: 1 },
    targets: { [U.targetId]: { packets: 1, bytes: totLen(laterFragment(CLIENT, DNS.addr, false)) } },
    flows: expectPair(flowPair(fragClient, DNS, ep(fragTarget.addr, fragTarget.port), IPPROTO_UDP, fragTarget.targetId)),
  },
  {
    description: 'a later fragment whose first one was not seen: untouched (counted in fragment)',
    setup: { config: CFG, before: clearFrags },
    input: laterFragment(CLIENT, DNS.addr, true),
    verdict: XDP_PASS, output: 'input', counters: { xdp_rx: 1, fragment: 1 }, flows: [],
  },
  {
    description: 'a later fragment with another IP id than the tracked first one: untouched',
    setup: {
      config: CFG,
      before: (dp) => {
        clearFrags(dp);
        expect(dp.testRun('xdp', firstFragment(fragClient, DNS), { ifindex: 1 }).retval).toBe(XDP_PASS);
      },
    },
    input: buildFrame({ ipv4: { src: CLIENT, dst: DNS.addr, id: FRAG_ID + 1, fragOffset: 115 }, l4: { kind: 'raw', protocol: IPPROTO_UDP, data: Buffer.alloc(64) } }),
    verdict: XDP_PASS, output: 'input', counters: { xdp_rx: 1, fragment: 1 },
    flows: expectPair(flowPair(fragClient, DNS, ep(fragTarget.addr, fragTarget.port), IPPROTO_UDP, fragTarget.targetId)),
  },
];

const replyClient = client(44001);
const fragEgressCases: FixtureCase[] = [
  {
    description: 'a later fragment of a reverse-NATed reply: its source becomes the VIP',
    prog: 'tc',
    setup: {
      config: CFG,
      flows: () => udpFlow(replyClient),
      before: (dp) => {
        clearFrags(dp);
        expect(dp.testRun('tc', firstFragment(BU, replyClient), { ifindex: 1 }).retval).toBe(TC_ACT_OK);
      },
    },
    input: laterFragment(U.addr, CLIENT, false),
    verdict: TC_ACT_OK,
    output: laterFragment(DNS.addr, CLIENT, false),
    counters: { frag_nat: 1 },
    // the first fragment was the flow's first reply
    flows: expectPair(flowPair(replyClient, DNS, BU, IPPROTO_UDP, U.targetId, { state: LB_CT_REPLIED, reverseState: LB_CT_REPLIED }), ['kept', 'kept']),
  },
  {
    description: 'a later fragment of a reply whose first fragment was not seen: untouched',
    prog: 'tc',
    setup: { config: CFG, flows: () => udpFlow(replyClient), before: clearFrags },
    input: laterFragment(U.addr, CLIENT, false),
    verdict: TC_ACT_OK, output: 'input', counters: {}, flows: 'unchanged',
  },
];

/** An ingress case run through the TC ingress program: the same bytes, tc_rx for xdp_rx. */
function onTc(c: FixtureCase): FixtureCase {
  const { xdp_rx: rx, ...counters } = c.counters;
  return { ...c, prog: 'tc_ingress', verdict: TC_ACT_OK, counters: { ...counters, ...(rx ? { tc_rx: rx } : {}) } };
}

describe('ICMP errors and fragments: fixture tables', () => {
  let h: Harness | undefined;
  beforeAll(() => { h = openHarness('icmp'); });
  afterAll(() => { closeHarness(h); });

  it('covers each direction and error type', () => {
    const all = [...ingressCases, ...egressCases, ...fragIngressCases, ...fragEgressCases];
    expect(new Set(all.map((c) => c.description)).size).toBe(all.length);
    expect(ingressCases.filter((c) => c.counters.icmp_xlat).length).toBeGreaterThanOrEqual(5);
    expect(egressCases.filter((c) => c.counters.icmp_xlat).length).toBeGreaterThanOrEqual(5);
  });

  describe('toward the backend, through lb_xdp_ingress', () => {
    for (const c of ingressCases) it(c.description, () => runFixture(h!, c));
    for (const c of fragIngressCases) it(c.description, () => runFixture(h!, c));
  });
  describe('toward the backend, through lb_tc_ingress', () => {
    for (const c of ingressCases) it(c.description, () => runFixture(h!, onTc(c)));
    for (const c of fragIngressCases) it(c.description, () => runFixture(h!, onTc(c)));
  });
  describe('toward the client, through lb_tc_egress', () => {
    for (const c of egressCases) it(c.description, () => runFixture(h!, c));
    for (const c of fragEgressCases) it(c.description, () => runFixture(h!, c));
  });
});
