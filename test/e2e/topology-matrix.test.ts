// The data path on the host topologies users have, not only on the sandbox's tuned veths: a Linux
// bridge in front of the backends (docker0, cni0, virbr0 hosts), veths with the kernel's default
// offloads (TX checksum offload on at the sender, no GRO at the receiver), and the tuned sandbox.
// In each, lb runs with the default `auto` mode through the agent (src/dataplane/agent.ts) and real
// clients talk to the VIP: every HTTP connection and UDP request is answered from the VIP, each
// new flow lands on the backend the flow hash names under the configured weights, and the
// counters show lb forwarded them itself (bpf_redirect_neigh), not the stack.
//
// 802.1Q VLAN and bond variants are built where the kernel has the drivers; this CI kernel has
// neither (CONFIG_VLAN_8021Q, CONFIG_BONDING unset, no modules), which
// test/privileged/topology-variants.test.ts asserts and docs/dataplane.md records.
//
// Also: forcing the XDP path onto default veths and forcing their backends into the devmap
// reproduces the black hole lb used to have there; the kernel's redirect failures then show in
// lb_stats_v4.redirect_err instead of vanishing.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, encodeU32, interfaceIndex, type StatName } from '../../src/dataplane/index.js';
import {
  bondSupported, createTopology, udpCountBackends, udpRequest, vlanSupported, type Topology, type TopologyVariant,
} from '../../src/sandbox/index.js';
import { withNetns } from '../../src/sandbox/netns.js';
import { ensureBuilt } from '../lib/build.js';
import { startAgent, teardownAgentSandbox, writeAgentConfig, type Agent } from './lib/agent.js';
import { httpBatch } from './lib/clients.js';
import { TCP_PORT, UDP_PORT, e2eConfig, predictTcp, range } from './lib/config.js';
import { ingressPathSeen } from './lib/kernel.js';

if (process.getuid?.() !== 0) {
  throw new Error('topology-matrix.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const WEIGHTS = [50, 30, 20];
const CONNECTIONS = 120;
const UDP_FLOWS = 30;

const variants: TopologyVariant[] = ['tuned', 'default-veth', 'bridge'];
if ((await vlanSupported()).ok) variants.push('vlan');
if ((await bondSupported()).ok) variants.push('bond');

/** One topology with lb's agent on it, torn down (namespaces, pins) also when a test fails. */
function sandbox(variant: TopologyVariant, path: 'auto' | 'xdp'): {
  topo: () => Topology; agent: () => Agent; dp: () => DataPlane; instance: string;
} {
  const instance = `mx-${variant}-${path}-${process.pid}-${randomBytes(2).toString('hex')}`;
  let topo: Topology | undefined;
  let agent: Agent | undefined;
  let dp: DataPlane | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-matrix-'));
    topo = await createTopology({ variant, backends: 3, clients: 1 });
    await topo.startBackendServers();
    const config = join(dir, 'agent.json');
    writeAgentConfig(config, e2eConfig(topo, WEIGHTS));
    agent = await startAgent(topo, instance, config, { path });
    dp = DataPlane.open({ instance });
  });

  afterAll(() => teardownAgentSandbox({ instance, topo, agent, dp, dir }));

  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} not set up`);
    return v;
  };
  return { topo: () => need(topo, 'topology'), agent: () => need(agent, 'agent'), dp: () => need(dp, 'data plane'), instance };
}

for (const variant of variants) {
  describe(`topology ${variant}: lb in auto mode`, () => {
    const s = sandbox(variant, 'auto');

    it('chooses the TC path on the virtual client interface, and says why', () => {
      const { interfaces } = s.agent().ready;
      console.log(`matrix ${variant}: ${interfaces.map((i) => `${i.ifname} -> ${i.path} (${i.pathReason})`).join('; ')}`);
      expect(interfaces.map((i) => [i.ifname, i.path])).toEqual(s.topo().clients.map((c) => [c.lbIface.name, 'tc']));
      for (const i of interfaces) expect(i.pathReason).toMatch(/is a virtual interface \((veth|vlan|bond)\)/);
      const progs = { xdp: s.dp().programs.xdp.id, tcIngress: s.dp().programs.tc_ingress.id };
      expect(ingressPathSeen(s.topo().lbNs, s.topo().clients[0]!.lbIface.name, progs)).toBe('tc');
    });

    it(`answers ${CONNECTIONS} HTTP connections from the VIP, each on the backend the hash names`, async () => {
      const t = s.topo();
      const c = t.clients[0]!;
      const ports = range(21_000, CONNECTIONS);
      const answers = await httpBatch(c.ns, t.vip, TCP_PORT, '/', ports, { concurrency: 8 });
      const errors = answers.filter((a) => a.error !== undefined);
      const counts: Record<string, number> = {};
      for (const a of answers) if (a.name) counts[a.name] = (counts[a.name] ?? 0) + 1;
      console.log(`matrix ${variant}: HTTP ${JSON.stringify(counts)}, ${errors.length} errors`);
      expect(errors).toEqual([]);
      expect(answers).toHaveLength(CONNECTIONS);
      for (const a of answers) {
        expect(a.remoteAddress, `reply of port ${a.localPort}`).toBe(t.vip);
        expect(a.name, `backend of port ${a.localPort}`).toBe(predictTcp(t, c.address, a.localPort, WEIGHTS));
      }
    });

    it('answers UDP from the VIP with the client address intact, over every backend', async () => {
      const t = s.topo();
      const c = t.clients[0]!;
      const one = await udpRequest(c.ns, t.vip, UDP_PORT, 'whoami', { sourcePort: 41_053, timeoutMs: 2000 });
      expect(one.from).toEqual({ address: t.vip, port: UDP_PORT });
      expect(JSON.parse(one.reply!.toString())).toMatchObject({ remoteAddress: c.address, remotePort: 41_053 });
      const many = await udpCountBackends(c.ns, t.vip, UDP_PORT, UDP_FLOWS, { timeoutMs: 1000, totalTimeoutMs: 20_000 });
      console.log(`matrix ${variant}: UDP ${JSON.stringify(many.counts)}`);
      expect(many).toMatchObject({ attempted: UDP_FLOWS, failures: 0 });
      expect(Object.keys(many.counts).sort()).toEqual(['b1', 'b2', 'b3']);
    });

    it('forwarded every packet itself: redirect_neigh, no stack fallback, no redirect failure', () => {
      const stats = s.dp().readStats();
      const at = (k: StatName): bigint => stats[k];
      console.log(`matrix ${variant}: tc_rx=${at('tc_rx')} redirect_neigh=${at('redirect_neigh')} fib_pass=${at('fib_pass')} ct_new=${at('ct_new')}`);
      expect(at('ct_new')).toBeGreaterThanOrEqual(BigInt(CONNECTIONS + UDP_FLOWS));
      expect(at('redirect_neigh')).toBe(at('ct_new') + at('ct_hit'));
      expect(at('fib_pass')).toBe(0n);
      expect(at('redirect_err')).toBe(0n);
      expect(at('xdp_rx')).toBe(0n);
      expect(at('tc_revnat')).toBeGreaterThan(0n);
    });
  });
}

describe('topology default-veth: the XDP path forced where it cannot deliver', () => {
  const s = sandbox('default-veth', 'xdp');

  it('keeps the backends out of the devmap: their peers have no NAPI, so redirects there would be dropped', () => {
    const { ready } = s.agent();
    expect(ready.interfaces.map((i) => [i.path, i.pathReason])).toEqual([['xdp', 'listen.mode: xdp in the config']]);
    const refused = Object.fromEntries(ready.txRefused.map((r) => [r.ifname, r.reason]));
    for (const b of s.topo().backends) expect(refused[b.lbIface.name], b.lbIface.name).toMatch(/cannot transmit XDP frames/);
  });

  it('counts the kernel\'s redirect failures when the devmap is forced to hold them anyway', async () => {
    const t = s.topo();
    // A deliberate misconfiguration, as lb before 2026-12 made it: every backend veth in the devmap.
    withNetns(t.lbNs, () => {
      for (const b of t.backends) {
        const ifindex = interfaceIndex(b.lbIface.name);
        const value = Buffer.alloc(s.dp().maps.lb_tx_ports.valueSize);
        value.writeUInt32LE(ifindex, 0);
        s.dp().maps.lb_tx_ports.update(encodeU32(ifindex), value);
      }
    });
    const before = s.dp().readStats();
    const lost = await udpCountBackends(t.clients[0]!.ns, t.vip, UDP_PORT, 10, { timeoutMs: 300, totalTimeoutMs: 10_000 });
    const after = s.dp().readStats();
    const failed = after.redirect_err - before.redirect_err;
    console.log(`matrix forced xdp: ${lost.failures}/10 UDP requests unanswered, redirect_err +${failed}, redirect +${after.redirect - before.redirect}`);
    expect(lost.failures).toBe(10);
    expect(after.redirect - before.redirect).toBeGreaterThanOrEqual(10n);
    expect(failed).toBe(after.redirect - before.redirect);
  });
});
