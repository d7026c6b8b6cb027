// How createTopology() wires each client and backend namespace to the LB namespace, per variant.
// Every variant keeps the same shape (clients and backends in their own namespaces, everything
// routed through the LB namespace, addresses 10.201.x.x for clients and 10.202.x.x for backends);
// they differ in the link layer the balancer meets, because users run it on such hosts:
//
//   variant        client side (LB namespace)          backend side (LB namespace)        ethtool
//   tuned          veth-cN 10.201.N.1/24               veth-bN 10.202.N.1/24              tx off, gro on
//   default-veth   veth-cN 10.201.N.1/24               veth-bN 10.202.N.1/24              none
//   bridge         veth-cN 10.201.N.1/24               br0 10.202.0.1/24, ports veth-bN   none
//                                                      (backend N: 10.202.0.(N+1)/24)
//   vlan           veth-cN.100 10.201.N.1/24           veth-bN 10.202.N.1/24              none
//                  (VLAN 100 on veth-cN; the client: eth0 + eth0.100 10.201.N.2/24)
//   bond           bond-cN 10.201.N.1/24               veth-bN 10.202.N.1/24              none
//                  (active-backup, miimon 100, slave veth-cN; the client: eth0 10.201.N.2/24)
//
// Hosts are N.2 on their link, except bridge backends (10.202.0.(N+1), all on one /24). The
// per-variant comments at VARIANTS below say which users' hosts each variant stands for.
//
// Names stay within IFNAMSIZ (15 chars) up to 254 hosts: veth-c254.100 and bond-c254 are 13 and 9.
// 'vlan' and 'bond' need kernel drivers that a minimal kernel may lack: checkVariant() probes for
// them (topology-support.ts) before anything is created and refuses with the reason.

import { SandboxError } from './process.js';
import { bondSupported, vlanSupported, type FeatureSupport } from './topology-support.js';

export type TopologyVariant = 'tuned' | 'default-veth' | 'bridge' | 'vlan' | 'bond';
export const TOPOLOGY_VARIANTS: readonly TopologyVariant[] = ['tuned', 'default-veth', 'bridge', 'vlan', 'bond'];

/** The bridge of the 'bridge' variant (LB namespace) and the backends' gateway on it. */
export const BRIDGE_NAME = 'br0';
export const BRIDGE_GATEWAY = '10.202.0.1';
/** The 802.1Q id of the 'vlan' variant's client links. */
export const VLAN_ID = 100;

type ClientKind = 'veth' | 'vlan' | 'bond';
type BackendKind = 'veth' | 'bridge';

interface VariantDef {
  /** `ethtool -K eth0 tx off gro on` at every client and backend (why: topology.ts's header). */
  tune: boolean;
  client: ClientKind;
  backend: BackendKind;
  maxBackends: number;
  /** A kernel feature the variant needs, probed before anything is created. */
  needs?: () => Promise<FeatureSupport>;
}

const VARIANTS: Record<TopologyVariant, VariantDef> = {
  // The sandbox as tuned for veth XDP_REDIRECT (GRO for NAPI on the redirect target, full checksums
  // from senders): the lab setup, and what the demo and benchmarks measure.
  tuned: { tune: true, client: 'veth', backend: 'veth', maxBackends: 254 },
  // Hosts whose veths nobody tuned: containers and pods on veth pairs as Docker, Podman or a CNI
  // plugin (ptp, Calico, Cilium's veth mode) create them: TX checksum offload on, GRO off.
  'default-veth': { tune: false, client: 'veth', backend: 'veth', maxBackends: 254 },
  // Hosts whose backends sit behind a Linux bridge: docker0, cni0 (bridge CNI, flannel), virbr0
  // (libvirt), lxcbr0. Routing reaches them through br0; the frames leave through a port.
  bridge: { tune: false, client: 'veth', backend: 'bridge', maxBackends: 253 },
  // Hosts whose client-facing uplink is a trunk carrying 802.1Q VLANs (eth0.100 on a switch trunk
  // port, a VLAN per tenant): the balancer attaches to the VLAN sub-interface.
  vlan: { tune: false, client: 'vlan', backend: 'veth', maxBackends: 254, needs: vlanSupported },
  // Hosts with a bonded uplink for redundancy (bond0 in active-backup over two NICs): the balancer
  // attaches to the bond, frames arrive on a slave.
  bond: { tune: false, client: 'bond', backend: 'veth', maxBackends: 254, needs: bondSupported },
};

export interface HostSpec {
  role: 'client' | 'backend';
  /** 1-based. */
  index: number;
  ns: string;
}

/** What a variant built for one host; MACs and ifindexes are read back afterwards. */
export interface HostLink {
  kind: ClientKind | BackendKind;
  /** Host namespace: the interface holding the host's address and its default route. */
  hostIf: string;
  address: string;
  /** LB namespace: the interface holding `gateway` (what the host's traffic is routed through). */
  lbIf: string;
  gateway: string;
  /** LB namespace: the host's veth end; lbIf itself, or the bridge port, VLAN lower device or bond slave under it. */
  lbPort: string;
}

/** How the builder runs commands: `sh` in the root namespace (only `ip -n ...`), `inNs` inside one. */
export interface LinkBuilder {
  lbNs: string;
  sh(argv: string[]): Promise<{ stdout: string }>;
  inNs(ns: string, argv: string[]): Promise<unknown>;
}

const UP_TIMEOUT_MS = 10_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Refuses, before anything is created, what cannot be built: unknown name, too many backends, missing kernel driver. */
export async function checkVariant(variant: TopologyVariant, nBackends: number): Promise<void> {
  if (!TOPOLOGY_VARIANTS.includes(variant)) {
    throw new SandboxError(`unknown topology variant ${JSON.stringify(variant)} (one of ${TOPOLOGY_VARIANTS.join(', ')})`, { variant });
  }
  const def = VARIANTS[variant];
  if (nBackends > def.maxBackends) throw new SandboxError(`variant ${variant} takes at most ${def.maxBackends} backends, got ${nBackends}`);
  const support = await def.needs?.();
  if (support && !support.ok) {
    throw new SandboxError(`topology variant '${variant}' cannot be built on this host: ${support.reason}`, { variant, reason: support.reason });
  }
}

/** rp_filter off for one interface; the slash form because VLAN names contain a dot. */
function rpFilterOff(b: LinkBuilder, name: string): Promise<unknown> {
  return b.inNs(b.lbNs, ['sysctl', '-q', '-w', `net/ipv4/conf/${name}/rp_filter=0`]);
}

async function createBridge(b: LinkBuilder): Promise<void> {
  // STP stays off (the default): ports forward as soon as they are up, no listening/learning delay.
  await b.sh(['ip', '-n', b.lbNs, 'link', 'add', BRIDGE_NAME, 'type', 'bridge']);
  await b.sh(['ip', '-n', b.lbNs, 'addr', 'add', `${BRIDGE_GATEWAY}/24`, 'dev', BRIDGE_NAME]);
  await rpFilterOff(b, BRIDGE_NAME);
  await b.sh(['ip', '-n', b.lbNs, 'link', 'set', BRIDGE_NAME, 'up']);
}

async function wire(b: LinkBuilder, h: HostSpec, kind: ClientKind | BackendKind, tune: boolean): Promise<HostLink> {
  const lb = b.lbNs;
  const net = h.role === 'client' ? 201 : 202;
  const port = `veth-${h.role === 'client' ? 'c' : 'b'}${h.index}`;
  // Both ends are created directly in their namespaces (nothing in the root namespace); down.
  await b.sh(['ip', 'link', 'add', port, 'netns', lb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
  const own = { hostIf: 'eth0', lbIf: port, address: `10.${net}.${h.index}.2`, gateway: `10.${net}.${h.index}.1` };
  let link: HostLink;
  switch (kind) {
    case 'veth':
      link = { kind, ...own, lbPort: port };
      break;
    case 'vlan': {
      link = { kind, ...own, hostIf: `eth0.${VLAN_ID}`, lbIf: `${port}.${VLAN_ID}`, lbPort: port };
      await b.sh(['ip', '-n', lb, 'link', 'add', 'link', port, 'name', link.lbIf, 'type', 'vlan', 'id', String(VLAN_ID)]);
      await b.sh(['ip', '-n', h.ns, 'link', 'add', 'link', 'eth0', 'name', link.hostIf, 'type', 'vlan', 'id', String(VLAN_ID)]);
      break;
    }
    case 'bond': {
      link = { kind, ...own, lbIf: `bond-c${h.index}`, lbPort: port };
      // miimon: without link monitoring active-backup never notices a dead slave.
      await b.sh(['ip', '-n', lb, 'link', 'add', link.lbIf, 'type', 'bond', 'mode', 'active-backup', 'miimon', '100']);
      await b.sh(['ip', '-n', lb, 'link', 'set', port, 'master', link.lbIf]); // the slave must be down: it still is
      break;
    }
    case 'bridge':
      link = { kind, ...own, lbIf: BRIDGE_NAME, lbPort: port, address: `10.202.0.${h.index + 1}`, gateway: BRIDGE_GATEWAY };
      await b.sh(['ip', '-n', lb, 'link', 'set', port, 'master', BRIDGE_NAME]);
      break;
  }
  if (kind !== 'bridge') await b.sh(['ip', '-n', lb, 'addr', 'add', `${link.gateway}/24`, 'dev', link.lbIf]);
  await b.sh(['ip', '-n', h.ns, 'addr', 'add', `${link.address}/24`, 'dev', link.hostIf]);
  for (const name of new Set([port, link.lbIf])) await rpFilterOff(b, name);
  if (tune) await b.inNs(h.ns, ['ethtool', '-K', 'eth0', 'tx', 'off', 'gro', 'on']);
  for (const name of new Set([port, link.lbIf])) await b.sh(['ip', '-n', lb, 'link', 'set', name, 'up']);
  for (const name of new Set(['eth0', link.hostIf])) await b.sh(['ip', '-n', h.ns, 'link', 'set', name, 'up']);
  await b.sh(['ip', '-n', h.ns, 'route', 'add', 'default', 'via', link.gateway, 'dev', link.hostIf]);
  return link;
}

interface LinkJson {
  ifname: string;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: { state?: string } };
}

/** Which of `names` in `ns` have no carrier yet, or (bridge ports) do not forward yet. */
async function notReady(b: LinkBuilder, ns: string, names: Set<string>): Promise<string[]> {
  const rows = JSON.parse((await b.sh(['ip', '-n', ns, '-j', '-d', 'link', 'show'])).stdout) as LinkJson[];
  return [...names].filter((name) => {
    const l = rows.find((x) => x.ifname === name);
    if (!l?.flags?.includes('LOWER_UP')) return true;
    const slave = l.linkinfo?.info_slave_kind === 'bridge' ? l.linkinfo.info_slave_data?.state : undefined;
    return slave !== undefined && slave !== 'forwarding';
  }).map((n) => `${n} in ${ns}`);
}

/**
 * Waits (bounded) until every link carries traffic: a veth has carrier as soon as both ends are
 * up, but a bond only once its miimon saw a slave up, and a bridge port only once it forwards.
 */
async function waitReady(b: LinkBuilder, hosts: HostSpec[], links: HostLink[]): Promise<void> {
  const want = new Map<string, Set<string>>([[b.lbNs, new Set(links.flatMap((l) => [l.lbIf, l.lbPort]))]]);
  hosts.forEach((h, i) => want.set(h.ns, new Set(['eth0', links[i]!.hostIf])));
  const deadline = Date.now() + UP_TIMEOUT_MS;
  for (;;) {
    const pending = (await Promise.all([...want].map(([ns, names]) => notReady(b, ns, names)))).flat();
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new SandboxError(`links not up after ${UP_TIMEOUT_MS} ms: ${pending.join(', ')}`, { pending });
    await sleep(50);
  }
}

/** Wires every host (in order) as `variant` says and waits until the links are up. */
export async function buildLinks(variant: TopologyVariant, b: LinkBuilder, hosts: HostSpec[]): Promise<HostLink[]> {
  const def = VARIANTS[variant];
  if (def.backend === 'bridge' && hosts.some((h) => h.role === 'backend')) await createBridge(b);
  const links: HostLink[] = [];
  for (const h of hosts) links.push(await wire(b, h, h.role === 'client' ? def.client : def.backend, def.tune));
  await waitReady(b, hosts, links);
  return links;
}

/**
 * Permanent neighbour entries both ways on the interfaces that hold the addresses, and for a
 * bridge port a static FDB entry, so the first frame to a backend is not flooded to every port.
 */
export async function pinNeighbors(b: LinkBuilder, h: HostSpec, link: HostLink, hostMac: string, lbMac: string): Promise<void> {
  await b.sh(['ip', '-n', b.lbNs, 'neigh', 'replace', link.address, 'lladdr', hostMac, 'dev', link.lbIf, 'nud', 'permanent']);
  await b.sh(['ip', '-n', h.ns, 'neigh', 'replace', link.gateway, 'lladdr', lbMac, 'dev', link.hostIf, 'nud', 'permanent']);
  if (link.kind === 'bridge') {
    await b.sh(['bridge', '-n', b.lbNs, 'fdb', 'replace', hostMac, 'dev', link.lbPort, 'master', 'static']);
  }
}
