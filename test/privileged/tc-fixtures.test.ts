// TC egress fixture table: replies backend -> client run through lb_tc_egress with
// BPF_PROG_TEST_RUN; the output must be the reply with the VIP address and port as its source,
// byte for byte as test/lib/packet.ts builds it (checksums computed from scratch), and only a
// REVERSE conntrack entry may cause a rewrite. The first reply sets LB_CT_REPLIED on both entries;
// a backend RST before any reply counts failed_conns. Counter deltas and the whole lb_flows table
// are checked after each packet. Behaviour: docs/dataplane.md, "Egress" and "Failed connection
// attempts".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_CT_FIN_BACKEND, LB_CT_REPLIED, LB_DIR_FORWARD, LB_DIR_REVERSE, countUnansweredFlows,
  unansweredFlows,
} from '../../src/dataplane/index.js';
import {
  TC_ACT_OK, clearFlows, closeHarness, config, expectPair, flowPair, install, monoNow, openHarness, readConntrack, runFixture,
  secondsAgo, snatSpec, tcpSpec, tgt, udpSpec, xdpRun, zeroingPayload,
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

/**
 * The set-up pair after a reply passed: LB_CT_REPLIED on both entries (plus `forwardBits` on the
 * forward entry), last_seen kept unless said otherwise.
 */
function replied(pair: [FlowEntry, FlowEntry], lastSeen: Array<'fresh' | 'kept'> = ['kept', 'kept'], forwardBits = 0): ExpectedFlow[] {
  const [f, r] = expectPair(pair, lastSeen);
  return [
    { ...f!, value: { ...f!.value, state: f!.value.state | LB_CT_REPLIED | forwardBits } },
    { ...r!, value: { ...r!.value, state: r!.value.state | LB_CT_REPLIED } },
  ];
}
const ANSWERED = { state: LB_CT_REPLIED, reverseState: LB_CT_REPLIED };

const zeroClient = client(41010);
const cases: FixtureCase[] = [
  revnat('SYN|ACK from the backend (first reply): source becomes VIP:80, reverse entry refreshed, LB_CT_REPLIED set on both entries',
    reply(client(41000), TCP_SYN | TCP_ACK), HTTP,
    () => tcpFlow(client(41000), { lastSeenNs: secondsAgo(5) }),
    replied(tcpFlow(client(41000)), ['kept', 'fresh'])),
  revnat('data from the backend on an answered flow with a fresh reverse entry: rewritten, nothing written (last_seen within 1 s, REPLIED set)',
    reply(client(41001), TCP_ACK | TCP_PSH), HTTP, () => tcpFlow(client(41001), ANSWERED)),
  revnat('reply with IPv4 options (IHL 6) and TCP options', withTcp(withIp(reply(client(41002), TCP_SYN | TCP_ACK), {
    options: Buffer.from([0x94, 0x04, 0, 0]),
  }), { options: Buffer.concat([tcpOption.mss(1400), tcpOption.sackPermitted(), tcpOption.timestamps(7, 9), tcpOption.nop(), tcpOption.windowScale(9)]) }),
  HTTP, () => tcpFlow(client(41002)), replied(tcpFlow(client(41002)))),
  revnat('reply with IHL 15', withIp(reply(client(41003), TCP_ACK), { options: Buffer.concat([Buffer.from([0x07, 39, 4]), Buffer.alloc(37)]) }),
    HTTP, () => tcpFlow(client(41003)), replied(tcpFlow(client(41003)))),
  revnat('reply with one 802.1Q tag', { ...reply(client(41004), TCP_ACK), vlans: [{ vid: 100 }] }, HTTP, () => tcpFlow(client(41004)),
    replied(tcpFlow(client(41004)))),
  revnat('reply with two tags (802.1ad + 802.1Q)', { ...reply(client(41005), TCP_ACK), vlans: [{ tpid: ETH_P_8021AD, vid: 2 }, { vid: 100 }] },
    HTTP, () => tcpFlow(client(41005)), replied(tcpFlow(client(41005)))),
  revnat('UDP reply: source becomes VIP:53, checksum updated, LB_CT_REPLIED set', udpSpec(BU, client(41006)), DNS, () => udpFlow(client(41006)),
    replied(udpFlow(client(41006)))),
  revnat('UDP reply with checksum 0: stays 0', udpSpec(BU, client(41007), Buffer.from('no checksum'), 'zero'), DNS, () => udpFlow(client(41007)),
    replied(udpFlow(client(41007)))),
  revnat('UDP reply whose checksum after reverse NAT computes to 0: sent as 0xffff',
    udpSpec(BU, zeroClient, zeroingPayload(DNS, zeroClient)), DNS, () => udpFlow(zeroClient), replied(udpFlow(zeroClient))),
  revnat('UDP reply arriving with checksum 0xffff (a computed 0): updated as a checksum',
    udpSpec(BU, client(41013), zeroingPayload(BU, client(41013))), DNS, () => udpFlow(client(41013)), replied(udpFlow(client(41013)))),
  revnat('backend FIN: rewritten, LB_CT_FIN_BACKEND (and LB_CT_REPLIED) set on the forward entry', reply(client(41008), TCP_FIN | TCP_ACK), HTTP,
    () => tcpFlow(client(41008)), replied(tcpFlow(client(41008)), ['kept', 'kept'], LB_CT_FIN_BACKEND)),
  revnat('backend FIN on an answered flow: the forward entry gets LB_CT_FIN_BACKEND', reply(client(41014), TCP_FIN | TCP_ACK), HTTP,
    () => tcpFlow(client(41014), ANSWERED), replied(tcpFlow(client(41014), ANSWERED), ['kept', 'kept'], LB_CT_FIN_BACKEND)),
  revnat('backend FIN does not mark a forward entry that points at another backend (only its own reverse entry gets REPLIED)',
    reply(client(41009), TCP_FIN | TCP_ACK), HTTP,
    () => {
      const [f, r] = tcpFlow(client(41009));
      return [{ ...f, value: { ...f.value, natAddr: '10.0.0.2' } }, r];
    },
    ((): ExpectedFlow[] => {
      const [f, r] = tcpFlow(client(41009));
      const [ef, er] = expectPair([{ ...f, value: { ...f.value, natAddr: '10.0.0.2' } }, r], ['kept', 'kept']);
      return [ef!, { ...er!, value: { ...er!.value, state: LB_CT_REPLIED } }];
    })()),
  revnat('backend RST before any reply (a refused SYN): rewritten, both entries deleted, failed_conns++',
    reply(client(41011), TCP_RST | TCP_ACK), HTTP,
    () => tcpFlow(client(41011)), [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1, failedConns: 1 } }),
  revnat('backend RST after replies (REPLIED on both entries): both entries deleted, no failed_conns',
    reply(client(41015), TCP_RST | TCP_ACK), HTTP,
    () => tcpFlow(client(41015), ANSWERED), [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1 } }),
  revnat('backend RST when only the forward entry has REPLIED (reverse entry re-created by XDP): no failed_conns',
    reply(client(41016), TCP_RST), HTTP,
    () => tcpFlow(client(41016), { state: LB_CT_REPLIED }), [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1 } }),
  revnat('backend RST when only the reverse entry has REPLIED (forward bit lost to a race): no failed_conns',
    reply(client(41017), TCP_RST), HTTP,
    () => tcpFlow(client(41017), { reverseState: LB_CT_REPLIED }), [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1 } }),
  revnat('backend RST with the forward entry evicted and no reply seen: reverse deleted, failed_conns++',
    reply(client(41018), TCP_RST | TCP_ACK), HTTP,
    () => [tcpFlow(client(41018))[1]], [], { tc_revnat: 1, ct_closed: 1 }, { [A.targetId]: { closedFlows: 1, failedConns: 1 } }),
  revnat('a later reply (REPLIED on the reverse entry) does not look up the forward entry: a forward entry without the bit stays so',
    reply(client(41019), TCP_ACK), HTTP, () => tcpFlow(client(41019), { reverseState: LB_CT_REPLIED })),
  revnat('a reverse entry alone (forward evicted) still rewrites, and gets REPLIED', reply(client(41012), TCP_ACK), HTTP,
    () => [tcpFlow(client(41012))[1]],
    ((): ExpectedFlow[] => {
      const [, r] = replied(tcpFlow(client(41012)));
      return [r!];
    })()),

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
  untouched('ICMP from the backend to the client quoting UDP under a TCP flow: untouched', buildFrame({
    ipv4: { src: A.addr, dst: client(41105).addr },
    l4: { kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_PORT_UNREACH, inner: { ipv4: { src: client(41105).addr, dst: A.addr }, l4: { kind: 'udp', sport: 41105, dport: 8080 } } },
  }), () => tcpFlow(client(41105))),
  revnat('first fragment of a reply: rewritten like any reply (its later fragments follow it: icmp-frag-fixtures)',
    withIp(reply(client(41106), TCP_ACK), { mf: true }), HTTP, () => tcpFlow(client(41106)), replied(tcpFlow(client(41106)))),
  untouched('non-first fragment of a reply of no tracked datagram: untouched', buildFrame({
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

describe('failed connection attempts: SYNs through XDP, replies through TC, unanswered ones counted in user space', () => {
  let h: Harness | undefined;
  beforeAll(() => { h = openHarness('fail'); });
  afterAll(() => { closeHarness(h); });

  it('answered: neither count; refused (RST before a reply): failed_conns; silent: countUnansweredFlows; attempts: new_flows', () => {
    const dp = h!.dp;
    clearFlows(dp);
    install(dp, config({ listeners: [{ vip: HTTP.addr, port: HTTP.port, id: 1, group: 1 }], groups: { 1: [A] } }));
    const answered = client(43000);
    const refused = client(43001);
    const silent = client(43002);
    const before = dp.readTargetStats(A.targetId);
    for (const c of [answered, refused, silent]) xdpRun(dp, buildFrame(tcpSpec(c, HTTP, TCP_SYN)));
    const tc = (spec: FrameSpec): void => { expect(dp.testRun('tc', buildFrame(spec), { ifindex: 1 }).retval).toBe(TC_ACT_OK); };
    tc(reply(answered, TCP_SYN | TCP_ACK));
    tc(reply(refused, TCP_RST | TCP_ACK));

    const after = dp.readTargetStats(A.targetId);
    expect(after.newFlows - before.newFlows, 'attempts').toBe(3n);
    expect(after.failedConns - before.failedConns, 'refused by the backend').toBe(1n);
    const now = monoNow();
    const flows = readConntrack(dp);
    expect(unansweredFlows(flows, now, 0n).map((f) => f.key.sport)).toEqual([silent.port]);
    expect(countUnansweredFlows(flows, now, 0n)).toEqual(new Map([[A.targetId, 1]]));
    expect(countUnansweredFlows(flows, now, 60_000_000_000n), 'within the bound: not yet a failure').toEqual(new Map());

    // Counted once across samples; a late answer takes the flow out of the set.
    const counted = new Set<string>();
    expect(countUnansweredFlows(flows, now, 0n, counted)).toEqual(new Map([[A.targetId, 1]]));
    expect(countUnansweredFlows(readConntrack(dp), monoNow(), 0n, counted)).toEqual(new Map());
    tc(reply(silent, TCP_SYN | TCP_ACK));
    expect(countUnansweredFlows(readConntrack(dp), monoNow(), 0n, counted)).toEqual(new Map());
    expect(counted.size).toBe(0);
    expect(dp.readTargetStats(A.targetId).failedConns - before.failedConns).toBe(1n);
  });
});
