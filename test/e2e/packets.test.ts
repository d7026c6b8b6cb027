// The packets a real network sends, through the VIP, with nftables DNAT on the same topology as
// the reference (issue [packets]): ICMP errors in both directions, path MTU discovery across a
// 1280-byte backend link, and UDP datagrams larger than the MTU (fragments) both ways. Each
// forwarder gets its own sandbox (client c1 -- LB namespace -- backend b1): lb in `auto` mode (the
// TC path on these veths), lb with the XDP path forced (the sandbox's tuned veths can run it),
// and nftables DNAT with lb absent. Every test runs on each; lb must do what the reference does.
//
// Needs root and `traceroute` (Makefile APT_PACKAGES); fails (never skips) without them. Traffic
// stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/core/abi.js';
import { DataPlane, type StatName } from '../../src/dataplane/index.js';
import { createTopology, waitUntil, type Topology, type TopologyVariant } from '../../src/sandbox/index.js';
import { ensureBuilt } from '../lib/build.js';
import { startAgent, teardownAgentSandbox, writeAgentConfig, type Agent } from './lib/agent.js';
import { icmpCounters, lateReplyToClosedPort, startSink, traceroute, udpConnectedProbe, udpEchoes, uploads } from './lib/packet-clients.js';

if (process.getuid?.() !== 0) {
  throw new Error('packets.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const HTTP_PORT = 80; // VIP:80 -> b1:8090, the upload sink
const ECHO_PORT = 53; // VIP:53/udp -> b1:9100, the echo
const CLOSED_PORT = 54; // VIP:54/udp -> b1:9999, where nothing listens
const SINK_HTTP = 8090;
const SINK_UDP = 9100;
const CLOSED_UDP = 9999;
const UPLOADS = 6;
const UPLOAD_BYTES = 200 * 1024;
const UPLOAD_TIMEOUT_MS = 10_000;
const LINK_MTU = 1280;

type Forwarder = 'lb' | 'lb-xdp' | 'nft';
/**
 * The sandbox's tuned veths, and veths with the kernel's defaults, where the client's TCP hands
 * GSO super-packets to the TC path: their segments, not their length, must fit the backend link.
 */
const SETUPS: Array<{ fwd: Forwarder; variant: TopologyVariant }> = [
  { fwd: 'lb', variant: 'tuned' }, { fwd: 'lb-xdp', variant: 'tuned' }, { fwd: 'nft', variant: 'tuned' },
  { fwd: 'lb', variant: 'default-veth' },
];

function nftRules(t: Topology): string {
  const b = t.backends[0]!.address;
  return [
    'table ip lbpackets {',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    ip daddr ${t.vip} tcp dport ${HTTP_PORT} dnat to ${b}:${SINK_HTTP}`,
    `    ip daddr ${t.vip} udp dport ${ECHO_PORT} dnat to ${b}:${SINK_UDP}`,
    `    ip daddr ${t.vip} udp dport ${CLOSED_PORT} dnat to ${b}:${CLOSED_UDP}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

function agentConfig(t: Topology): Parameters<typeof writeAgentConfig>[1] {
  const b = t.backends[0]!.address;
  const ifname = t.clients[0]!.lbIface.name;
  const listener = (port: number, proto: number, id: number) =>
    ({ ifname, vip: t.vip, port, proto, listenerId: id, defaultGroup: id, flags: 0 });
  return {
    interfaces: [ifname],
    listeners: [listener(HTTP_PORT, IPPROTO_TCP, 1), listener(ECHO_PORT, IPPROTO_UDP, 2), listener(CLOSED_PORT, IPPROTO_UDP, 3)],
    groups: [
      { id: 1, targets: [{ addr: b, port: SINK_HTTP, weight: 1, targetId: 1 }] },
      { id: 2, targets: [{ addr: b, port: SINK_UDP, weight: 1, targetId: 2 }] },
      { id: 3, targets: [{ addr: b, port: CLOSED_UDP, weight: 1, targetId: 3 }] },
    ],
  };
}

/** One topology with one forwarder on it, torn down (namespaces, pins, processes) also when a test fails. */
function sandbox(fwd: Forwarder, variant: TopologyVariant): { topo: () => Topology; dp: () => DataPlane | undefined } {
  const instance = `pk-${fwd}-${variant}-${process.pid}-${randomBytes(2).toString('hex')}`;
  let topo: Topology | undefined;
  let agent: Agent | undefined;
  let dp: DataPlane | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-packets-'));
    topo = await createTopology({ variant, backends: 1, clients: 1 });
    await startSink(topo, 'b1', SINK_HTTP, SINK_UDP);
    if (fwd === 'nft') {
      writeFileSync(join(dir, 'nft.conf'), nftRules(topo));
      await topo.exec('lb', ['nft', '-f', join(dir, 'nft.conf')], { timeoutMs: 10_000 });
    } else {
      const config = join(dir, 'agent.json');
      writeAgentConfig(config, agentConfig(topo));
      agent = await startAgent(topo, instance, config, { path: fwd === 'lb-xdp' ? 'xdp' : 'auto' });
      dp = DataPlane.open({ instance });
      const paths = agent.ready.interfaces.map((i) => i.path);
      expect(paths).toEqual([fwd === 'lb-xdp' ? 'xdp' : 'tc']);
    }
  });

  afterAll(() => teardownAgentSandbox({ instance, topo, agent, dp, dir }));

  return {
    topo: () => {
      if (!topo) throw new Error('topology not set up');
      return topo;
    },
    dp: () => dp,
  };
}

const stat = (dp: DataPlane | undefined, name: StatName): bigint => dp?.readStats()[name] ?? 0n;

for (const { fwd, variant } of SETUPS) {
  describe(`packets through the VIP: ${fwd} on ${variant} veths`, () => {
    const s = sandbox(fwd, variant);

    it('8 KB UDP datagrams reach the backend whole and come back whole from the VIP (fragments both ways)', async () => {
      const t = s.topo();
      const before = stat(s.dp(), 'frag_nat');
      const got = await udpEchoes(t.clients[0]!.ns, t.vip, ECHO_PORT, 5, 8000, 3000);
      console.log(`packets ${fwd}: 8 KB UDP ${JSON.stringify(got.map((g) => g.error ?? g.bytes))}`);
      expect(got).toEqual(Array.from({ length: 5 }, () => ({ bytes: 8000, same: true, address: t.vip, port: ECHO_PORT })));
      // 8000 bytes are 6 fragments at MTU 1500: 5 later ones each way, per datagram.
      if (fwd !== 'nft') expect(stat(s.dp(), 'frag_nat') - before).toBe(5n * 5n * 2n);
    });

    it('a backend\'s ICMP port unreachable reaches the client\'s connected UDP socket as ECONNREFUSED', async () => {
      const t = s.topo();
      const before = stat(s.dp(), 'icmp_xlat');
      const r = await udpConnectedProbe(t.clients[0]!.ns, t.vip, CLOSED_PORT, 5, 1000);
      expect(r.code).toBe('ECONNREFUSED');
      if (fwd !== 'nft') expect(stat(s.dp(), 'icmp_xlat') - before).toBeGreaterThanOrEqual(1n);
    });

    it('the client\'s port unreachable about a reply from the VIP reaches the backend (the other direction)', async () => {
      const t = s.topo();
      const b = t.backends[0]!;
      const c = t.clients[0]!;
      const [bBefore, cBefore] = [await icmpCounters(b.ns), await icmpCounters(c.ns)];
      const before = stat(s.dp(), 'icmp_xlat');
      await lateReplyToClosedPort(c.ns, t.vip, ECHO_PORT, 3000);
      // The client's kernel sent the error (to the VIP) ...
      await waitUntil(async () => (await icmpCounters(c.ns)).OutDestUnreachs! > cBefore.OutDestUnreachs!,
        { timeoutMs: 5000, what: 'the client to send port unreachable' });
      // ... and the backend received it with a valid checksum (InDestUnreachs counts only those).
      const bAfter = await waitUntil(async () => {
        const now = await icmpCounters(b.ns);
        return now.InDestUnreachs! > bBefore.InDestUnreachs! ? now : undefined;
      }, { timeoutMs: 5000, what: 'the backend to receive the port unreachable' });
      expect(bAfter.InCsumErrors).toBe(bBefore.InCsumErrors);
      if (fwd !== 'nft') expect(stat(s.dp(), 'icmp_xlat') - before).toBe(1n);
    });

    it('traceroute to the VIP: hop 1 answers (TTL exceeded from the balancer), then the VIP itself', async () => {
      const t = s.topo();
      const hops = await traceroute(t.clients[0]!.ns, t.vip, CLOSED_PORT, 4);
      console.log(`packets ${fwd}: traceroute ${JSON.stringify([...hops])}`);
      // lb leaves the balancer's own address on its TTL exceeded (a router on the path says who it
      // is); nf_nat rewrites it to the VIP. Unanswered ('*') would mean the error was not matched.
      expect(hops.get(1)).toBe(fwd === 'nft' ? t.vip : t.clients[0]!.gateway);
      expect(hops.get(2)).toBe(t.vip);
      expect(hops.has(3)).toBe(false);
    });

    it(`${UPLOADS} POSTs of 200 KB complete across a ${LINK_MTU}-byte backend link (path MTU discovery through the VIP)`, async () => {
      const t = s.topo();
      const b = t.backends[0]!;
      // The balancer's link to the backend shrinks; both endpoints keep 1500, so TCP's MSS stays 1460.
      await t.exec('lb', ['ip', 'link', 'set', b.lbIface.name, 'mtu', String(LINK_MTU)], { timeoutMs: 10_000 });
      // Next hops cached before the change carry the old MTU for up to a second: start from none.
      const dp = s.dp();
      if (dp) {
        const keys = [...dp.maps.lb_nexthops.keys()];
        if (keys.length > 0) dp.maps.lb_nexthops.deleteBatch(keys);
      }
      const before = stat(dp, 'icmp_xlat');
      const results = await uploads(t.clients[0]!.ns, t.vip, HTTP_PORT, UPLOADS, UPLOAD_BYTES, UPLOAD_TIMEOUT_MS);
      console.log(`packets ${fwd}: uploads ${JSON.stringify(results)}, icmp_xlat +${stat(dp, 'icmp_xlat') - before}`);
      expect(results).toEqual(Array.from({ length: UPLOADS }, () => 'ok'));
      // The client learnt the path MTU from the balancer's translated "fragmentation needed". (On
      // default veths a GSO packet forwarded whole would still arrive, veth does not enforce the
      // MTU on GSO: only this count and the route's MTU show that lb let the stack answer it.)
      if (fwd !== 'nft') expect(stat(dp, 'icmp_xlat') - before).toBeGreaterThanOrEqual(1n);
      const pmtu = await t.exec('c1', ['ip', 'route', 'get', t.vip], { timeoutMs: 10_000 });
      expect(pmtu.stdout).toMatch(new RegExp(`mtu ${LINK_MTU}`));
    }, UPLOADS * UPLOAD_TIMEOUT_MS + 30_000);
  });
}
