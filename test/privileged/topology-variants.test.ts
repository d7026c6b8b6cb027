// The sandbox topology's link-layer variants (src/sandbox/topology-variants.ts), without any load
// balancer: for each variant a topology of 1 client and 2 backends is built, its interfaces are
// checked to be what the variant stands for (bridge ports, VLAN id, bond mode, offloads), and plain
// kernel forwarding in the LB namespace must carry HTTP and UDP from the client to every backend.
// Needs root; fails (never skips) without. A variant whose kernel driver is missing ('bond',
// 'vlan' on a kernel built without them) must be refused with the reason instead: its build checks
// are then not declared, and the refusal test carries the reason in its name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import {
  SandboxError, VIP, bondSupported, createTopology, httpGet, listNamespaces, udpRequest, vlanSupported,
  type FeatureSupport, type Iface, type Topology, type TopologyVariant,
} from '../../src/sandbox/index.js';

const isRoot = process.getuid?.() === 0;
// Every topology of this file is named lbt<this pid><3 letters>-...
const OURS = new RegExp(`^lbt${process.pid}[a-z]{3}-`);
const support: Record<'bond' | 'vlan', FeatureSupport> = isRoot
  ? { bond: await bondSupported(), vlan: await vlanSupported() }
  : { bond: { ok: false, reason: 'not root' }, vlan: { ok: false, reason: 'not root' } };

interface LinkJson {
  ifname: string;
  ifindex: number;
  link?: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string; info_slave_data?: Record<string, unknown> };
}
interface AddrJson { ifname: string; addr_info: Array<{ family: string; local: string; prefixlen: number }> }
interface NeighJson { dst: string; dev: string; lladdr?: string; state: string[] }

/** Per host: [address, gateway, iface, lbIface, lbPort] as the variant promises them. */
type HostRow = [string, string, string, string, string];
interface Expected {
  clients: HostRow[];
  backends: HostRow[];
  clientSide: string[];
  backendSide: string[];
  tuned: boolean;
}

const VETH_CLIENTS: HostRow[] = [['10.201.1.2', '10.201.1.1', 'eth0', 'veth-c1', 'veth-c1']];
const VETH_BACKENDS: HostRow[] = [['10.202.1.2', '10.202.1.1', 'eth0', 'veth-b1', 'veth-b1'], ['10.202.2.2', '10.202.2.1', 'eth0', 'veth-b2', 'veth-b2']];
const EXPECTED: Record<TopologyVariant, Expected> = {
  tuned: { clients: VETH_CLIENTS, backends: VETH_BACKENDS, clientSide: ['veth-c1'], backendSide: ['veth-b1', 'veth-b2'], tuned: true },
  'default-veth': { clients: VETH_CLIENTS, backends: VETH_BACKENDS, clientSide: ['veth-c1'], backendSide: ['veth-b1', 'veth-b2'], tuned: false },
  bridge: {
    clients: VETH_CLIENTS,
    backends: [['10.202.0.2', '10.202.0.1', 'eth0', 'br0', 'veth-b1'], ['10.202.0.3', '10.202.0.1', 'eth0', 'br0', 'veth-b2']],
    clientSide: ['veth-c1'], backendSide: ['br0'], tuned: false,
  },
  vlan: {
    clients: [['10.201.1.2', '10.201.1.1', 'eth0.100', 'veth-c1.100', 'veth-c1']],
    backends: VETH_BACKENDS, clientSide: ['veth-c1.100'], backendSide: ['veth-b1', 'veth-b2'], tuned: false,
  },
  bond: {
    clients: [['10.201.1.2', '10.201.1.1', 'eth0', 'bond-c1', 'veth-c1']],
    backends: VETH_BACKENDS, clientSide: ['bond-c1'], backendSide: ['veth-b1', 'veth-b2'], tuned: false,
  },
};

/** What only this variant has, checked on `ip -j -d link show` of the namespaces. */
const VARIANT_LINKS: Record<TopologyVariant, (t: Topology) => Promise<void>> = {
  tuned: async () => {},
  'default-veth': async () => {},
  bridge: async (t) => {
    const lb = await links(t, 'lb');
    expect(lb.find((l) => l.ifname === 'br0')?.linkinfo?.info_kind).toBe('bridge');
    const ports = lb.filter((l) => l.master === 'br0');
    expect(ports.map((l) => [l.ifname, l.linkinfo?.info_kind, l.linkinfo?.info_slave_kind, l.linkinfo?.info_slave_data?.state]).sort())
      .toEqual([['veth-b1', 'veth', 'bridge', 'forwarding'], ['veth-b2', 'veth', 'bridge', 'forwarding']]);
    expect(lb.find((l) => l.ifname === 'veth-c1')?.master).toBeUndefined();
    expect(await inet(t, 'lb', 'br0')).toEqual(['10.202.0.1/24']);
    for (const port of ['veth-b1', 'veth-b2']) expect(await inet(t, 'lb', port)).toEqual([]);
    // Static neighbours come with static FDB entries: the first frame to a backend is not flooded.
    const fdb = JSON.parse((await t.exec('lb', ['bridge', '-j', 'fdb', 'show', 'br', 'br0'])).stdout) as Array<{ mac: string; ifname: string; state?: string }>;
    for (const b of t.backends) expect(fdb).toContainEqual(expect.objectContaining({ mac: b.iface.mac, ifname: b.lbPort.name, state: 'static' }));
  },
  vlan: async (t) => {
    const c = t.clients[0]!;
    const sub = (await links(t, c.ns)).find((l) => l.ifname === 'eth0.100');
    expect([sub?.link, sub?.linkinfo?.info_kind, sub?.linkinfo?.info_data?.id]).toEqual(['eth0', 'vlan', 100]);
    expect(await inet(t, c.ns, 'eth0')).toEqual([]);
    expect(await inet(t, c.ns, 'eth0.100')).toEqual(['10.201.1.2/24']);
    const lbSub = (await links(t, 'lb')).find((l) => l.ifname === 'veth-c1.100');
    expect([lbSub?.link, lbSub?.linkinfo?.info_kind, lbSub?.linkinfo?.info_data?.id]).toEqual(['veth-c1', 'vlan', 100]);
    expect(await inet(t, 'lb', 'veth-c1')).toEqual([]);
    expect(await inet(t, 'lb', 'veth-c1.100')).toEqual(['10.201.1.1/24']);
  },
  bond: async (t) => {
    const lb = await links(t, 'lb');
    const bond = lb.find((l) => l.ifname === 'bond-c1');
    expect(bond?.linkinfo?.info_kind).toBe('bond');
    expect(bond?.linkinfo?.info_data).toMatchObject({ mode: 'active-backup', miimon: 100, active_slave: 'veth-c1' });
    const slave = lb.find((l) => l.ifname === 'veth-c1');
    expect([slave?.master, slave?.linkinfo?.info_slave_kind]).toEqual(['bond-c1', 'bond']);
    expect(await inet(t, 'lb', 'bond-c1')).toEqual(['10.201.1.1/24']);
    expect(await inet(t, 'lb', 'veth-c1')).toEqual([]);
  },
};

async function links(t: Topology, ns: string): Promise<LinkJson[]> {
  return JSON.parse((await t.exec(ns, ['ip', '-j', '-d', 'link', 'show'])).stdout) as LinkJson[];
}

async function inet(t: Topology, ns: string, dev: string): Promise<string[]> {
  const rows = JSON.parse((await t.exec(ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', dev])).stdout) as AddrJson[];
  return rows.flatMap((r) => r.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`));
}

const row = (h: { address: string; gateway: string; iface: Iface; lbIface: Iface; lbPort: Iface }): HostRow =>
  [h.address, h.gateway, h.iface.name, h.lbIface.name, h.lbPort.name];

function describeVariant(variant: TopologyVariant, buildable = true): void {
  const exp = EXPECTED[variant];
  // Not declared at all where the kernel lacks the driver (a skipped test would read as a pass in
  // CI): the refusal test below runs instead and names the reason.
  if (!buildable) return;
  describe(`variant ${variant}`, () => {
    let topo: Topology | undefined;
    const t = (): Topology => {
      if (!topo) throw new Error('topology not created');
      return topo;
    };

    beforeAll(async () => {
      if (!isRoot) throw new Error('the topology variant tests need root');
      topo = await createTopology({ variant, backends: 2, clients: 1 });
      await topo.startBackendServers();
    });

    afterAll(async () => {
      const prefix = topo?.prefix;
      try {
        await topo?.destroy();
      } finally {
        topo?.destroySync(); // no-op after a complete destroy(); the last resort otherwise
        if (prefix) expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      }
    });

    it('reports the variant\'s addresses and interfaces, as seen in their namespaces', async () => {
      expect(t().variant).toBe(variant);
      expect(t().clients.map(row)).toEqual(exp.clients);
      expect(t().backends.map(row)).toEqual(exp.backends);
      expect(t().clientSideIfaces.map((i) => i.name)).toEqual(exp.clientSide);
      expect(t().backendSideIfaces.map((i) => i.name)).toEqual(exp.backendSide);
      const lb = await links(t(), 'lb');
      for (const i of [...t().clients, ...t().backends].flatMap((h) => [h.lbIface, h.lbPort])) {
        expect(lb.find((l) => l.ifname === i.name)?.ifindex).toBe(i.ifindex);
      }
      for (const h of [...t().clients, ...t().backends]) {
        expect((await links(t(), h.ns)).find((l) => l.ifname === h.iface.name)?.ifindex).toBe(h.iface.ifindex);
        expect(await inet(t(), h.ns, h.iface.name)).toEqual([`${h.address}/24`]);
        expect(await inet(t(), 'lb', h.lbIface.name)).toEqual([`${h.gateway}/24`]);
        expect((await t().exec(h.ns, ['ip', 'route', 'show', 'default'])).stdout).toContain(`default via ${h.gateway} dev ${h.iface.name}`);
      }
      for (const ns of t().namespaces()) for (const i of ns.interfaces) expect(i.name.length).toBeLessThanOrEqual(15);
    });

    it('builds the variant\'s link layer', async () => {
      await VARIANT_LINKS[variant](t());
    });

    it(exp.tuned ? 'tunes eth0: TX checksum offload off, GRO on' : 'leaves eth0 at kernel defaults: TX checksum offload on, GRO off', async () => {
      for (const h of [...t().clients, ...t().backends]) {
        const k = (await t().exec(h.ns, ['ethtool', '-k', 'eth0'])).stdout;
        expect(k).toMatch(exp.tuned ? /^tx-checksumming: off/m : /^tx-checksumming: on/m);
        expect(k).toMatch(exp.tuned ? /^generic-receive-offload: on/m : /^generic-receive-offload: off/m);
      }
    });

    it('forwards in the LB namespace with rp_filter off, IPv6 off and the VIP on no interface', async () => {
      const sysctl = async (ns: string, key: string): Promise<string> => (await t().exec(ns, ['sysctl', '-n', key])).stdout.trim();
      expect(await sysctl('lb', 'net.ipv4.ip_forward')).toBe('1');
      expect(await sysctl('lb', 'net.ipv4.conf.all.rp_filter')).toBe('0');
      for (const h of [...t().clients, ...t().backends]) {
        for (const i of [h.lbIface, h.lbPort]) expect(await sysctl('lb', `net/ipv4/conf/${i.name}/rp_filter`)).toBe('0');
      }
      for (const ns of t().namespaces()) {
        expect(await sysctl(ns.name, 'net.ipv6.conf.all.disable_ipv6')).toBe('1');
        expect((await t().exec(ns.name, ['ip', '-4', 'addr', 'show'])).stdout).not.toContain(VIP);
      }
    });

    it('pins static neighbours on the interfaces that hold the addresses', async () => {
      const neigh = async (ns: string): Promise<NeighJson[]> => JSON.parse((await t().exec(ns, ['ip', '-j', '-4', 'neigh', 'show'])).stdout) as NeighJson[];
      const lb = await neigh('lb');
      for (const h of [...t().clients, ...t().backends]) {
        expect(lb).toContainEqual(expect.objectContaining({ dst: h.address, dev: h.lbIface.name, lladdr: h.iface.mac, state: ['PERMANENT'] }));
        expect(await neigh(h.ns)).toContainEqual(expect.objectContaining({ dst: h.gateway, dev: h.iface.name, lladdr: h.lbIface.mac, state: ['PERMANENT'] }));
      }
    });

    it('carries HTTP from the client to each backend by plain kernel forwarding', async () => {
      const c = t().clients[0]!;
      for (const b of t().backends) {
        expect(await httpGet(c.ns, `http://${b.address}:${b.httpPort}/`, { timeoutMs: 5000 })).toMatchObject({ status: 200, body: `${b.name}\n` });
      }
      // No NAT anywhere: the backend sees the client's own address.
      const who = await httpGet(c.ns, `http://${t().backends[1]!.address}:${t().backends[1]!.httpPort}/whoami`);
      expect(JSON.parse(who.body)).toMatchObject({ name: 'b2', remoteAddress: c.address, localAddress: t().backends[1]!.address });
    });

    it('carries UDP from the client to each backend and back', async () => {
      const c = t().clients[0]!;
      for (const b of t().backends) {
        const r = await udpRequest(c.ns, b.address, b.udpPort!, 'ping', { timeoutMs: 2000 });
        expect(r.reply?.toString()).toBe(`${b.name}\n`);
        expect(r.from).toEqual({ address: b.address, port: b.udpPort });
      }
    });
  });
}

function describeRefusal(variant: 'bond' | 'vlan', probe: () => Promise<FeatureSupport>): void {
  const s = support[variant];
  it(`variant ${variant}: this kernel cannot build it, and createTopology says why (${s.reason ?? ''})`, async () => {
    expect(isRoot, 'needs root').toBe(true);
    expect(await probe()).toEqual({ ok: false, reason: expect.stringMatching(/cannot create/) });
    const before = await listNamespaces();
    const err = await createTopology({ variant, backends: 2, clients: 1 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxError);
    expect((err as Error).message).toBe(`topology variant '${variant}' cannot be built on this host: ${s.reason}`);
    // Refused before anything was made.
    expect(await listNamespaces()).toEqual(before);
  });
}

// Once for the file: backend-server runs from dist/ (and the tree may be edited meanwhile).
beforeAll(() => { if (isRoot) ensureBuilt(); });

it('runs as root (the topology tests fail rather than skip without it)', () => {
  expect(isRoot, 'run the privileged tests as root').toBe(true);
});

describeVariant('tuned');
describeVariant('default-veth');
describeVariant('bridge');
// Where the kernel lacks the driver, the refusal is tested instead.
describeVariant('vlan', support.vlan.ok);
if (!support.vlan.ok) describeRefusal('vlan', vlanSupported);
describeVariant('bond', support.bond.ok);
if (!support.bond.ok) describeRefusal('bond', bondSupported);

afterAll(async () => {
  // Every topology above removed itself: nothing with this run's prefix may be left.
  expect((await listNamespaces()).filter((n) => OURS.test(n))).toEqual([]);
});
