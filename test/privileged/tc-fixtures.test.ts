// TC egress fixture table: replies backend -> client run through lb_tc_egress with
// BPF_PROG_TEST_RUN; the output must be the reply with the VIP address and port as its source,
// byte for byte as test/lib/packet.ts builds it (checksums computed from scratch), and only a
// REVERSE conntrack entry may cause a rewrite. Counter deltas and the whole lb_flows table are
// checked after each packet. Behaviour: docs/dataplane.md, "Egress".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_BACKEND, LB_DIR_FORWARD, LB_DIR_REVERSE } from '../../src/dataplane/index.js';
import {
  TC_ACT_OK, closeHarness, expectPair, flowPair, openHarness, runFixture, secondsAgo, snatSpec, tcpSpec, tgt, udpSpec,
  zeroingPayload,
  type Endpoint, type ExpectedFlow, type FixtureCase, type FlowEntry, type Harness,
} from '../lib/fixture-harness.js';
import {
  ETH_P_8021AD, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, buildFrame,
  tcpOption, truncate,
  type FrameSpec, type TcpSpec,
} from '../lib/packet.js';

const HTTP: Endpoint = { addr: '10.100.0.1', port: 80 };
const DNS: Endpoint = { addr: '10.100.0.1', port: 53 };
const A = tgt('10.0.0.1', 8080, 1, 11);
const U = tgt('10.0.1.1', 5353, 1, 21);
const BA: Endpoint = { addr: A.addr, port: A.port };
const BU: Endpoint = { addr: U.addr, port: U.port };
const ep = (addr: string, port: number): Endpoint => ({ addr, port });
const client = (port: number): Endpoint => ep('172.16.5.10', port);

/** The two entries of a flow client -> VIP -> backend A (TCP) or U (UDP), built when the case runs. */
const tcpFlow = (c: Endpoint, opts: Parameters<typeof flowPair>[5] = {}): [FlowEntry, FlowEntry] => flowPair(c, HTTP, BA, IPPROTO_TCP, A.targetId, opts);
const udpFlow = (c: Endpoint, opts: Parameters<typeof flowPair>[5] = {}): [FlowEntry, FlowEntry] => flowPair(c, DNS, BU, IPPROTO_UDP, U.targetId, opts);

/** A reply the program must rewrite: output = the same reply from the VIP. */
function revnat(description: string, reply: FrameSpec, vip: Endpoint, flows: () => FlowEntry[],
  after: ExpectedFlow[] | 'unchanged' = 'unchanged', counters: FixtureCase['counters'] = { tc_revnat: 1 },
  targets?: FixtureCase['targets']): FixtureCase {
  return {
    description, prog: 'tc', setup: { flows }, input: buildFrame(reply), verdict: TC_ACT_OK,
    output: buildFrame(snatSpec(reply, vip)), counters, ...(targets ? { targets } : {}), flows: after,
  };
}

/** A packet the program must leave alone: TC_ACT_OK, byte-identical, no counter, flows as they were. */
function untouched(description: string, input: Buffer, flows: () => FlowEntry[] = () => []): FixtureCase {
  return { description, prog: 'tc', setup: { flows }, input, verdict: TC_ACT_OK, output: 'input', counters: {}, flows: 'unchanged' };
}

const withIp = (spec: FrameSpec, ip: Partial<NonNullable<FrameSpec['ipv4']>>): FrameSpec => ({ ...spec, ipv4: { ...spec.ipv4!, ...ip } });
const withTcp = (spec: FrameSpec, tcp: Partial<TcpSpec>): FrameSpec => ({ ...spec, l4: { ...(spec.l4 as TcpSpec), ...tcp } });
const reply = (c: Endpoint, flags: number): FrameSpec => tcpSpec(BA, c, flags);

const zeroClient = client(41010);
const cases: FixtureCase[] = [
  revnat('SYN|ACK from the backend: source becomes VIP:80, reverse entry refreshed', reply(client(41000), TCP_SYN | TCP_ACK), HTTP,
    () => tcpFlow(client(41000), { lastSeenNs: secondsAgo(5) }),
    expectPair(tcpFlow(client(41000)), ['kept', 'fresh'])),
  revnat('data from the backend with a fresh reverse entry: rewritten, last_seen not rewritten within 1 s',
    reply(client(41001), TCP_ACK | TCP_PSH), HTTP, () => tcpFlow(client(41001))),
  revnat('reply with IPv4 options (IHL 6) and TCP options', withTcp(withIp(reply(client(41002), TCP_SYN | TCP_ACK), {
    options: Buffer.from([0x94, 0x04, 0, 0]),
  }), { options: Buffer.concat([tcpOption.mss(1400), tcpOption.sackPermitted(), tcpOption.timestamps(7, 9), tcpOption.nop(), tcpOption.windowScale(9)]) }),
  HTTP, () => tcpFlow(client(41002))),
  revnat('reply with IHL 15', withIp(reply(client(41003), TCP_ACK), { options: Buffer.concat([Buffer.from([0x07, 39, 4]), Buffer.alloc(37)]) }),
    HTTP, () => tcpFlow(client(41003))),
  revnat('reply with one 802.1Q tag', { ...reply(client(41004), TCP_ACK), vlans: [{ vid: 100 }] }, HTTP, () => tcpFlow(client(41004))),
  revnat('reply with two tags (802.1ad + 802.1Q)', { ...reply(client(41005), TCP_ACK), vlans: [{ tpid: ETH_P_8021AD, vid: 2 }, { vid: 100 }] },
    HTTP, () => tcpFlow(client(41005))),
  revnat('UDP reply: source becomes VIP:53, checksum updated', udpSpec(BU, client(41006)), DNS, () => udpFlow(client(41006))),
  revnat('UDP reply with checksum 0: stays 0', udpSpec(BU, client(41007), Buffer.from('no checksum'), 'zero'), DNS, () => udpFlow(client(41007))),
  revnat('UDP reply whose checksum after reverse NAT computes to 0: sent as 0xffff',
    udpSpec(BU, zeroClient, zeroingPayload(DNS, zeroClient)), DNS, () => udpFlow(zeroClient)),
  revnat('UDP reply arriving with checksum 0xffff (a computed 0): updated as a checksum',
    udpSpec(BU, client(41013), zeroingPayload(BU, client(41013))), DNS, () => udpFlow(client(41013))),
  {
    ...revnat('backend FIN: rewritten, LB_CT_FIN_BACKEND set on the forward entry', reply(client(41008), TCP_FIN | TCP_ACK), HTTP,
      () => tcpFlow(client(41008))),
    flows: ((): ExpectedFlow[] => {
      const [f, r] = expectPair(tcpFlow(client(41008)), ['kept', 'kept']);
      return [{ ...f!, value: { ...f!.value, state: LB_CT_FIN_BACKEND } }, r!];
    })(),
  },
  revnat('backend FIN does not mark a forward entry that points at another backend',
    reply(client(41009), TCP_FIN | TCP_ACK), HTTP,
    () => {
      const [f, r] = tcpFlow(client(41009));
      return [{ ...f, value: { ...f.value, natAddr: '10.0.0.2' } }, r];
    }),
  revnat('backend RST: rewritten, both entries deleted', reply(client(41011), TCP_RST | TCP_ACK), HTTP,
    () => tcpFlow(client(41011)), [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1 } }),
  revnat('a reverse entry alone (forward evicted) still rewrites', reply(client(41012), TCP_ACK), HTTP, () => [tcpFlow(client(41012))[1]]),

  untouched('no reverse entry: untouched', buildFrame(reply(client(41100), TCP_SYN | TCP_ACK))),
  untouched('a FORWARD entry under the reply 5-tuple is not used by TC', buildFrame(reply(client(41101), TCP_ACK)), () => {
    const [, r] = tcpFlow(client(41101));
    return [{ key: r.key, value: { ...r.value, dir: LB_DIR_FORWARD } }];
  }),
  untouched('client -> VIP traffic (the forward key) is not rewritten by TC', buildFrame(tcpSpec(client(41102), HTTP, TCP_ACK)),
    () => tcpFlow(client(41102))),
  untouched('another port of the backend (not the flow): untouched', buildFrame(tcpSpec(ep(A.addr, 9999), client(41103), TCP_ACK)),
    () => tcpFlow(client(41103))),
  untouched('TCP reply under a UDP flow tuple: untouched (protocol is part of the key)',
    buildFrame(tcpSpec(BU, client(41104), TCP_ACK)), () => udpFlow(client(41104))),
  untouched('ICMP from the backend to the client: untouched', buildFrame({
    ipv4: { src: A.addr, dst: client(41105).addr },
    l4: { kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_PORT_UNREACH, inner: { ipv4: { src: client(41105).addr, dst: A.addr }, l4: { kind: 'udp', sport: 41105, dport: 8080 } } },
  }), () => tcpFlow(client(41105))),
  untouched('first fragment of a reply: untouched', buildFrame(withIp(reply(client(41106), TCP_ACK), { mf: true })), () => tcpFlow(client(41106))),
  untouched('non-first fragment of a reply: untouched', buildFrame({
    ipv4: { src: A.addr, dst: client(41107).addr, fragOffset: 100 }, l4: { kind: 'raw', protocol: IPPROTO_TCP, data: Buffer.alloc(40, 7) },
  }), () => tcpFlow(client(41107))),
  untouched('reply cut inside the TCP header: untouched', truncate(buildFrame(reply(client(41108), TCP_ACK)), 14 + 20 + 12),
    () => tcpFlow(client(41108))),
  untouched('reply with tot_len beyond the frame: untouched', buildFrame(withIp(reply(client(41109), TCP_ACK), { totalLength: 200 })),
    () => tcpFlow(client(41109))),
  untouched('reply with IHL 4: untouched', buildFrame(withIp(reply(client(41110), TCP_ACK), { ihl: 4 })), () => tcpFlow(client(41110))),
  untouched('a UDP reply with its header cut (tot_len consistent): untouched', buildFrame({
    ipv4: { src: U.addr, dst: client(41111).addr }, l4: { kind: 'raw', protocol: IPPROTO_UDP, data: buildFrame(udpSpec(BU, client(41111))).subarray(34, 40) },
  }), () => udpFlow(client(41111))),
];

describe('lb_tc_egress fixture table', () => {
  let h: Harness | undefined;
  beforeAll(() => { h = openHarness('tc'); });
  afterAll(() => { closeHarness(h); });

  it('has at least 20 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    expect(new Set(cases.map((c) => c.description)).size).toBe(cases.length);
    for (const c of cases) expect(c.prog).toBe('tc');
  });

  for (const c of cases) it(c.description, () => runFixture(h!, c));

  it('the REVERSE entry decoded: backend->client key, VIP as nat, the target id', () => {
    const [, r] = tcpFlow(client(41200));
    expect(r.key).toEqual({ saddr: A.addr, daddr: '172.16.5.10', sport: 8080, dport: 41200, proto: IPPROTO_TCP });
    expect(r.value).toMatchObject({ natAddr: HTTP.addr, natPort: 80, targetId: A.targetId, dir: LB_DIR_REVERSE });
  });
});
