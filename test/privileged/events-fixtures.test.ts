// Connection events out of the data plane (bpf/lib/events.h): packets run through the real
// programs with BPF_PROG_TEST_RUN (XDP ingress, TC ingress, TC egress for replies), and the
// records are read back from the pinned lb_events ring by the daemon's own consumer
// (EventStream: the worker thread mapping the ring). Each flow's counters in its conntrack
// entries, the conn-open record and the conn-close record (reason, counters of both directions,
// duration) are checked. Behaviour: docs/observability.md.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP, LB_EVS_DROPPED, LB_EVS_EMITTED, type ConnEvent } from '../../src/core/abi.js';
import { EventStream } from '../../src/observe/events/event-stream.js';
import {
  LO_IFINDEX, TC_ACT_OK, clearFlows, closeHarness, config, install, openHarness, putFlows, flowPair, monoNow, readConntrack, readFlows, secondsAgo, tcpSpec, tgt,
  totLen, udpSpec, xdpRun, type Endpoint, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, buildFrame, type FrameSpec } from '../lib/packet.js';

const HTTP: Endpoint = { addr: '10.100.0.1', port: 80 };
const DNS: Endpoint = { addr: '10.100.0.1', port: 53 };
const A = tgt('10.0.0.1', 8080, 1, 11);
const U = tgt('10.0.1.1', 5353, 1, 21);
const BA: Endpoint = { addr: A.addr, port: A.port };
const client = (port: number): Endpoint => ({ addr: '172.16.5.10', port });

let h: Harness | undefined;
let stream: EventStream | undefined;
const events: ConnEvent[] = [];

/** Waits (bounded) until `n` records arrived in all. */
async function eventsUpTo(n: number): Promise<ConnEvent[]> {
  const deadline = Date.now() + 10_000;
  while (events.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(events.length, 'records read from the ring').toBe(n);
  return events.splice(0, n);
}

function evStats(): { emitted: bigint; dropped: bigint } {
  const per = h!.dp.maps.lb_ev_stats;
  const sum = (idx: number): bigint => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(idx);
    return per.lookupPerCpu(key)!.reduce((a, v) => a + v.readBigUInt64LE(0), 0n);
  };
  return { emitted: sum(LB_EVS_EMITTED), dropped: sum(LB_EVS_DROPPED) };
}

const xdp = (spec: FrameSpec): Buffer => xdpRun(h!.dp, buildFrame(spec));
const tcIn = (spec: FrameSpec): void => { expect(h!.dp.testRun('tc_ingress', buildFrame(spec), { ifindex: LO_IFINDEX }).retval).not.toBe(2); };
const reply = (spec: FrameSpec): void => { expect(h!.dp.testRun('tc', buildFrame(spec), { ifindex: LO_IFINDEX }).retval).toBe(TC_ACT_OK); };

beforeAll(async () => {
  h = openHarness('events');
  install(h.dp, config({
    listeners: [{ vip: HTTP.addr, port: HTTP.port, id: 7, group: 1 }, { vip: DNS.addr, port: DNS.port, proto: IPPROTO_UDP, id: 8, group: 2 }],
    groups: { 1: [A], 2: [U] },
  }));
  stream = await EventStream.start({ instance: h.instance, onEvents: (b) => { events.push(...b.records()); } });
});

afterAll(async () => {
  try {
    await stream?.stop();
  } finally {
    closeHarness(h);
  }
});

afterEach(() => {
  events.length = 0;
  clearFlows(h!.dp);
});

describe('connection events from the data plane', () => {
  it('a TCP connection through XDP: conn-open at the client\'s ACK (a SYN is only half-open), counters both ways, conn-close on the second FIN', async () => {
    const c = client(45000);
    const before = evStats();
    const syn = buildFrame(tcpSpec(c, HTTP, TCP_SYN));
    const replyLen = totLen(buildFrame(tcpSpec(BA, c, TCP_ACK)));
    xdp(tcpSpec(c, HTTP, TCP_SYN));
    reply(tcpSpec(BA, c, TCP_SYN | TCP_ACK));
    expect(evStats().emitted - before.emitted, 'a half-open flow emits nothing').toBe(0n);
    xdp(tcpSpec(c, HTTP, TCP_ACK | TCP_PSH));
    const [open] = await eventsUpTo(1);
    expect(open).toMatchObject({
      type: 'open', client: c.addr, clientPort: c.port, vip: HTTP.addr, vipPort: HTTP.port, backend: A.addr, backendPort: A.port,
      proto: IPPROTO_TCP, listenerId: 7, targetId: A.targetId, reason: '',
      packetsIn: 2n, bytesIn: BigInt(2 * totLen(syn)), packetsOut: 1n, bytesOut: BigInt(replyLen),
    });
    expect(open!.openNs).toBe(open!.tsNs);

    reply(tcpSpec(BA, c, TCP_ACK | TCP_PSH));
    reply(tcpSpec(BA, c, TCP_ACK | TCP_PSH));
    xdp(tcpSpec(c, HTTP, TCP_ACK | TCP_FIN));
    expect(events.length, 'one FIN is not the end').toBe(0);
    const flows = readFlows(h!.dp);
    const fwd = flows.find((f) => f.key.saddr === c.addr)!.value;
    expect([fwd.packets, fwd.listenerId]).toEqual([3n, 7]);
    reply(tcpSpec(BA, c, TCP_ACK | TCP_FIN));
    const [close] = await eventsUpTo(1);
    expect(close).toMatchObject({
      type: 'close', reason: 'fin', client: c.addr, clientPort: c.port, backend: A.addr, backendPort: A.port, vip: HTTP.addr,
      listenerId: 7, targetId: A.targetId, packetsIn: 3n, packetsOut: 4n, bytesIn: BigInt(3 * totLen(syn)), bytesOut: BigInt(4 * replyLen),
      openNs: open!.openNs,
    });
    expect(close!.tsNs > close!.openNs).toBe(true);

    // The last ACK passes; the close is not emitted twice.
    xdp(tcpSpec(c, HTTP, TCP_ACK));
    const after = evStats();
    expect([after.emitted - before.emitted, after.dropped - before.dropped]).toEqual([2n, 0n]);
  });

  it('the TC ingress path emits the same records', async () => {
    const c = client(45100);
    tcIn(tcpSpec(c, HTTP, TCP_SYN));
    reply(tcpSpec(BA, c, TCP_SYN | TCP_ACK));
    reply(tcpSpec(BA, c, TCP_ACK | TCP_FIN));
    tcIn(tcpSpec(c, HTTP, TCP_ACK | TCP_FIN));
    const [open, close] = await eventsUpTo(2);
    expect(open).toMatchObject({ type: 'open', client: c.addr, clientPort: c.port, backend: A.addr, listenerId: 7 });
    expect(close).toMatchObject({ type: 'close', reason: 'fin', client: c.addr, packetsIn: 2n, packetsOut: 2n });
  });

  it('a reset by the client, and one by the backend, end their flows with their reason', async () => {
    const c1 = client(45200);
    const c2 = client(45201);
    const c3 = client(45202);
    const before = evStats();
    for (const c of [c1, c2, c3]) xdp(tcpSpec(c, HTTP, TCP_SYN));
    reply(tcpSpec(BA, c2, TCP_SYN | TCP_ACK));
    // c1's RST promotes its half-open flow (conn-open) and ends it; c2 is established when reset.
    xdp(tcpSpec(c1, HTTP, TCP_RST | TCP_ACK));
    xdp(tcpSpec(c2, HTTP, TCP_ACK));
    reply(tcpSpec(BA, c2, TCP_RST | TCP_ACK));
    // c3 is refused (RST to its SYN) while half-open: no conn-open, so no conn-close either.
    reply(tcpSpec(BA, c3, TCP_RST | TCP_ACK));
    const got = await eventsUpTo(4);
    expect(got.map((e) => [e.type, e.clientPort, e.reason])).toEqual([
      ['open', c1.port, ''], ['close', c1.port, 'rst-client'], ['open', c2.port, ''], ['close', c2.port, 'rst-backend'],
    ]);
    expect(got[1]).toMatchObject({ packetsIn: 2n, packetsOut: 0n });
    expect(got[3]).toMatchObject({ packetsIn: 2n, packetsOut: 2n });
    expect(evStats().emitted - before.emitted).toBe(4n);
    expect(readConntrack(h!.dp)).toEqual([]);
  });

  it('a flow found expired by its next packet closes as idle-timeout, and the packet opens a new one', async () => {
    const c = client(45300);
    // An hour idle (or since boot, on a machine up for less: either is past UDP's 60 s idle timeout).
    const lastSeenNs = secondsAgo(3600);
    const openNs = secondsAgo(3700);
    expect(monoNow() - lastSeenNs > 61_000_000_000n, 'the machine has been up for over a minute').toBe(true);
    const [f, r] = flowPair(c, DNS, { addr: U.addr, port: U.port }, IPPROTO_UDP, U.targetId, { lastSeenNs });
    putFlows(h!.dp, [{ ...f!, value: { ...f!.value, listenerId: 8, openNs, packets: 5n, bytes: 500n } },
      { ...r!, value: { ...r!.value, packets: 4n, bytes: 400n } }]);
    xdp(udpSpec(c, DNS));
    const [close, open] = await eventsUpTo(2);
    expect(close).toMatchObject({ type: 'close', reason: 'idle-timeout', clientPort: c.port, proto: IPPROTO_UDP, listenerId: 8, packetsIn: 5n, bytesIn: 500n, packetsOut: 4n, bytesOut: 400n });
    // The flow's whole life: from the open time it was stored with.
    expect(close!.openNs).toBe(openNs);
    expect(close!.tsNs > lastSeenNs).toBe(true);
    expect(open).toMatchObject({ type: 'open', clientPort: c.port, packetsIn: 1n });
  });
});

describe('the events worker', () => {
  it('sleeps with nothing to read, and a stop wakes it at once: it says it stopped and posts what the ring held', async () => {
    const mine: ConnEvent[] = [];
    const other = await EventStream.start({ instance: h!.instance, onEvents: (b) => { mine.push(...b.records()); } });
    // The worker waits on the ring and its wake-up descriptor with a 60 s bound: without the
    // wake-up it would still be in that wait (a native call, which even terminate() cannot cut).
    const outcome = await Promise.race([
      other.stop().then(() => 'stopped'),
      new Promise((r) => setTimeout(r, 15_000).unref()).then(() => 'still waiting after 15 s'),
    ]);
    expect(outcome).toBe('stopped');
    expect(other.stoppedCleanly, 'the worker answered the stop').toBe(true);
    expect(mine).toEqual([]);
  });
});
