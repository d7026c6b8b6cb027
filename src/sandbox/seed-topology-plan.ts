// The plan of a namespace topology derived from a loaded config (an example of the original, as a
// user runs it): which namespaces, links, addresses and routes make every proxy of the config
// reachable exactly as the file says, without changing the file. Pure: createSeedTopology()
// (seed-topology.ts) builds what this returns.
//
//   client namespace per listen interface        LB namespace                      backend namespace per backend address
//   <prefix>-cN  eth0 10.210.N.2/24  ──veth──  IFACE 10.210.N.1/24 (the config's name)
//                + extra /32 source addresses      + a /32 route to each, via 10.210.N.2
//                                                  vbK 10.211.x.y+1/30  ──veth──  eth0 10.211.x.y+2/30 + BACKEND/32   <prefix>-bK
//                                                  + BACKEND/32 via 10.211.x.y+2         default via 10.211.x.y+1
//                                                  lo: 127.x.y.z servers for loopback targets
//
// - Interfaces are named as in the file (eth0, eth1, ...), in order of first use; interface N
//   (1-based) gets 10.210.N.0/24. Clients reach a listener without an address at the LB's own
//   address on that interface (10.210.N.1), a listener with an address (a VIP) at the VIP, which
//   lives on no interface: clients route it through their default route, the LB's side.
// - Every distinct backend address (ip targets that are not loopback, and the addresses the DNS
//   names resolve to) gets a namespace of its own, so a backend can be killed alone; its address is
//   a /32 on the backend side of a /30 link, routed by a host route in the LB namespace.
// - Host targets (`:host`): the names resolve to addresses of 10.212.H.0/24 (H: the name's index),
//   `records` of them in the first answer and `spares` more, already serving, for an answer that
//   changes later. The DNS server itself is the caller's (it runs in the LB namespace).
// - Sources: for each proxy and interface, one client address outside every source route of the
//   proxy (the client's own address when it is outside), and one inside each route, matched by
//   that route and no longer prefix of the proxy. Extra addresses are /32s on the client's eth0,
//   with a /32 route back in the LB namespace. An address can be routed back through one client
//   link only, so a /32 route (one possible address) is covered from the first interface that
//   can take it; `covered` says where each (proxy, route) is exercised.

import { SandboxError } from './process.js';

/** The subnets the plan uses for its own links; config addresses inside them cannot be placed. */
export const CLIENT_NET = '10.210.0.0/16';
export const BACKEND_LINK_NET = '10.211.0.0/16';
export const DNS_POOL_NET = '10.212.0.0/16';
/** Addresses tried, in order, for a client outside a proxy's source routes when its own address is inside one. */
const OUTSIDE_POOL = ['198.51.100.0/24', '100.64.0.0/16', '198.18.0.0/15'];
/** Interface names the plan uses in the LB namespace for backend links. */
export const BACKEND_LINK_PREFIX = 'vb';

/** The parts of a loaded config the topology depends on (src/core/config/types.ts LbConfig satisfies it). */
export interface SeedConfig {
  proxies: ReadonlyArray<{
    name: string;
    listen: { interfaces: readonly string[]; port: number; address: string | null; protocol: 'tcp' | 'udp' | 'both' };
    defaultTarget: SeedGroup;
    sourceRoutes: ReadonlyArray<{ prefix: string; network: string; prefixLength: number; targets: SeedGroup }>;
    sniRoutes: ReadonlyArray<{ targets: SeedGroup }>;
  }>;
}

interface SeedGroup {
  targets: ReadonlyArray<{ kind: 'ip'; ip: string; port: number; healthCheck: { port: number | null } | null }
    | { kind: 'host'; host: string; port: number; healthCheck: { port: number | null } | null }>;
}

export interface SeedPlanOptions {
  /** A records per host name in the first answer (default 1). */
  dnsRecords?: Readonly<Record<string, number>>;
  /** Extra addresses per host name, serving from the start, for a changed answer (default 0). */
  dnsSpares?: Readonly<Record<string, number>>;
}

export interface PlannedInterface {
  /** The config's interface name, created as is in the LB namespace. */
  name: string;
  /** 1-based, order of first use in the config. */
  index: number;
  /** `cN`: the client namespace's suffix. */
  client: string;
  lbAddress: string;
  clientAddress: string;
  prefixLen: number;
  /** /32 source addresses added to the client's eth0 (each routed back through this link). */
  extraAddresses: string[];
}

export interface PlannedBackend {
  /** 1-based. */
  index: number;
  /** `bK`: the backend namespace's suffix. */
  name: string;
  ip: string;
  /** TCP/UDP ports its server listens on: every target port (and health-check port) at this address. */
  ports: number[];
  /** The LB namespace's end of the link. */
  lbIface: string;
  gateway: string;
  linkAddress: string;
  /** The DNS name whose answers include this address, if any. */
  host?: string;
}

export interface PlannedLoopback {
  ip: string;
  ports: number[];
}

export interface PlannedHost {
  host: string;
  ports: number[];
  /** The first answer. */
  records: string[];
  /** Serving addresses not in the first answer. */
  spares: string[];
}

export interface PlannedSource {
  proxy: string;
  iface: string;
  /** The source route the address is matched by, or null: the default target's client. */
  prefix: string | null;
  address: string;
}

export interface SeedPlan {
  interfaces: PlannedInterface[];
  backends: PlannedBackend[];
  loopback: PlannedLoopback[];
  hosts: PlannedHost[];
  sources: PlannedSource[];
  /** Per proxy and route prefix, the interfaces a client inside it is exercised from (at least one). */
  covered: Array<{ proxy: string; prefix: string; ifaces: string[] }>;
}

// ---- IPv4 helpers ----

export function ipToU32(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new SandboxError(`not an IPv4 address: ${ip}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function u32ToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(cidr: string): { network: number; length: number; size: number } {
  const [addr, len] = cidr.split('/');
  const length = len === undefined ? 32 : Number(len);
  const size = 2 ** (32 - length);
  return { network: Math.floor(ipToU32(addr!) / size) * size, length, size };
}

export function inCidr(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  const n = ipToU32(ip);
  return n >= c.network && n < c.network + c.size;
}

const isLoopback = (ip: string): boolean => inCidr(ip, '127.0.0.0/8');
const OWN_NETS = [CLIENT_NET, BACKEND_LINK_NET, DNS_POOL_NET];

function allGroups(p: SeedConfig['proxies'][number]): SeedGroup[] {
  return [p.defaultTarget, ...p.sourceRoutes.map((r) => r.targets), ...p.sniRoutes.map((r) => r.targets)];
}

/** The topology that serves `config` unchanged: see the header. */
export function planSeedTopology(config: SeedConfig, opts: SeedPlanOptions = {}): SeedPlan {
  // Interfaces, in order of first use.
  const ifaceNames: string[] = [];
  for (const p of config.proxies) for (const i of p.listen.interfaces) if (!ifaceNames.includes(i)) ifaceNames.push(i);
  if (ifaceNames.length > 254) throw new SandboxError(`${ifaceNames.length} listen interfaces; the plan holds at most 254`);
  for (const n of ifaceNames) {
    if (n === 'lo' || new RegExp(`^${BACKEND_LINK_PREFIX}\\d+$`).test(n)) {
      throw new SandboxError(`interface ${n} of the config collides with the topology's own interface names`);
    }
  }
  const interfaces: PlannedInterface[] = ifaceNames.map((name, k) => ({
    name, index: k + 1, client: `c${k + 1}`, lbAddress: `10.210.${k + 1}.1`, clientAddress: `10.210.${k + 1}.2`, prefixLen: 24, extraAddresses: [],
  }));

  // Ports per address, from every target (and health-check port) of every group.
  const ipPorts = new Map<string, Set<number>>();
  const hostPorts = new Map<string, Set<number>>();
  const add = (m: Map<string, Set<number>>, k: string, port: number): void => {
    const s = m.get(k) ?? new Set<number>();
    s.add(port);
    m.set(k, s);
  };
  for (const p of config.proxies) {
    for (const g of allGroups(p)) {
      for (const t of g.targets) {
        const ports = [t.port, ...(t.healthCheck?.port ? [t.healthCheck.port] : [])];
        for (const port of ports) add(t.kind === 'ip' ? ipPorts : hostPorts, t.kind === 'ip' ? t.ip : t.host, port);
      }
    }
  }
  const sortPorts = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);

  const loopback: PlannedLoopback[] = [];
  const backendIps: Array<{ ip: string; ports: number[]; host?: string }> = [];
  for (const [ip, ports] of ipPorts) {
    if (isLoopback(ip)) loopback.push({ ip, ports: sortPorts(ports) });
    else backendIps.push({ ip, ports: sortPorts(ports) });
  }
  for (const b of backendIps) {
    const own = OWN_NETS.find((n) => inCidr(b.ip, n));
    if (own) throw new SandboxError(`backend ${b.ip} is inside ${own}, which the topology uses for its own links`);
  }

  const hosts: PlannedHost[] = [...hostPorts.keys()].sort().map((host, h) => {
    const records = opts.dnsRecords?.[host] ?? 1;
    const spares = opts.dnsSpares?.[host] ?? 0;
    if (h >= 254 || records < 1 || records + spares > 250) throw new SandboxError(`cannot place DNS name ${host} (${records} records, ${spares} spares)`);
    const addrs = Array.from({ length: records + spares }, (_, r) => `10.212.${h + 1}.${r + 1}`);
    return { host, ports: sortPorts(hostPorts.get(host)!), records: addrs.slice(0, records), spares: addrs.slice(records) };
  });
  for (const h of hosts) for (const ip of [...h.records, ...h.spares]) backendIps.push({ ip, ports: h.ports, host: h.host });
  for (const name of [...Object.keys(opts.dnsRecords ?? {}), ...Object.keys(opts.dnsSpares ?? {})]) {
    if (!hostPorts.has(name)) throw new SandboxError(`DNS name ${name} is not a host target of the config`);
  }
  if (backendIps.length > 16_000) throw new SandboxError(`${backendIps.length} backends; the plan holds at most 16000`);

  const backends: PlannedBackend[] = backendIps.map((b, k) => {
    const base = ipToU32('10.211.0.0') + (k + 1) * 4; // one /30 per backend link
    return {
      index: k + 1, name: `b${k + 1}`, ip: b.ip, ports: b.ports, lbIface: `${BACKEND_LINK_PREFIX}${k + 1}`,
      gateway: u32ToIp(base + 1), linkAddress: u32ToIp(base + 2), ...(b.host ? { host: b.host } : {}),
    };
  });

  // Sources.
  const taken = new Map<string, string>(); // extra address -> interface it is routed through
  const reserved = new Set<string>([...backends.map((b) => b.ip), ...loopback.map((l) => l.ip),
    ...config.proxies.flatMap((p) => (p.listen.address ? [p.listen.address] : []))]);
  const usable = (ip: string): boolean => !reserved.has(ip) && !OWN_NETS.some((n) => inCidr(ip, n)) && !isLoopback(ip);
  const claim = (iface: PlannedInterface, ip: string): boolean => {
    const owner = taken.get(ip);
    if (owner !== undefined) return owner === iface.name;
    taken.set(ip, iface.name);
    iface.extraAddresses.push(ip);
    return true;
  };
  const sources: PlannedSource[] = [];
  const covered = new Map<string, { proxy: string; prefix: string; ifaces: string[] }>();

  for (const p of config.proxies) {
    const prefixes = p.sourceRoutes.map((r) => r.prefix);
    const longestMatch = (ip: string): string | null => {
      let best: string | null = null;
      let bestLen = -1;
      for (const r of p.sourceRoutes) if (inCidr(ip, r.prefix) && r.prefixLength > bestLen) { best = r.prefix; bestLen = r.prefixLength; }
      return best;
    };
    for (const name of p.listen.interfaces) {
      const iface = interfaces.find((i) => i.name === name)!;
      // Outside every route: the client's own address, else one of the pools.
      let outside: string | undefined;
      if (longestMatch(iface.clientAddress) === null) outside = iface.clientAddress;
      for (const pool of OUTSIDE_POOL) {
        if (outside) break;
        const c = parseCidr(pool);
        for (let k = 0; k < 64 && !outside; k++) {
          const ip = u32ToIp(c.network + ((iface.index * 64 + k) % (c.size - 2)) + 1);
          if (usable(ip) && longestMatch(ip) === null && claim(iface, ip)) outside = ip;
        }
      }
      if (!outside) throw new SandboxError(`no client address outside the source routes of proxy ${p.name} (${prefixes.join(', ')})`);
      sources.push({ proxy: p.name, iface: name, prefix: null, address: outside });

      // Inside each route: from the top of the prefix down (away from the low addresses configs
      // use for hosts), then from the bottom up; the route must be the address's longest match.
      for (const r of p.sourceRoutes) {
        const c = parseCidr(r.prefix);
        const candidates: number[] = [];
        if (c.size <= 2) for (let k = 0; k < c.size; k++) candidates.push(c.network + k);
        else {
          for (let k = 0; k < 128 && k < c.size - 2; k++) candidates.push(c.network + c.size - 2 - k);
          for (let k = 1; k <= 128 && k < c.size - 1; k++) candidates.push(c.network + k);
        }
        const pick = candidates.map(u32ToIp).find((ip) => usable(ip) && longestMatch(ip) === r.prefix && claim(iface, ip));
        const key = `${p.name}\u0000${r.prefix}`;
        const cov = covered.get(key) ?? { proxy: p.name, prefix: r.prefix, ifaces: [] };
        covered.set(key, cov);
        if (pick === undefined) continue; // e.g. a /32 already routed through another interface
        sources.push({ proxy: p.name, iface: name, prefix: r.prefix, address: pick });
        cov.ifaces.push(name);
      }
    }
  }
  for (const c of covered.values()) {
    if (c.ifaces.length === 0) throw new SandboxError(`no usable client address inside source route ${c.prefix} of proxy ${c.proxy}`);
  }

  return { interfaces, backends, loopback, hosts, sources, covered: [...covered.values()] };
}
