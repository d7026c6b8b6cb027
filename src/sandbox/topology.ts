// A network-namespace topology for end-to-end tests, the benchmark and the demo. As built by
// default (variant 'tuned'):
//
//   <prefix>-c1 (eth0 10.201.1.2) ──veth── (veth-c1 10.201.1.1) <prefix>-lb (veth-b1 10.202.1.1) ──veth── (eth0 10.202.1.2) <prefix>-b1
//   <prefix>-c2 (eth0 10.201.2.2) ──veth── (veth-c2 10.201.2.1)          (veth-b2 10.202.2.1) ──veth── (eth0 10.202.2.2) <prefix>-b2
//                                                                         ...
// Each client and backend has a default route via its LB-side address, so every packet between
// them crosses the LB namespace, where ip_forward is on and rp_filter off. The VIP 10.200.0.10 is
// on no interface: clients reach it through their default route and the data plane DNATs it.
//
// Other variants (option `variant`, see topology-variants.ts) keep this shape but change the link
// layer the balancer meets, as on users' hosts: untuned veths ('default-veth'), backends behind a
// bridge br0 ('bridge'), clients on an 802.1Q sub-interface ('vlan') or an active-backup bond
// ('bond'). Only 'tuned' applies the ethtool settings below.
//
// Nothing lives in the root namespace: veth pairs are created with both ends directly inside
// their target namespaces, so names stay short (<= 15 chars) and parallel runs cannot collide.
// The namespaces have no link to the outside world; their traffic cannot leave them.
//
// IPv6 is disabled in every namespace so no NDP/MLD noise reaches the data plane's counters.
//
// Offloads of the 'tuned' variant, verified on kernel 6.18 by test/privileged/sandbox.test.ts (a
// tiny XDP program on veth-c1 redirecting to veth-b1):
// - client and backend eth0: `ethtool -K eth0 tx off`. With TX checksum offload a veth passes
//   CHECKSUM_PARTIAL skbs whose L4 checksum field holds only the pseudo-header sum. XDP sees those
//   bytes; after XDP_REDIRECT the checksum state is lost and the receiver drops the datagram
//   (its Udp InCsumErrors / TcpInCsumErrors count up). With tx off the sender computes full
//   checksums in software (and TCP segmentation offload goes off with it: MTU-sized frames).
//   Plain kernel forwarding (XDP_PASS) works either way, since the skb keeps its checksum state.
// - client and backend eth0: `ethtool -K eth0 gro on`. A veth accepts XDP_REDIRECT frames
//   (ndo_xdp_xmit) only when its peer runs NAPI, which needs an XDP program or GRO on the peer.
//   Without it the redirect fails: the redirecting device counts an rx drop (rx_queue_0_drops in
//   `ethtool -S`, not rx_queue_0_xdp_redirect) and the frame is lost. Backends need it for the
//   DNAT fast path; clients get it too so a data plane may redirect replies as well.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../package-root.js';
import { deleteNamespace, deleteSandbox, deleteSandboxSync, forget, removeOnExit } from './namespaces.js';
import { ManagedProcess, SandboxError, isAlive, run, type RunOptions, type RunResult } from './process.js';
import { buildLinks, checkVariant, pinNeighbors, type HostLink, type HostSpec, type TopologyVariant } from './topology-variants.js';

export { BRIDGE_GATEWAY, BRIDGE_NAME, TOPOLOGY_VARIANTS, VLAN_ID, type TopologyVariant } from './topology-variants.js';
export { bondSupported, vlanSupported, type FeatureSupport } from './topology-support.js';

export const VIP = '10.200.0.10';
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_UDP_PORT = 9000;
/** Namespace prefix family of test runs; createTopology() appends the pid and three letters (makeRunPrefix). */
export const TEST_PREFIX_FAMILY = 'lbt';
const MAX_HOSTS = 254;
const CMD_TIMEOUT_MS = 15_000;

export type Role = 'lb' | 'client' | 'backend';

/** An interface as seen inside its namespace. */
export interface Iface {
  ns: string;
  name: string;
  ifindex: number;
  /** IPv4 address without prefix length; '' when none. */
  address: string;
  prefixLen: number;
  mac: string;
}

export interface NamespaceInfo {
  name: string;
  role: Role;
  interfaces: Iface[];
}

interface HostBase {
  /** 1-based. */
  index: number;
  /** Short name: c1, c2, ... or b1, b2, ... (the backend name its servers answer with). */
  name: string;
  ns: string;
  address: string;
  /** The LB-side address of the host's link, its default route. */
  gateway: string;
  /** The interface holding `address` inside the host's namespace: eth0 (eth0.100 for a 'vlan' client). */
  iface: Iface;
  /**
   * The interface holding `gateway` inside the LB namespace, where routing (and a FIB lookup)
   * meets this host: veth-cN / veth-bN; br0 for a 'bridge' backend; veth-cN.100 for a 'vlan'
   * client; bond-cN for a 'bond' client. What the balancer attaches to on the client side.
   */
  lbIface: Iface;
  /**
   * The host's veth end inside the LB namespace: lbIface itself on plain veth links, else the
   * device under it (bridge port veth-bN, VLAN lower device veth-cN, bond slave veth-cN).
   */
  lbPort: Iface;
}

export type ClientHost = HostBase;

export interface BackendHost extends HostBase {
  /** The backend-server process, once startBackendServers() ran. */
  server?: ManagedProcess;
  httpPort?: number;
  udpPort?: number;
}

export interface TopologyOptions {
  /** Namespace name prefix. Default: `lbt<pid><3 letters>` (makeRunPrefix(), one no namespace uses). */
  prefix?: string;
  /** Number of backends, 1..254. Default 3. */
  backends?: number;
  /** Number of clients, 1..254. Default 1. */
  clients?: number;
  /**
   * Permanent neighbour entries in the LB namespace for every client and backend, so a FIB
   * lookup from XDP resolves from the first packet (no ARP round trip that would send the
   * first packets down the slow path). Default true.
   */
  staticNeighbors?: boolean;
  /** Register the topology for cleanup on SIGINT/SIGTERM/SIGHUP and process exit. Default true. */
  cleanupOnSignal?: boolean;
  /**
   * The link layer between the hosts and the LB namespace (topology-variants.ts). Default 'tuned'.
   * 'vlan' and 'bond' throw a SandboxError when the kernel lacks the driver (vlanSupported(),
   * bondSupported() say so beforehand).
   */
  variant?: TopologyVariant;
}

export type ExecVia = 'netns-exec' | 'nsenter';

export interface ExecOptions extends RunOptions {
  /**
   * How to enter the namespace. 'netns-exec' (default) uses `ip netns exec`, which also remounts
   * /sys for the namespace and so hides /sys/fs/bpf. 'nsenter' switches only the network
   * namespace and keeps the host's bpffs visible: use it for lb itself.
   */
  via?: ExecVia;
}

export interface SpawnInOptions {
  via?: ExecVia;
  env?: NodeJS.ProcessEnv;
  label?: string;
}

export interface BackendServerOptions {
  httpPort?: number;
  udpPort?: number;
  /** How long to wait for each server's ready line. Default 10 s. */
  timeoutMs?: number;
}

/** argv prefix that runs a command in `ns` keeping the host's /sys (and so /sys/fs/bpf). */
export function nsenterArgs(ns: string): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`];
}

/** argv prefix that runs a command in `ns` with `ip netns exec`. */
export function netnsExecArgs(ns: string): string[] {
  return ['ip', 'netns', 'exec', ns];
}

function enterArgs(ns: string, via: ExecVia = 'netns-exec'): string[] {
  return via === 'nsenter' ? nsenterArgs(ns) : netnsExecArgs(ns);
}

/** Runs `argv` inside network namespace `ns`, bounded by `timeoutMs` (default 10 s). */
export function execIn(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
  return run([...enterArgs(ns, opts.via), ...argv], opts);
}

/**
 * Path of the compiled backend server. From compiled code it is the sibling file; from the
 * TypeScript sources (vitest) it is the copy under dist/, which `make build` or
 * `npx tsc -p tsconfig.build.json` produces.
 */
export function backendServerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const script = here.endsWith('.ts')
    ? join(packageRoot(), 'dist', 'src', 'sandbox', 'backend-server.js')
    : join(dirname(here), 'backend-server.js');
  if (!existsSync(script)) {
    throw new SandboxError(`${script} is missing: build first (\`make build\` or \`npx tsc -p tsconfig.build.json\`)`, { script });
  }
  return script;
}

/** Suffixes handed out by this process: three letters counting on from a random start. */
const SUFFIXES = 26 ** 3;
let nextSuffix = Math.floor(Math.random() * SUFFIXES);

/**
 * A fresh run prefix: family + pid + 3 letters, e.g. lbt123456xyz. The letters count on within the
 * process (random only at its first), so two sandboxes one process builds never share a prefix,
 * even alive at once (random letters did: 1 in 17,576 per pair, seen in CI); another process has
 * another pid, and a crashed one whose pid came back is caught by the callers' clash check
 * (choosePrefix).
 */
export function makeRunPrefix(family = TEST_PREFIX_FAMILY): string {
  let n = nextSuffix;
  nextSuffix = (nextSuffix + 1) % SUFFIXES;
  let suffix = '';
  for (let i = 0; i < 3; i++, n = Math.floor(n / 26)) suffix = String.fromCharCode(97 + (n % 26)) + suffix;
  return `${family}${process.pid}${suffix}`;
}

/**
 * The prefix a sandbox gets: the caller's (`fixed`), or a fresh one that no existing namespace
 * uses (`clash`: a leftover of a crashed run with the same pid), trying a few. Throws on an
 * invalid prefix or one still in use.
 */
export function choosePrefix(fixed: string | undefined, clash: (prefix: string) => boolean): string {
  let prefix = fixed ?? makeRunPrefix();
  for (let i = 0; i < 5 && fixed === undefined && clash(prefix); i++) prefix = makeRunPrefix();
  if (!/^[A-Za-z][\w]{0,30}$/.test(prefix)) throw new SandboxError(`invalid prefix ${JSON.stringify(prefix)}`);
  if (clash(prefix)) throw new SandboxError(`namespaces with prefix ${prefix} already exist (a crashed run? see destroyStale)`);
  return prefix;
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { timeoutMs: CMD_TIMEOUT_MS });
  return parseNetnsList(r.stdout);
}

function parseNetnsList(text: string): string[] {
  return text.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n !== '');
}

const NAME_RE = /^(.*?)-(lb|c\d+|b\d+)$/;

/**
 * Removes namespaces left by crashed earlier runs of a prefix family: names
 * `<family><pid><letters>-{lb,cN,bN}` whose pid is no longer alive (a live pid is another run in
 * progress, e.g. a parallel test file, and is left alone), and names `<family>-{lb,cN,bN}`
 * (a fixed prefix, as the demo uses). Processes inside them are ended first. Returns the names
 * removed.
 */
export async function destroyStale(family: string = TEST_PREFIX_FAMILY): Promise<string[]> {
  if (!/^[A-Za-z][\w]*$/.test(family)) throw new SandboxError(`invalid prefix family ${JSON.stringify(family)}`);
  const removed: string[] = [];
  for (const ns of await listNamespaces()) {
    const m = NAME_RE.exec(ns);
    if (!m || !m[1]!.startsWith(family)) continue;
    const rest = m[1]!.slice(family.length);
    if (rest !== '') {
      const owner = /^(\d+)[a-z]+$/.exec(rest);
      if (!owner) continue; // another family that merely starts with the same letters
      if (isAlive(Number(owner[1]))) continue;
    }
    await deleteNamespace(ns, 1000);
    removed.push(ns);
  }
  return removed;
}


// ---- the topology ----

interface IpAddrJson {
  ifindex: number;
  ifname: string;
  address?: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** A built topology. Create it with createTopology(); always call destroy(). */
export class Topology {
  readonly prefix: string;
  readonly variant: TopologyVariant;
  readonly vip = VIP;
  readonly lbNs: string;
  readonly clients: ClientHost[] = [];
  readonly backends: BackendHost[] = [];
  /** Every namespace this topology created, in creation order. */
  readonly namespaceNames: string[] = [];
  private readonly nsRoles = new Map<string, Role>();
  private readonly ifaces = new Map<string, Iface[]>();
  private readonly processes = new Set<ManagedProcess>();
  private destroying: Promise<void> | undefined;
  private destroyed = false;

  /** @internal use createTopology() */
  constructor(prefix: string, variant: TopologyVariant = 'tuned') {
    this.prefix = prefix;
    this.variant = variant;
    this.lbNs = `${prefix}-lb`;
  }

  /** The LB namespace's interfaces towards clients (index i-1 is client i). */
  get lbClientIfaces(): Iface[] { return this.clients.map((c) => c.lbIface); }
  /** The LB namespace's interfaces towards backends (index j-1 is backend j; br0 for all in 'bridge'). */
  get lbBackendIfaces(): Iface[] { return this.backends.map((b) => b.lbIface); }
  /** The distinct LB-namespace interfaces the clients are routed through: where the balancer attaches. */
  get clientSideIfaces(): Iface[] { return distinct(this.lbClientIfaces); }
  /**
   * The distinct LB-namespace interfaces the backends are routed through: what a FIB lookup towards
   * a backend returns, so what a redirect would target: veth-b1, veth-b2, ...; just br0 for 'bridge'
   * (whose frames leave through the backend's lbPort, the bridge port).
   */
  get backendSideIfaces(): Iface[] { return distinct(this.lbBackendIfaces); }

  /** Every namespace with its role and interfaces (name, ifindex inside the namespace, address, MAC). */
  namespaces(): NamespaceInfo[] {
    return this.namespaceNames.map((name) => ({ name, role: this.nsRoles.get(name)!, interfaces: this.ifaces.get(name) ?? [] }));
  }

  /** Resolves a role shorthand ('lb', 'c1', 'b2') or a full namespace name of this topology. */
  ns(nameOrRole: string): string {
    const full = this.nsRoles.has(nameOrRole) ? nameOrRole : `${this.prefix}-${nameOrRole}`;
    if (!this.nsRoles.has(full)) throw new SandboxError(`${nameOrRole} is not a namespace of topology ${this.prefix}`);
    return full;
  }

  /** argv prefix running a command in a namespace of this topology with nsenter (for lb). */
  nsenterArgs(nameOrRole: string): string[] {
    return nsenterArgs(this.ns(nameOrRole));
  }

  /** Runs a command to completion inside one of this topology's namespaces. */
  exec(nameOrRole: string, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
    this.assertUsable();
    return execIn(this.ns(nameOrRole), argv, opts);
  }

  /** Starts a long-running process in a namespace; destroy() kills its process group. */
  spawnIn(nameOrRole: string, argv: readonly string[], opts: SpawnInOptions = {}): ManagedProcess {
    this.assertUsable();
    const ns = this.ns(nameOrRole);
    const p = new ManagedProcess([...enterArgs(ns, opts.via), ...argv], {
      ...(opts.env ? { env: opts.env } : {}),
      label: opts.label ?? `${argv.join(' ')} in ${ns}`,
    });
    this.processes.add(p);
    return p;
  }

  /**
   * Starts backend-server in every backend namespace (name b1, b2, ...) and waits until each
   * listens. Needs the compiled dist/src/sandbox/backend-server.js.
   */
  async startBackendServers(opts: BackendServerOptions = {}): Promise<void> {
    const script = backendServerScript();
    const httpPort = opts.httpPort ?? DEFAULT_HTTP_PORT;
    const udpPort = opts.udpPort ?? DEFAULT_UDP_PORT;
    await Promise.all(this.backends.map(async (b) => {
      if (b.server?.running) return;
      b.server = this.spawnIn(b.ns, [process.execPath, script, '--name', b.name, '--http', String(httpPort),
        '--udp', String(udpPort), '--exit-with-parent'], { label: `backend-server ${b.name}` });
      await b.server.waitForOutput(/"ready":true/, opts.timeoutMs ?? 10_000);
      b.httpPort = httpPort;
      b.udpPort = udpPort;
    }));
  }

  private assertUsable(): void {
    if (this.destroying || this.destroyed) throw new SandboxError(`topology ${this.prefix} is destroyed`);
  }

  /** @internal */
  addNamespace(ns: string, role: Role): void {
    this.namespaceNames.push(ns);
    this.nsRoles.set(ns, role);
  }

  /** @internal */
  setIfaces(ns: string, list: Iface[]): void {
    this.ifaces.set(ns, list);
  }

  /**
   * Kills every process started through this topology (process groups) and every other process
   * left inside its namespaces, then deletes the namespaces (their veth pairs go with them).
   * Idempotent; concurrent calls share one teardown. Rejects, after trying everything, if a
   * namespace could not be removed.
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    try {
      await deleteSandbox(this.prefix, this.processes, this.namespaceNames, 1);
    } finally {
      this.destroyed = true;
      forget(this);
    }
  }


  /**
   * Synchronous teardown for exit and signal handlers: SIGKILL to every process group and every
   * process in the namespaces, then `ip netns del`. Idempotent.
   */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    forget(this);
    deleteSandboxSync(this.processes, this.namespaceNames);
  }
}

function distinct(list: Iface[]): Iface[] {
  return list.filter((i, k) => list.findIndex((j) => j.name === i.name) === k);
}

async function ipJson(ns: string): Promise<IpAddrJson[]> {
  const r = await run(['ip', '-n', ns, '-j', 'addr', 'show'], { timeoutMs: CMD_TIMEOUT_MS });
  return JSON.parse(r.stdout) as IpAddrJson[];
}

function toIfaces(ns: string, rows: IpAddrJson[]): Iface[] {
  return rows.map((r) => {
    const v4 = r.addr_info?.find((a) => a.family === 'inet');
    return { ns, name: r.ifname, ifindex: r.ifindex, address: v4?.local ?? '', prefixLen: v4?.prefixlen ?? 0, mac: r.address ?? '' };
  });
}

function checkCount(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) throw new SandboxError(`${what} must be 1..${MAX_HOSTS}, got ${n}`);
}

/**
 * Builds the topology described at the top of this file, with the link layer of `opts.variant`
 * (topology-variants.ts). A variant this kernel cannot build is refused before anything is
 * created; on any later failure everything created so far is removed before the error propagates.
 */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const nBackends = opts.backends ?? 3;
  const nClients = opts.clients ?? 1;
  checkCount('backends', nBackends);
  checkCount('clients', nClients);
  if (process.getuid?.() !== 0) throw new SandboxError('createTopology needs root (network namespaces)');
  const variant = opts.variant ?? 'tuned';
  await checkVariant(variant, nBackends); // before anything exists: nothing to clean up on refusal

  const existing = new Set(await listNamespaces());
  const prefix = choosePrefix(opts.prefix, (p) => [...existing].some((n) => NAME_RE.exec(n)?.[1] === p));

  const topo = new Topology(prefix, variant);
  if (opts.cleanupOnSignal ?? true) {
    removeOnExit(topo);
  }
  const sh = (argv: string[]): Promise<RunResult> => run(argv, { timeoutMs: CMD_TIMEOUT_MS });
  const inNs = (ns: string, argv: string[]): Promise<RunResult> => execIn(ns, argv, { timeoutMs: CMD_TIMEOUT_MS });

  try {
    const lb = topo.lbNs;
    const hosts: Array<HostSpec & { name: string }> = [];
    for (let i = 1; i <= nClients; i++) hosts.push({ role: 'client', index: i, name: `c${i}`, ns: `${prefix}-c${i}` });
    for (let j = 1; j <= nBackends; j++) hosts.push({ role: 'backend', index: j, name: `b${j}`, ns: `${prefix}-b${j}` });

    for (const [ns, role] of [[lb, 'lb'] as const, ...hosts.map((h) => [h.ns, h.role] as const)]) {
      await sh(['ip', 'netns', 'add', ns]);
      topo.addNamespace(ns, role);
      // Before any link exists, so every interface inherits these defaults.
      const sysctls = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
      if (role === 'lb') {
        sysctls.push('net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
      }
      await inNs(ns, ['sysctl', '-q', '-w', ...sysctls]);
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }

    const builder = { lbNs: lb, sh, inNs };
    const links: HostLink[] = await buildLinks(variant, builder, hosts);

    const lbIfaces = toIfaces(lb, await ipJson(lb));
    topo.setIfaces(lb, lbIfaces);
    for (const [k, h] of hosts.entries()) {
      const link = links[k]!;
      const list = toIfaces(h.ns, await ipJson(h.ns));
      topo.setIfaces(h.ns, list);
      const iface = list.find((x) => x.name === link.hostIf);
      const lbIface = lbIfaces.find((x) => x.name === link.lbIf);
      const lbPort = lbIfaces.find((x) => x.name === link.lbPort);
      if (!iface || !lbIface || !lbPort) throw new SandboxError(`interfaces of ${h.ns} missing after setup`);
      if (opts.staticNeighbors ?? true) await pinNeighbors(builder, h, link, iface.mac, lbIface.mac);
      const host: HostBase = { index: h.index, name: h.name, ns: h.ns, address: link.address, gateway: link.gateway, iface, lbIface, lbPort };
      if (h.role === 'client') topo.clients.push(host);
      else topo.backends.push(host);
    }
    return topo;
  } catch (err) {
    await topo.destroy().catch(() => { topo.destroySync(); });
    throw err;
  }
}
