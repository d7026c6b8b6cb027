// XDP ingress fixture table (Katran style): each case installs a GenerationConfig and conntrack
// entries, runs one frame through lb_xdp_ingress with BPF_PROG_TEST_RUN and checks the verdict,
// the output bytes against a frame built independently by test/lib/packet.ts (checksums computed
// from scratch), the lb_stats and lb_tstats deltas and the whole lb_flows table afterwards.
// Behaviour per packet class: docs/dataplane.md. Backend choices are predicted with
// flowHash/chooseTarget (src/core/flow-hash.ts).
//
// The root-namespace cases run on lo, where the backends have no usable route (and lb_tx_ports is
// empty), so a rewritten packet leaves with XDP_PASS and its MACs untouched (fib_pass). The
// redirect cases run in a network namespace this file creates, with a route and a permanent
// neighbour for the backends. Nothing is ever sent: BPF_PROG_TEST_RUN only runs the program.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_CLIENT, LB_DIR_FORWARD, LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAGLEV_SIZE, encodeGroup, encodeU32,
  flipTo, groupIndex, installConfig, interfaceIndex, ipv4ToU32, readCtl, writeGeneration,
  type DataPlane, type GenerationConfig, type GroupTarget,
} from '../../src/dataplane/index.js';
import {
  LO_IFINDEX, TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, XDP_REDIRECT, clearFlows, closeHarness, config, deleteNetns, dnatFrames, dnatSpec,
  expectCreated, expectHalfOpen, expectPair, flowPair, openHarness, portFor, predict, predictMaglev, runFixture, secondsAgo, sh, tcpSpec, tgt, totLen,
  udpSpec, uniqueName, xdpRun, zeroingPayload,
  type Endpoint, type FixtureCase, type Harness, type Tuple,
} from '../lib/fixture-harness.js';
import {
  ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV6, ICMP_DEST_UNREACH, ICMP_ECHO_REQUEST, ICMP_PORT_UNREACH,
  TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, buildFrame, tcpOption, truncate,
  type FrameSpec, type TcpSpec, type UdpSpec,
} from '../lib/packet.js';
import { flowHash } from '../../src/core/flow-hash.js';
import { withNetns } from '../../src/sandbox/netns.js';

// ---- The configuration most cases use ----

const VIP = '10.100.0.1';
const VIP2 = '10.100.0.2';
const CLIENT = '172.16.5.10';
const HTTP: Endpoint = { addr: VIP, port: 80 };
const DNS: Endpoint = { addr: VIP, port: 53 };
const HTTP_82: Endpoint = { addr: VIP, port: 82 };

/** Three targets with unequal weights. */
const A = tgt('10.0.0.1', 8080, 5, 11);
const B = tgt('10.0.0.2', 8081, 3, 12);
const C = tgt('10.0.0.3', 8082, 2, 13);
const G1 = [A, B, C];
/** The UDP group. */
const U = [tgt('10.0.1.1', 5353, 1, 21), tgt('10.0.1.2', 5354, 1, 22)];
/** A backend that is in no group (flows pointing at it predate the config). */
const OLD: Endpoint & { targetId: number } = { addr: '10.0.0.99', port: 8099, targetId: 19 };

const BASE = config({
  listeners: [
    { vip: VIP, port: 80, id: 1, group: 1 },
    { vip: VIP, port: 53, proto: IPPROTO_UDP, id: 2, group: 2 },
  ],
  groups: { 1: G1, 2: U },
});

const ep = (addr: string, port: number): Endpoint => ({ addr, port });

function tupleOf(spec: FrameSpec): Tuple {
  const l4 = spec.l4 as TcpSpec | UdpSpec;
  return { saddr: spec.ipv4!.src, daddr: spec.ipv4!.dst, sport: l4.sport, dport: l4.dport, proto: l4.kind === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP };
}

function chosen(targets: readonly GroupTarget[], spec: FrameSpec, persist = false): GroupTarget {
  const t = predict(targets, tupleOf(spec), persist);
  if (!t) throw new Error('the group cannot take new flows');
  return t;
}

/** A new flow: DNAT to the predicted target, both conntrack entries, new_flows on the target. */
function newFlow(description: string, cfg: GenerationConfig, targets: readonly GroupTarget[], spec: FrameSpec,
  opts: { persist?: boolean; vlans?: number; expect?: GroupTarget; trailer?: Buffer } = {}): FixtureCase {
  const to = chosen(targets, spec, opts.persist);
  if (opts.expect && to !== opts.expect) throw new Error(`${description}: the predictor picks ${to.addr}, the case wants ${opts.expect.addr}`);
  const frames = dnatFrames(spec, to);
  const trailer = opts.trailer ?? Buffer.alloc(0);
  const input = Buffer.concat([frames.input, trailer]);
  const made = expectCreated(spec, to);
  return {
    description,
    setup: { config: cfg },
    input,
    verdict: XDP_PASS,
    output: Buffer.concat([frames.output, trailer]),
    counters: { xdp_rx: 1, ct_new: 1, fib_pass: 1, ...made.counters },
    targets: { [to.targetId]: { packets: 1, bytes: totLen(input, opts.vlans), newFlows: 1 } },
    flows: made.flows,
  };
}

/** A packet XDP must leave alone: XDP_PASS, byte-identical, one counter besides xdp_rx. */
function untouched(description: string, input: Buffer, counter: 'not_listener' | 'not_ipv4' | 'malformed' | 'fragment' | null,
  cfg: GenerationConfig = BASE, ifindex = LO_IFINDEX): FixtureCase {
  return {
    description, setup: { config: cfg }, input, ifindex, verdict: XDP_PASS, output: 'input',
    counters: counter ? { xdp_rx: 1, [counter]: 1 } : { xdp_rx: 1 }, flows: [],
  };
}

const syn = (sport: number, dst: Endpoint = HTTP, src = CLIENT, extra: Parameters<typeof tcpSpec>[3] = {}): FrameSpec =>
  tcpSpec(ep(src, sport), dst, TCP_SYN, extra);
const withIp = (spec: FrameSpec, ip: Partial<NonNullable<FrameSpec['ipv4']>>): FrameSpec => ({ ...spec, ipv4: { ...spec.ipv4!, ...ip } });
const withTcp = (spec: FrameSpec, tcp: Partial<TcpSpec>): FrameSpec => ({ ...spec, l4: { ...(spec.l4 as TcpSpec), ...tcp } });

// ---- Tuples chosen so each of the three targets is hit by a SYN ----
const base = { saddr: CLIENT, daddr: VIP, dport: 80, proto: IPPROTO_TCP };
const portA = portFor(G1, 0, base);
const portB = portFor(G1, 1, base);
const portC = portFor(G1, 2, base);

// ---- Listener on a specific VIP vs a listener on any address ----
const ANYG = [tgt('10.0.3.1', 7000, 1, 41), tgt('10.0.3.2', 7001, 1, 42)];
const VIPG = [tgt('10.0.4.1', 7100, 1, 51)];
const ANY_CFG = config({
  listeners: [
    { vip: VIP, port: 80, id: 1, group: 1 },
    { vip: '0.0.0.0', port: 80, id: 2, group: 2 },
  ],
  groups: { 1: VIPG, 2: ANYG },
});

// ---- Source routes ----
const S16 = tgt('10.0.2.16', 9016, 1, 31);
const S24 = tgt('10.0.2.24', 9024, 1, 32);
const S32 = tgt('10.0.2.32', 9032, 1, 33);
const L2DEF = tgt('10.0.2.81', 9081, 1, 35);
const L2RT = tgt('10.0.2.96', 9096, 1, 36);
const SR_CFG = config({
  listeners: [
    { vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_SRC_ROUTES },
    { vip: VIP, port: 81, id: 2, group: 5, flags: LB_LF_SRC_ROUTES },
    { vip: VIP, port: 82, id: 3, group: 5 }, // has a route below but not the flag: never consulted
  ],
  groups: { 1: G1, 2: [S16], 3: [S24], 4: [S32], 5: [L2DEF], 6: [L2RT] },
  routes: [
    { listenerId: 1, cidr: '192.168.0.0/16', group: 2 },
    { listenerId: 1, cidr: '192.168.1.0/24', group: 3 },
    { listenerId: 1, cidr: '192.168.1.77/32', group: 4 },
    { listenerId: 2, cidr: '10.9.0.0/16', group: 6 },
    { listenerId: 3, cidr: '192.168.0.0/16', group: 2 },
  ],
});

// ---- Session persistence: a client whose persistent choice differs from the 5-tuple choice ----
const PERSIST_CFG = config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST }], groups: { 1: G1 } });
const persistClient = ((): string => {
  for (let i = 1; i < 250; i++) {
    const addr = `172.16.9.${i}`;
    const p = predict(G1, { ...base, saddr: addr, sport: 2222 }, true);
    if (p !== predict(G1, { ...base, saddr: addr, sport: 2222 }) && p !== predict(G1, { ...base, saddr: addr, sport: 1111 })) return addr;
  }
  throw new Error('no client whose persistent choice differs from its 5-tuple choices');
})();

// ---- Session persistence with a Maglev table (lb_maglev) ----
const MAGLEV_CFG = config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST }], groups: { 1: G1 }, maglev: [1] });
/** A client whose Maglev target differs from its cumulative choice (same client-address hash): only the table explains it. */
const maglevClient = ((): string => {
  for (let i = 1; i < 250; i++) {
    const addr = `172.16.11.${i}`;
    if (predictMaglev(G1, addr) !== predict(G1, { ...base, saddr: addr, sport: 1 }, true)) return addr;
  }
  throw new Error('no client whose Maglev choice differs from the cumulative choice');
})();
/** A 5-tuple whose cumulative choice differs from the Maglev choice of its client. */
const plainPort = portFor(G1, G1.indexOf(predictMaglev(G1, CLIENT) === A ? B : A), base, 48000);
// A persistent listener with source routes: the route's group has a table of its own.
const MR = [tgt('10.0.6.1', 9100, 1, 81), tgt('10.0.6.2', 9101, 1, 82), tgt('10.0.6.3', 9102, 1, 83)];
const MAGLEV_SR_CFG = config({
  listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST | LB_LF_SRC_ROUTES }],
  groups: { 1: G1, 2: MR },
  routes: [{ listenerId: 1, cidr: '192.168.7.0/24', group: 2 }],
  maglev: [1, 2],
});
const routedClient = ((): string => {
  for (let i = 1; i < 250; i++) {
    const addr = `192.168.7.${i}`;
    if (predictMaglev(MR, addr) !== predict(MR, { ...base, saddr: addr, sport: 1 }, true)) return addr;
  }
  throw new Error('no routed client whose Maglev choice differs from the cumulative choice');
})();

// ---- Weights change under an established flow ----
const G1_REWEIGHED = [{ ...A, weight: 2 }, { ...B, weight: 3 }, { ...C, weight: 5 }];
const portMoved = ((): number => {
  for (let sport = 30000; sport < 65536; sport++) {
    const t = { ...base, sport };
    if (predict(G1, t) === A && predict(G1_REWEIGHED, t) !== G1_REWEIGHED[0]) return sport;
  }
  throw new Error('no tuple whose choice moves when the weights change');
})();
const G1_DRAINED = [{ ...A, weight: 0 }, B, C];


const UDP_CLIENT = ep(CLIENT, 40053);
const udpZeroSpec = (() => {
  const s = udpSpec(UDP_CLIENT, DNS, Buffer.alloc(2));
  const to = chosen(U, s);
  return udpSpec(UDP_CLIENT, DNS, zeroingPayload(UDP_CLIENT, to));
})();

// ---- Malformed frames ----
const full = buildFrame(syn(40100));
const vlanFull = buildFrame({ ...syn(40101), vlans: [{ vid: 100 }] });
const ipOpt4 = Buffer.from([0x94, 0x04, 0x00, 0x00]); // router alert: IHL 6
const ipOpt40 = Buffer.concat([Buffer.from([0x07, 39, 4]), Buffer.alloc(36), Buffer.from([0])]); // record route: IHL 15
const tcpOpts = Buffer.concat([tcpOption.mss(1460), tcpOption.sackPermitted(), tcpOption.timestamps(0x01020304, 0),
  tcpOption.nop(), tcpOption.windowScale(7)]);
const threeTags = buildFrame({
  vlans: [{ tpid: ETH_P_8021AD, vid: 10 }, { vid: 20 }],
  eth: { type: ETH_P_8021Q },
  payload: Buffer.concat([Buffer.from([0x00, 30, 0x08, 0x00]), buildFrame(syn(40102)).subarray(14)]),
});

/**
 * A frame whose IPv4 payload is the first `n` bytes of an L4 header (tot_len consistent), padded
 * to 80 bytes with the rest of the header: the bytes are in the frame, only tot_len excludes them.
 */
function shortL4(proto: number, bytes: Buffer, n: number): Buffer {
  const frame = buildFrame({ ipv4: { src: CLIENT, dst: VIP }, l4: { kind: 'raw', protocol: proto, data: bytes.subarray(0, n) } });
  return padTo(Buffer.concat([frame, bytes.subarray(n)]), 80);
}
const padTo = (frame: Buffer, len: number): Buffer => Buffer.concat([frame, Buffer.alloc(Math.max(0, len - frame.length))]);
const tcpHeader = buildFrame(syn(40103)).subarray(34);
const udpHeader = buildFrame(udpSpec(ep(CLIENT, 40104), DNS)).subarray(34);

const cases: FixtureCase[] = [
  // ---- New flows: weighted choice and DNAT ----
  newFlow('SYN to the VIP listener: DNAT to target A (weight 5 of 10) as predicted', BASE, G1, syn(portA), { expect: A }),
  newFlow('SYN to the VIP listener: DNAT to target B (weight 3 of 10) as predicted', BASE, G1, syn(portB), { expect: B }),
  newFlow('SYN to the VIP listener: DNAT to target C (weight 2 of 10) as predicted', BASE, G1, syn(portC), { expect: C }),
  newFlow('SYN from another client address: DNAT as predicted', BASE, G1, syn(51234, HTTP, '198.51.100.77')),
  newFlow('a mid-stream ACK with no flow starts one (deterministic hash, e.g. after a restart)', BASE, G1,
    tcpSpec(ep(CLIENT, 40200), HTTP, TCP_ACK | TCP_PSH)),
  newFlow('DF set is not a fragment: DNAT', BASE, G1, withIp(syn(40201), { df: true })),
  newFlow('TTL 1: DNAT, then XDP_PASS untouched otherwise (the kernel sends time exceeded)', BASE, G1, syn(40202, HTTP, CLIENT, { ttl: 1 })),
  newFlow('Ethernet padding after tot_len is kept, and not counted in bytes', BASE, U, udpSpec(ep(CLIENT, 40203), DNS, Buffer.from('x')),
    { trailer: Buffer.alloc(17) }),

  // ---- VIP listener vs any-address listener ----
  newFlow('a listener on the VIP wins over the any-address listener for its address', ANY_CFG, VIPG, syn(40300), { expect: VIPG[0] }),
  newFlow('another address on the interface goes to the any-address listener (vip 0.0.0.0)', ANY_CFG, ANYG, syn(40301, { addr: VIP2, port: 80 })),
  untouched('port 80 of the VIP but UDP: the TCP listeners do not match', buildFrame(udpSpec(ep(CLIENT, 40302), HTTP)), 'not_listener', ANY_CFG),

  // ---- Not for a listener: untouched ----
  untouched('listener on another interface (ifindex 4242): untouched', buildFrame(syn(40400)), 'not_listener',
    config({ listeners: [{ ifindex: 4242, vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1 } })),
  untouched('a port without a listener: untouched', buildFrame(syn(40401, { addr: VIP, port: 81 })), 'not_listener'),
  untouched('another VIP without an any-address listener: untouched', buildFrame(syn(40402, { addr: VIP2, port: 80 })), 'not_listener'),
  untouched('UDP to a TCP-only listener port: untouched', buildFrame(udpSpec(ep(CLIENT, 40403), HTTP)), 'not_listener'),
  untouched('TCP to a UDP-only listener port: untouched', buildFrame(syn(40404, DNS)), 'not_listener'),
  untouched('ICMP echo request to the VIP: untouched', buildFrame({
    ipv4: { src: CLIENT, dst: VIP }, l4: { kind: 'icmp', type: ICMP_ECHO_REQUEST, id: 7, seq: 1, payload: Buffer.from('ping') },
  }), 'not_ipv4'),
  untouched('ICMP port unreachable quoting a reply of no flow: untouched (translations: icmp-frag-fixtures)', buildFrame({
    ipv4: { src: CLIENT, dst: VIP },
    l4: { kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_PORT_UNREACH, inner: { ipv4: { src: VIP, dst: CLIENT }, l4: { kind: 'udp', sport: 53, dport: 40053 } } },
  }), 'not_ipv4'),
  untouched('GRE (another IP protocol) to the VIP: untouched', buildFrame({ ipv4: { src: CLIENT, dst: VIP }, l4: { kind: 'raw', protocol: 47, data: Buffer.alloc(24, 1) } }), 'not_ipv4'),
  untouched('ARP: untouched', buildFrame({ eth: { type: ETH_P_ARP, dst: 'ff:ff:ff:ff:ff:ff' }, payload: Buffer.from('0001080006040001020000000001ac10050a000000000000' + '0a640001', 'hex') }), 'not_ipv4'),
  untouched('IPv6: untouched', buildFrame({ eth: { type: ETH_P_IPV6 }, payload: Buffer.concat([Buffer.from([0x60]), Buffer.alloc(59)]) }), 'not_ipv4'),
  untouched('three VLAN tags: untouched', threeTags, 'not_ipv4'),

  // ---- IPv4 options, TCP options, VLAN ----
  newFlow('IPv4 options (IHL 6): DNAT, options untouched', BASE, G1, withIp(syn(40500), { options: ipOpt4 })),
  newFlow('IPv4 options (IHL 15): DNAT, options untouched', BASE, G1, withIp(syn(40501), { options: ipOpt40 })),
  newFlow('TCP options (MSS, SACK-permitted, timestamps, window scale): DNAT, options untouched', BASE, G1,
    withTcp(syn(40502), { options: tcpOpts })),
  newFlow('IHL 15 and 40 bytes of TCP options together: DNAT', BASE, G1,
    withTcp(withIp(syn(40503), { options: ipOpt40 }), { options: Buffer.concat([tcpOpts, Buffer.alloc(20, 1)]) })),
  newFlow('one 802.1Q tag: DNAT, XDP_PASS (the FIB is never asked for VLAN frames)', BASE, G1, { ...syn(40504), vlans: [{ vid: 100 }] }, { vlans: 1 }),
  newFlow('two tags (802.1ad outer, 802.1Q inner): DNAT, XDP_PASS', BASE, G1,
    { ...syn(40505), vlans: [{ tpid: ETH_P_8021AD, vid: 200 }, { vid: 100, pcp: 5 }] }, { vlans: 2 }),

  // ---- UDP ----
  newFlow('UDP to the UDP listener: DNAT with the checksum updated', BASE, U, udpSpec(UDP_CLIENT, DNS)),
  newFlow('UDP with checksum 0 ("none"): DNAT, the checksum stays 0', BASE, U, udpSpec(ep(CLIENT, 40054), DNS, undefined, 'zero')),
  newFlow('UDP whose checksum after DNAT computes to 0: sent as 0xffff', BASE, U, udpZeroSpec),
  newFlow('UDP arriving with checksum 0xffff (a computed 0): updated as a checksum, not taken for "none"', BASE, U,
    udpSpec(ep(CLIENT, 40055), DNS, zeroingPayload(ep(CLIENT, 40055), DNS))),

  // ---- Truncation at every header boundary, and inconsistent headers ----
  untouched('frame of exactly an Ethernet header (IPv4 ethertype, no IP): malformed', truncate(full, 14), 'malformed'),
  untouched('frame cut inside the VLAN tag: malformed', truncate(vlanFull, 16), 'malformed'),
  untouched('frame ending after the VLAN tag: malformed', truncate(vlanFull, 18), 'malformed'),
  untouched('frame cut inside the fixed IPv4 header: malformed', truncate(full, 14 + 19), 'malformed'),
  untouched('frame cut inside the IPv4 options (IHL 6): malformed', truncate(buildFrame(withIp(syn(40600), { options: ipOpt4 })), 14 + 22), 'malformed'),
  untouched('frame cut inside the IPv4 options (IHL 15): malformed', truncate(buildFrame(withIp(syn(40601), { options: ipOpt40 })), 14 + 59), 'malformed'),
  untouched('frame ending after the IPv4 header (tot_len beyond the frame): malformed', truncate(full, 14 + 20), 'malformed'),
  untouched('frame cut inside the TCP header: malformed', truncate(full, 14 + 20 + 19), 'malformed'),
  untouched('frame cut inside the TCP options: malformed', truncate(buildFrame(withTcp(syn(40602), { options: tcpOpts })), 14 + 20 + 30), 'malformed'),
  untouched('frame cut inside the UDP header: malformed', truncate(buildFrame(udpSpec(ep(CLIENT, 40603), DNS)), 14 + 20 + 7), 'malformed'),
  untouched('TCP header of 19 bytes within tot_len (frame padded past it): malformed', shortL4(IPPROTO_TCP, tcpHeader, 19), 'malformed'),
  untouched('UDP header of 7 bytes within tot_len (frame padded past it): malformed', shortL4(IPPROTO_UDP, udpHeader, 7), 'malformed'),
  untouched('TCP doff 15 with options beyond tot_len and the frame: malformed', buildFrame(withTcp(syn(40604), { doff: 15 })), 'malformed'),
  untouched('TCP doff 15 with options beyond tot_len, inside the (padded) frame: malformed',
    padTo(buildFrame(withTcp(syn(40611), { doff: 15 })), 14 + 20 + 60 + 8), 'malformed'),
  untouched('TCP doff 4: malformed', buildFrame(withTcp(syn(40605), { doff: 4 })), 'malformed'),
  untouched('IHL 4 (< 5): malformed', buildFrame(withIp(syn(40606), { ihl: 4 })), 'malformed'),
  untouched('IHL 15 claims more than the whole datagram: malformed', buildFrame(withIp(syn(40607), { ihl: 15 })), 'malformed'),
  untouched('tot_len one byte beyond the frame: malformed', buildFrame(withIp(syn(40608), { totalLength: full.length - 14 + 1 })), 'malformed'),
  untouched('tot_len smaller than the IPv4 header: malformed', buildFrame(withIp(syn(40609), { totalLength: 19 })), 'malformed'),
  untouched('IP version 6 in an IPv4 ethertype: malformed', buildFrame(withIp(syn(40610), { version: 6 })), 'malformed'),

  // ---- Fragments ----
  newFlow('first fragment (MF set, offset 0): DNAT like any packet (its later fragments follow it: icmp-frag-fixtures)', BASE, G1,
    withIp(syn(40700), { mf: true })),
  untouched('non-first fragment (offset 1480) of no tracked datagram: untouched', buildFrame({
    ipv4: { src: CLIENT, dst: VIP, fragOffset: 185 }, l4: { kind: 'raw', protocol: IPPROTO_TCP, data: Buffer.alloc(64, 0xab) },
  }), 'fragment'),
  untouched('last fragment of UDP (offset 8, MF clear) of no tracked datagram: untouched', buildFrame({
    ipv4: { src: CLIENT, dst: VIP, fragOffset: 1 }, l4: { kind: 'raw', protocol: IPPROTO_UDP, data: Buffer.from('tail of a datagram') },
  }), 'fragment'),
];

// ---- Cases with flows set up beforehand ----

{
  // Established flow, weights changed by a new generation (the original's defect).
  const sport = portMoved;
  const client = ep(CLIENT, sport);
  const ack = buildFrame(tcpSpec(client, HTTP, TCP_ACK | TCP_PSH));
  cases.push({
    description: 'an established flow keeps its backend after the weights change (new generation moves its hash elsewhere)',
    setup: {
      config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1 } }),
      before: (dp) => {
        xdpRun(dp, buildFrame(syn(sport)));
        installConfig(dp, config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1_REWEIGHED } }));
      },
    },
    input: ack,
    verdict: XDP_PASS,
    output: buildFrame(dnatSpec(tcpSpec(client, HTTP, TCP_ACK | TCP_PSH), A)),
    counters: { xdp_rx: 1, ct_hit: 1, ho_promoted: 1, fib_pass: 1 },
    targets: { [A.targetId]: { packets: 1, bytes: totLen(ack) } },
    flows: expectPair(flowPair(client, HTTP, A, IPPROTO_TCP, A.targetId)),
  });
}
{
  const sport = portFor(G1, 0, base, 41000);
  const client = ep(CLIENT, sport);
  const ack = buildFrame(tcpSpec(client, HTTP, TCP_ACK));
  cases.push({
    description: 'an established flow keeps its backend when that backend is drained (weight 0)',
    setup: {
      config: BASE,
      before: (dp) => {
        xdpRun(dp, buildFrame(syn(sport)));
        installConfig(dp, config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1_DRAINED } }));
      },
    },
    input: ack,
    verdict: XDP_PASS,
    output: buildFrame(dnatSpec(tcpSpec(client, HTTP, TCP_ACK), A)),
    counters: { xdp_rx: 1, ct_hit: 1, ho_promoted: 1, fib_pass: 1 },
    targets: { [A.targetId]: { packets: 1, bytes: totLen(ack) } },
    flows: expectPair(flowPair(client, HTTP, A, IPPROTO_TCP, A.targetId)),
  });
}
{
  // Session persistence: a second connection of the client lands where the first went.
  const first = syn(1111, HTTP, persistClient);
  const second = syn(2222, HTTP, persistClient);
  const to = chosen(G1, second, true);
  const c = newFlow('persistence: a new connection from the same client goes to the same backend (client-address hash)', PERSIST_CFG, G1, second, { persist: true });
  c.setup.before = (dp) => {
    const out = xdpRun(dp, buildFrame(first));
    expect(out.subarray(30, 34)).toEqual(Buffer.from(to.addr.split('.').map(Number)));
  };
  const t1 = tupleOf(first);
  c.flows = [...expectHalfOpen(flowPair(ep(t1.saddr, t1.sport), HTTP, to, IPPROTO_TCP, to.targetId)), ...(c.flows as ReturnType<typeof expectPair>)];
  cases.push(c);
}
{
  const to = predictMaglev(G1, maglevClient)!;
  const spec = syn(3333, HTTP, maglevClient);
  const { input, output } = dnatFrames(spec, to);
  cases.push({
    description: 'persistence with a Maglev table: the client address alone picks the target, as the TS table predicts (not the cumulative choice)',
    setup: { config: MAGLEV_CFG }, input, verdict: XDP_PASS, output,
    counters: { xdp_rx: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
    targets: { [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: expectHalfOpen(flowPair(ep(maglevClient, 3333), HTTP, to, IPPROTO_TCP, to.targetId)),
  });
}
{
  // Another connection (source port) of the same client: the same backend, from the table.
  const to = predictMaglev(G1, maglevClient)!;
  const first = syn(1111, HTTP, maglevClient);
  const second = tcpSpec(ep(maglevClient, 2222), HTTP, TCP_SYN);
  const { input, output } = dnatFrames(second, to);
  cases.push({
    description: 'persistence with a Maglev table: another source port of the same client goes to the same backend',
    setup: {
      config: MAGLEV_CFG,
      before: (dp) => {
        const out = xdpRun(dp, buildFrame(first));
        expect(out.subarray(30, 34)).toEqual(Buffer.from(to.addr.split('.').map(Number)));
      },
    },
    input, verdict: XDP_PASS, output,
    counters: { xdp_rx: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
    targets: { [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: [
      ...expectHalfOpen(flowPair(ep(maglevClient, 1111), HTTP, to, IPPROTO_TCP, to.targetId)),
      ...expectHalfOpen(flowPair(ep(maglevClient, 2222), HTTP, to, IPPROTO_TCP, to.targetId)),
    ],
  });
}
{
  // The route's group has its own table; the default group's table is not consulted for it.
  const to = predictMaglev(MR, routedClient)!;
  const spec = syn(3334, HTTP, routedClient);
  const { input, output } = dnatFrames(spec, to);
  cases.push({
    description: 'persistence with Maglev tables and source routes: a routed client gets the route group\'s table',
    setup: { config: MAGLEV_SR_CFG }, input, verdict: XDP_PASS, output,
    counters: { xdp_rx: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
    targets: { [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: expectHalfOpen(flowPair(ep(routedClient, 3334), HTTP, to, IPPROTO_TCP, to.targetId)),
  });
}
cases.push(newFlow('a listener without LB_LF_PERSIST ignores a Maglev table of its group: 5-tuple cumulative choice',
  config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1 }, maglev: [1] }), G1, syn(plainPort)));
{
  // A table naming target index 7 in a group of 3 (inconsistent): the cumulative choice instead.
  const c = newFlow('a Maglev slot naming no target of the group: the cumulative choice over the client-address hash instead',
    MAGLEV_CFG, G1, syn(3335, HTTP, maglevClient), { persist: true });
  c.setup.before = (dp) => dp.maps.lb_maglev.update(encodeU32(groupIndex(readCtl(dp).activeGen, 1)), Buffer.alloc(LB_MAGLEV_SIZE, 7));
  cases.push(c);
}
cases.push({
  description: 'a Maglev table does not override a group at total weight 0: XDP_DROP, no_target',
  setup: {
    config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST }], groups: { 1: [{ ...A, weight: 0 }, { ...B, weight: 0 }] } }),
    before: (dp) => dp.maps.lb_maglev.update(encodeU32(groupIndex(readCtl(dp).activeGen, 1)), Buffer.alloc(LB_MAGLEV_SIZE, 0)),
  },
  input: buildFrame(syn(3336, HTTP, maglevClient)), verdict: XDP_DROP, output: 'input',
  counters: { xdp_rx: 1, no_target: 1 }, flows: [],
});
{
  const client = ep(CLIENT, 42000);
  const frameSpec = tcpSpec(client, HTTP, TCP_FIN | TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'client FIN: DNAT to the flow backend, FIN_CLIENT set on the forward entry',
    setup: { config: BASE, flows: () => flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, B)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [B.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: [
      { ...expectPair(flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId), ['kept', 'kept'])[0]!, value: { natAddr: B.addr, natPort: B.port, targetId: B.targetId, dir: LB_DIR_FORWARD, state: LB_CT_FIN_CLIENT } },
      expectPair(flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId), ['kept', 'kept'])[1]!,
    ],
  });
}
{
  const client = ep(CLIENT, 42001);
  const frameSpec = tcpSpec(client, HTTP, TCP_RST | TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'client RST of a known flow: the RST is DNATed, then both entries are deleted',
    setup: { config: BASE, flows: () => flowPair(client, HTTP, C, IPPROTO_TCP, C.targetId) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, C)),
    counters: { xdp_rx: 1, ct_hit: 1, ct_closed: 1, fib_pass: 1 },
    targets: { [C.targetId]: { packets: 1, bytes: totLen(input), closedFlows: 1 } },
    flows: [],
  });
}
{
  const client = ep(CLIENT, 42002);
  const other = ep(CLIENT, 42003);
  cases.push({
    description: 'RST with no flow: untouched, nothing created; other flows are left alone',
    setup: { config: BASE, flows: () => flowPair(other, HTTP, A, IPPROTO_TCP, A.targetId) },
    input: buildFrame(tcpSpec(client, HTTP, TCP_RST)), verdict: XDP_PASS, output: 'input',
    counters: { xdp_rx: 1 },
    flows: 'unchanged',
  });
}
{
  const client = ep(CLIENT, 42004);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'established flow to a backend no longer in any group keeps it (conntrack first)',
    setup: { config: BASE, flows: () => flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, OLD)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: 'unchanged',
  });
}

{
  // No packet ever went to VIP:8899 in this instance: only the flow written from user space (and
  // its lb_dst_seen bit, from the TS mirror of the hash) exists, and no listener for it.
  const gone = ep(VIP, 8899);
  const client = ep(CLIENT, 42005);
  const frameSpec = tcpSpec(client, gone, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'established flow whose listener was removed keeps its NAT until it ends (conntrack before listener)',
    setup: { config: BASE, flows: () => flowPair(client, gone, A, IPPROTO_TCP, A.targetId) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, A)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [A.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: 'unchanged',
  });
  cases.push({
    description: 'a new connection to the removed listener is not NATed (not_listener)',
    setup: { config: BASE, flows: () => flowPair(client, gone, A, IPPROTO_TCP, A.targetId) },
    input: buildFrame(tcpSpec(ep(CLIENT, 42006), gone, TCP_SYN)), verdict: XDP_PASS, output: 'input',
    counters: { xdp_rx: 1, not_listener: 1 },
    flows: 'unchanged',
  });
}

// ---- No target ----
cases.push({
  description: 'new flow, group with all weights 0: XDP_DROP, no_target, nothing created',
  setup: { config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: [{ ...A, weight: 0 }, { ...B, weight: 0 }] } }) },
  input: buildFrame(syn(43000)), verdict: XDP_DROP, output: 'input',
  counters: { xdp_rx: 1, no_target: 1 }, flows: [],
});
cases.push({
  description: 'new flow, listener naming a group that was never written: XDP_DROP, no_target',
  setup: { config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 7 }], groups: { 1: G1 } }) },
  input: buildFrame(syn(43001)), verdict: XDP_DROP, output: 'input',
  counters: { xdp_rx: 1, no_target: 1 }, flows: [],
});
{
  const client = ep(CLIENT, 43002);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'established flow in a group now at total weight 0 still flows (no choice needed)',
    setup: {
      config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: [{ ...A, weight: 0 }] } }),
      flows: () => flowPair(client, HTTP, A, IPPROTO_TCP, A.targetId),
    },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, A)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [A.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: 'unchanged',
  });
}

{
  // A group whose total_weight exceeds its last cum_weight (a control-plane bug): residues past
  // the last target must be dropped, never sent to targets[count] (zeroes).
  const broken = Buffer.from(encodeGroup({ targets: [A] }));
  broken.writeUInt32LE(1000, 4); // total_weight 1000, cum_weight[0] = 5
  const residue = (sport: number): number =>
    flowHash({ saddr: ipv4ToU32(CLIENT), daddr: ipv4ToU32(VIP), sport, dport: 80, proto: IPPROTO_TCP }) % 1000;
  const sportPast = [...Array(1000).keys()].map((i) => 43100 + i).find((p) => residue(p) >= 5)!;
  const sportIn = [...Array(20000).keys()].map((i) => 20000 + i).find((p) => residue(p) < 5)!;
  const cfg = config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: [A] } });
  const corrupt = (dp: DataPlane): void => dp.maps.lb_groups.update(encodeU32(groupIndex(readCtl(dp).activeGen, 1)), broken);
  cases.push({
    description: 'inconsistent group (total_weight past the last cum_weight): a residue past the end is dropped',
    setup: { config: cfg, before: corrupt },
    input: buildFrame(syn(sportPast)), verdict: XDP_DROP, output: 'input',
    counters: { xdp_rx: 1, no_target: 1 }, flows: [],
  });
  const c = newFlow('inconsistent group: a residue inside the last cum_weight still gets its target', cfg, [A], syn(sportIn));
  c.setup.before = corrupt;
  cases.push(c);
}

// ---- Source routes ----
cases.push(
  newFlow('source route /16 beats the default group', SR_CFG, [S16], syn(44000, HTTP, '192.168.5.5')),
  newFlow('longest prefix: /24 beats /16', SR_CFG, [S24], syn(44001, HTTP, '192.168.1.5')),
  newFlow('longest prefix: /32 beats /24 and /16', SR_CFG, [S32], syn(44002, HTTP, '192.168.1.77')),
  newFlow('a client outside every route gets the default group', SR_CFG, G1, syn(44003, HTTP, '192.169.1.5')),
  newFlow("another listener's source routes do not apply (192.168.1.77 on port 81)", SR_CFG, [L2DEF], syn(44004, { addr: VIP, port: 81 }, '192.168.1.77')),
  newFlow('the second listener uses its own route', SR_CFG, [L2RT], syn(44005, { addr: VIP, port: 81 }, '10.9.200.1')),
  newFlow('a listener without LB_LF_SRC_ROUTES ignores routes keyed to it', SR_CFG, [L2DEF], syn(44006, { addr: VIP, port: 82 }, '192.168.5.5')),
);

// ---- Idle expiry and port reuse ----
{
  const client = ep(CLIENT, 45000);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  const to = chosen(G1, frameSpec);
  cases.push({
    description: 'idle expiry (tcp_idle_sec 1, entries last seen at 0): new choice, ct_expired, old entries replaced',
    setup: {
      config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1 }, settings: { tcpIdleSec: 1 } }),
      flows: () => flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId, { lastSeenNs: 0n }),
    },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, to)),
    counters: { xdp_rx: 1, ct_expired: 1, ct_new: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { closedFlows: 1 }, [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: expectPair(flowPair(client, HTTP, to, IPPROTO_TCP, to.targetId)),
  });
}
{
  const client = ep(CLIENT, 45001);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'idle 10 s under the default 300 s timeout: kept, forward last_seen refreshed',
    setup: { config: BASE, flows: () => flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId, { lastSeenNs: secondsAgo(10) }) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, OLD)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: expectPair(flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId), ['fresh', 'kept']),
  });
}
{
  const client = ep(CLIENT, 45002);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'forward idle past the timeout but replies recent (reverse fresh): not expired',
    setup: {
      config: config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: G1 }, settings: { tcpIdleSec: 2 } }),
      flows: () => flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId, { lastSeenNs: secondsAgo(10), reverseLastSeenNs: secondsAgo(0) }),
    },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, OLD)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: expectPair(flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId), ['fresh', 'kept']),
  });
}
{
  const client = ep(CLIENT, 45003);
  const frameSpec = tcpSpec(client, HTTP, TCP_ACK);
  const input = buildFrame(frameSpec);
  cases.push({
    description: 'reverse entry evicted: recreated when the forward entry is refreshed',
    setup: { config: BASE, flows: () => [flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId, { lastSeenNs: secondsAgo(5) })[0]] },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, B)),
    counters: { xdp_rx: 1, ct_hit: 1, fib_pass: 1 },
    targets: { [B.targetId]: { packets: 1, bytes: totLen(input) } },
    flows: expectPair(flowPair(client, HTTP, B, IPPROTO_TCP, B.targetId)),
  });
}
{
  const client = ep(CLIENT, 45004);
  const frameSpec = tcpSpec(client, HTTP, TCP_SYN);
  const input = buildFrame(frameSpec);
  const to = chosen(G1, frameSpec);
  cases.push({
    description: 'SYN reusing the tuple of a flow with FIN set: a new connection, a new choice',
    setup: { config: BASE, flows: () => flowPair(client, HTTP, OLD, IPPROTO_TCP, OLD.targetId, { state: LB_CT_FIN_CLIENT }) },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, to)),
    counters: { xdp_rx: 1, ct_expired: 1, ct_new: 1, ho_new: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { closedFlows: 1 }, [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: expectHalfOpen(flowPair(client, HTTP, to, IPPROTO_TCP, to.targetId)),
  });
}
{
  const client = ep(CLIENT, 45005);
  const frameSpec = udpSpec(client, DNS);
  const input = buildFrame(frameSpec);
  const to = chosen(U, frameSpec);
  cases.push({
    description: 'UDP flow idle past udp_idle_sec (1 s): new choice',
    setup: {
      config: { ...BASE, settings: { tcpIdleSec: 0, udpIdleSec: 1, tcpFinSec: 0, flags: 0 } },
      flows: () => flowPair(client, DNS, OLD, IPPROTO_UDP, OLD.targetId, { lastSeenNs: secondsAgo(3) }),
    },
    input, verdict: XDP_PASS, output: buildFrame(dnatSpec(frameSpec, to)),
    counters: { xdp_rx: 1, ct_expired: 1, ct_new: 1, fib_pass: 1 },
    targets: { [OLD.targetId]: { closedFlows: 1 }, [to.targetId]: { packets: 1, bytes: totLen(input), newFlows: 1 } },
    flows: expectPair(flowPair(client, DNS, to, IPPROTO_UDP, to.targetId)),
  });
}

// ---- Generations ----
{
  const ONLY_INACTIVE = config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }, { vip: VIP, port: 90, id: 9, group: 1 }], groups: { 1: G1 } });
  cases.push({
    description: 'a listener present only in the inactive generation does not match',
    setup: { config: BASE, before: (dp) => writeGeneration(dp, 1 - readCtl(dp).activeGen, ONLY_INACTIVE) },
    input: buildFrame(syn(46000, { addr: VIP, port: 90 })), verdict: XDP_PASS, output: 'input',
    counters: { xdp_rx: 1, not_listener: 1 }, flows: [],
  });
  const c = newFlow('after the flip, the same listener matches', BASE, G1, syn(46001, { addr: VIP, port: 90 }));
  c.setup.before = (dp) => {
    const gen = 1 - readCtl(dp).activeGen;
    writeGeneration(dp, gen, ONLY_INACTIVE);
    flipTo(dp, gen);
  };
  cases.push(c);
}

describe('lb_xdp_ingress fixture table (root namespace, lo, FIB pass)', () => {
  let h: Harness | undefined;
  beforeAll(() => { h = openHarness('xdp'); });
  afterAll(() => { closeHarness(h); });

  it('has at least 30 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    expect(new Set(cases.map((c) => c.description)).size).toBe(cases.length);
  });

  for (const c of cases) it(c.description, () => runFixture(h!, c));

  it('a frame shorter than an Ethernet header cannot be tested: the kernel refuses it (EINVAL)', () => {
    expect(() => h!.dp.testRun('xdp', truncate(full, 13), { ifindex: LO_IFINDEX }))
      .toThrow(expect.objectContaining({ code: 'LB_BPF_TEST_RUN' }));
  });

  it('a weight-0 target is never chosen over 600 new flows (and every choice matches the prediction)', () => {
    const dp = h!.dp;
    clearFlows(dp);
    const group = [tgt('10.0.5.1', 8000, 3, 61), tgt('10.0.5.2', 8000, 0, 62), tgt('10.0.5.3', 8000, 2, 63)];
    installConfig(dp, config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1 }], groups: { 1: group } }));
    const before = dp.readTargetStats(62);
    const seen = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const spec = syn(20000 + i, HTTP, `172.17.${i >> 8}.${i & 255}`);
      const out = xdpRun(dp, buildFrame(spec));
      const dst = `${out[30]}.${out[31]}.${out[32]}.${out[33]}`;
      expect(dst).toBe(chosen(group, spec).addr);
      seen.set(dst, (seen.get(dst) ?? 0) + 1);
    }
    expect(seen.has('10.0.5.2')).toBe(false);
    expect(seen.get('10.0.5.1')! + seen.get('10.0.5.3')!).toBe(600);
    expect(dp.readTargetStats(62)).toEqual(before);
  });

  it('with a Maglev table, a weight-0 target is never chosen over 400 client addresses (every choice as the TS table predicts)', () => {
    const dp = h!.dp;
    clearFlows(dp);
    const group = [tgt('10.0.5.1', 8000, 3, 61), tgt('10.0.5.2', 8000, 0, 62), tgt('10.0.5.3', 8000, 2, 63)];
    installConfig(dp, config({ listeners: [{ vip: VIP, port: 80, id: 1, group: 1, flags: LB_LF_PERSIST }], groups: { 1: group }, maglev: [1] }));
    const before = dp.readTargetStats(62);
    const seen = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const addr = `172.18.${i >> 8}.${i & 255}`;
      const out = xdpRun(dp, buildFrame(syn(20000 + i, HTTP, addr)));
      const dst = `${out[30]}.${out[31]}.${out[32]}.${out[33]}`;
      expect(dst).toBe(predictMaglev(group, addr)!.addr);
      seen.set(dst, (seen.get(dst) ?? 0) + 1);
    }
    expect(seen.has('10.0.5.2')).toBe(false);
    expect(seen.get('10.0.5.1')! + seen.get('10.0.5.3')!).toBe(400);
    expect(dp.readTargetStats(62)).toEqual(before);
  });
});

// ---- The FIB fast path, in a namespace of our own ----

// One decision for both paths (bpf/lib/ingress.h): every case of the table above, run through the
// TC ingress program, must rewrite the same bytes, count the same and leave the same conntrack
// table. Only the verdicts' and the ingress counter's names differ.
describe('the same table through lb_tc_ingress (the TC path)', () => {
  let h: Harness | undefined;
  beforeAll(() => { h = openHarness('tcin'); });
  afterAll(() => { closeHarness(h); });

  const TC_VERDICT: Record<number, number> = { [XDP_PASS]: TC_ACT_OK, [XDP_DROP]: TC_ACT_SHOT };
  // The kernel builds no test skb for an IPv4 frame without a whole IPv4 header (EINVAL): those
  // cases run through XDP only.
  const tooShortForSkb = (c: FixtureCase): boolean => c.input.length < 14 + 20 && c.input.readUInt16BE(12) === 0x0800;
  it('the kernel refuses test skbs shorter than an IPv4 header, so the cut-IPv4 cases run through XDP only', () => {
    const short = cases.filter(tooShortForSkb);
    expect(short.map((c) => c.description).sort()).toEqual([
      'frame cut inside the fixed IPv4 header: malformed', 'frame of exactly an Ethernet header (IPv4 ethertype, no IP): malformed']);
    for (const c of short) {
      expect(() => h!.dp.testRun('tc_ingress', c.input, { ifindex: LO_IFINDEX })).toThrow(expect.objectContaining({ code: 'LB_BPF_TEST_RUN' }));
    }
  });
  for (const c of cases.filter((x) => !tooShortForSkb(x))) {
    it(c.description, () => {
      const { xdp_rx: rx, ...counters } = c.counters;
      expect(TC_VERDICT[c.verdict], `${c.description}: a verdict the TC path has`).toBeDefined();
      runFixture(h!, { ...c, prog: 'tc_ingress', verdict: TC_VERDICT[c.verdict]!, counters: { ...counters, ...(rx ? { tc_rx: rx } : {}) } });
    });
  }
});

describe('lb_xdp_ingress FIB redirect (in a network namespace)', () => {
  const ns = uniqueName('lbfx');
  const OUT_MAC = '02:00:00:00:0e:01';
  const NEIGH: Record<string, string> = { '10.0.0.1': '02:00:00:00:0b:01', '10.0.0.2': '02:00:00:00:0b:02', '10.0.0.3': '02:00:00:00:0b:03' };
  let h: Harness | undefined;
  let inIf = 0;
  let outIf = 0;

  beforeAll(() => {
    sh('ip', ['netns', 'add', ns]);
    // no IPv6 autoconfiguration noise: the test checks that nothing at all left out0
    sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const ip = (...args: string[]): string => sh('ip', ['-n', ns, ...args]);
    ip('link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'in1');
    ip('link', 'add', 'out0', 'address', OUT_MAC, 'type', 'veth', 'peer', 'name', 'out1');
    for (const dev of ['lo', 'in0', 'in1', 'out0', 'out1']) ip('link', 'set', dev, 'up');
    // GRO gives out1 NAPI, so out0 can transmit XDP frames: lb puts only such devices in lb_tx_ports.
    sh('ip', ['netns', 'exec', ns, 'ethtool', '-K', 'out1', 'gro', 'on']);
    ip('addr', 'add', '172.16.5.1/24', 'dev', 'in0');
    ip('addr', 'add', '10.0.0.254/24', 'dev', 'out0');
    for (const [addr, mac] of Object.entries(NEIGH)) ip('neigh', 'replace', addr, 'lladdr', mac, 'dev', 'out0', 'nud', 'permanent');
    sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    inIf = withNetns(ns, () => interfaceIndex('in0'));
    outIf = withNetns(ns, () => interfaceIndex('out0'));
    h = openHarness('fib');
  });
  afterAll(() => {
    try {
      closeHarness(h);
    } finally {
      deleteNetns(ns);
    }
  });

  const cfg = (): GenerationConfig => config({
    listeners: [{ ifindex: inIf, vip: VIP, port: 80, id: 1, group: 1 }, { ifindex: inIf, vip: VIP, port: 81, id: 2, group: 2 }],
    groups: { 1: G1, 2: [tgt('10.0.0.50', 8080, 1, 70), tgt('10.9.9.9', 8080, 0, 71)] },
  });
  const txPorts = (names: string[]) => (dp: DataPlane): void => {
    const r = withNetns(ns, () => dp.setTxPorts(names));
    expect(r.refused).toEqual([]);
  };

  /** A case in the namespace; the expected frame is built by the caller. */
  function fibCase(description: string, spec: FrameSpec, output: (to: GroupTarget) => Buffer, verdict: number,
    counter: 'redirect' | 'fib_pass', ports: string[], group: readonly GroupTarget[] = G1, vlans = 0): { description: string; make: () => FixtureCase } {
    return { description, make: () => {
      const to = chosen(group, spec);
      const input = buildFrame(spec);
      return {
        description, netns: ns, ifindex: inIf,
        setup: { config: cfg(), before: txPorts(ports) },
        input, verdict, output: output(to),
        counters: { xdp_rx: 1, ct_new: 1, [counter]: 1, ...expectCreated(spec, to).counters },
        targets: { [to.targetId]: { packets: 1, bytes: totLen(input, vlans), newFlows: 1 } },
        flows: expectCreated(spec, to).flows,
      };
    } };
  }
  const redirected = (spec: FrameSpec) => (to: GroupTarget): Buffer =>
    buildFrame({ ...dnatSpec(withIp(spec, { ttl: (spec.ipv4!.ttl ?? 64) - 1 }), to), eth: { src: OUT_MAC, dst: NEIGH[to.addr]! } });
  const passed = (spec: FrameSpec) => (to: GroupTarget): Buffer => buildFrame(dnatSpec(spec, to));

  const fibCases = [
    fibCase('SYN: XDP_REDIRECT to the egress, MACs from the FIB, TTL decremented, checksums valid',
      syn(47000), redirected(syn(47000)), XDP_REDIRECT, 'redirect', ['out0']),
    fibCase('TCP data with IPv4 options (IHL 6) and TCP options: redirected like any packet',
      withTcp(withIp(tcpSpec(ep(CLIENT, 47001), HTTP, TCP_ACK), { options: ipOpt4 }), { options: tcpOpts }),
      redirected(withTcp(withIp(tcpSpec(ep(CLIENT, 47001), HTTP, TCP_ACK), { options: ipOpt4 }), { options: tcpOpts })),
      XDP_REDIRECT, 'redirect', ['out0']),
    fibCase('TTL 1: XDP_PASS, DNAT only (TTL and MACs untouched)',
      syn(47002, HTTP, CLIENT, { ttl: 1 }), passed(syn(47002, HTTP, CLIENT, { ttl: 1 })), XDP_PASS, 'fib_pass', ['out0']),
    fibCase('a VLAN-tagged frame is never redirected: XDP_PASS after DNAT',
      { ...syn(47003), vlans: [{ vid: 7 }] }, passed({ ...syn(47003), vlans: [{ vid: 7 }] }), XDP_PASS, 'fib_pass', ['out0'], G1, 1),
    fibCase('egress not in lb_tx_ports: XDP_PASS after DNAT',
      syn(47004), passed(syn(47004)), XDP_PASS, 'fib_pass', []),
    fibCase('route but no neighbour entry for the backend: XDP_PASS after DNAT',
      syn(47005, { addr: VIP, port: 81 }), passed(syn(47005, { addr: VIP, port: 81 })), XDP_PASS, 'fib_pass', ['out0'],
      [tgt('10.0.0.50', 8080, 1, 70), tgt('10.9.9.9', 8080, 0, 71)]),
  ];

  it('has its namespace: ingress and egress ifindexes resolved', () => {
    expect(inIf).toBeGreaterThan(1);
    expect(outIf).toBeGreaterThan(1);
  });

  for (const { description, make } of fibCases) it(description, () => runFixture(h!, make()));

  it('no route to the backend at all: XDP_PASS after DNAT', () => {
    const group = [tgt('10.9.9.9', 8080, 1, 72)];
    const spec = syn(47006, { addr: VIP, port: 82 });
    const t = tupleOf(spec);
    const input = buildFrame(spec);
    runFixture(h!, {
      description: 'no route', netns: ns, ifindex: inIf,
      setup: { config: config({ listeners: [{ ifindex: inIf, vip: VIP, port: 82, id: 3, group: 3 }], groups: { 3: group } }), before: txPorts(['out0']) },
      input, verdict: XDP_PASS, output: buildFrame(dnatSpec(spec, group[0]!)),
      counters: { xdp_rx: 1, ct_new: 1, fib_pass: 1, ho_new: 1 },
      targets: { 72: { packets: 1, bytes: totLen(input), newFlows: 1 } },
      flows: expectHalfOpen(flowPair(ep(t.saddr, t.sport), HTTP_82, group[0]!, IPPROTO_TCP, 72)),
    });
  });

  it('an established flow is redirected too (ct_hit, redirect)', () => {
    const client = ep(CLIENT, 47007);
    const spec = tcpSpec(client, HTTP, TCP_ACK);
    const input = buildFrame(spec);
    runFixture(h!, {
      description: 'established redirect', netns: ns, ifindex: inIf,
      setup: { config: cfg(), before: txPorts(['out0']), flows: () => flowPair(client, HTTP, C, IPPROTO_TCP, C.targetId) },
      input, verdict: XDP_REDIRECT, output: redirected(spec)(C),
      counters: { xdp_rx: 1, ct_hit: 1, redirect: 1 },
      targets: { [C.targetId]: { packets: 1, bytes: totLen(input) } },
      flows: 'unchanged',
    });
  });

  it('reuses the FIB answer from lb_nexthops: a neighbour removed meanwhile is not looked up again until a flush', () => {
    const backend = C.addr;
    const first = tcpSpec(ep(CLIENT, 47008), HTTP, TCP_ACK);
    const flows = (): Array<ReturnType<typeof flowPair>[number]> => [...flowPair(ep(CLIENT, 47008), HTTP, C, IPPROTO_TCP, C.targetId)];
    // An established flow to C, its next hop looked up and cached by the first packet.
    runFixture(h!, {
      description: 'fills the cache', netns: ns, ifindex: inIf,
      setup: { config: cfg(), before: txPorts(['out0']), flows },
      input: buildFrame(first), verdict: XDP_REDIRECT, output: redirected(first)(C),
      counters: { xdp_rx: 1, ct_hit: 1, redirect: 1 },
      targets: { [C.targetId]: { packets: 1, bytes: totLen(buildFrame(first)) } },
      flows: 'unchanged',
    });
    const key = Buffer.alloc(8);
    key.writeUInt32BE(ipv4ToU32(backend), 0);
    key.writeUInt32LE(inIf, 4);
    const cached = h!.dp.maps.lb_nexthops.lookup(key);
    expect(cached, 'lb_nexthops entry for C via in0').toBeDefined();
    expect(cached!.readUInt32LE(8)).toBe(outIf);
    expect(cached!.readUInt16LE(12)).toBe(1500);
    expect(cached!.subarray(14, 20)).toEqual(Buffer.from(NEIGH[backend]!.replace(/:/g, ''), 'hex'));
    // Without the neighbour the FIB would answer NO_NEIGH; the cached answer still redirects.
    sh('ip', ['-n', ns, 'neigh', 'del', backend, 'dev', 'out0']);
    try {
      const again = withNetns(ns, () => h!.dp.testRun('xdp', buildFrame(first), { ifindex: inIf }));
      expect(again.retval).toBe(XDP_REDIRECT);
      // After a flush (every attach and tx-port change does one) the FIB is asked again.
      expect(h!.dp.flushNexthops()).toBeGreaterThanOrEqual(1);
      const fresh = withNetns(ns, () => h!.dp.testRun('xdp', buildFrame(first), { ifindex: inIf }));
      expect(fresh.retval).toBe(XDP_PASS);
    } finally {
      sh('ip', ['-n', ns, 'neigh', 'replace', backend, 'lladdr', NEIGH[backend]!, 'dev', 'out0', 'nud', 'permanent']);
    }
  });

  it('nothing was transmitted: BPF_PROG_TEST_RUN returned XDP_REDIRECT but sent no frame (out0 tx and out1 rx stay 0)', () => {
    const stats = (dev: string): { rx: number; tx: number } => {
      const [link] = JSON.parse(sh('ip', ['-n', ns, '-j', '-s', 'link', 'show', 'dev', dev])) as Array<{ stats64: { rx: { packets: number }; tx: { packets: number } } }>;
      return { rx: link!.stats64.rx.packets, tx: link!.stats64.tx.packets };
    };
    expect(stats('out0').tx).toBe(0);
    expect(stats('out1').rx).toBe(0);
  });
});
