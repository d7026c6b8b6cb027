// The benchmark sandbox: one namespace topology (src/sandbox: client c1, the LB namespace, three
// backends), one lb instance loaded and configured in the LB namespace, the nftables rules and the
// benchmark's counting programs, and the switch between the forwarders measured:
//
//   kernel   nothing attached, no rules: plain IPv4 forwarding in the LB namespace
//   lb       lb on veth-c1 with the data path `auto` picks there (on a veth: the TC path, skb DNAT
//            + bpf_redirect_neigh), TC reverse NAT on egress: what a user gets
//   lb-xdp   lb with the XDP path forced (XDP DNAT + devmap redirect): what a NIC gets; needs the
//            sandbox's tuned veths
//   nft      an nftables DNAT rule (numgen random mod 3) in the LB namespace, lb detached
//   ceiling  bench_count_drop on veth-c1: every benchmark packet is counted and dropped on arrival
//   xdp-redirect  bench_redirect on veth-c1: the cheapest XDP forwarder (fixed next hop b1, MAC
//            rewrite, devmap redirect): what XDP redirect costs here before any load balancing
//
// Everything is created inside namespaces this process creates (prefix lbb<pid><xyz>) and every
// step registers its undo in the Cleanup, which main.ts runs at the end, on failure and on signals.

import { existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DataPlane, EMPTY_SETTINGS, IPPROTO_TCP, IPPROTO_UDP, LB_PIN_ROOT, installConfig, interfaceIndex,
  type AttachResult, type GenerationConfig, type StatName,
} from '../../src/dataplane/index.js';
import { choosePaths } from '../../src/dataplane/data-paths.js';
import { createTopology, destroyStale, isAlive, makeRunPrefix, run, type Topology } from '../../src/sandbox/index.js';
import { withNetns } from '../../src/sandbox/netns.js';
import { BENCH_UDP_PORT, BenchObject, compileBenchObject } from './bpf.js';
import type { Cleanup } from './cleanup.js';
import { BenchError } from './errors.js';

export type Forwarder = 'kernel' | 'lb' | 'lb-xdp' | 'nft' | 'ceiling' | 'xdp-redirect';

/** Namespace prefix family of benchmark runs (tests use lbt). */
export const BENCH_PREFIX_FAMILY = 'lbb';
export const HTTP_PORT = 8080;
/** A second TCP listener whose group holds backend b1 alone: lb against "direct to one backend". */
export const HTTP_PORT_ONE_BACKEND = 8081;
const NFT_TABLE = 'lbbench';
const INSTANCE_PREFIX = 'bench-';
/** Temporary directories: lb-bench-<pid>-XXXXXX. */
const TMP_PREFIX = 'lb-bench-';

export class BenchEnv {
  readonly topo: Topology;
  readonly tmp: string;
  readonly objectPath: string;
  readonly instance: string;
  readonly dp: DataPlane;
  /** The LB's client-facing interface (lb's listener, the ceiling's counter). */
  readonly lbIn: { name: string; ifindex: number };
  /** The benchmark programs for the LB's ingress: the ceiling and xdp-redirect forwarders. */
  readonly ingressCounter: BenchObject;
  /** Count deliveries at each backend's eth0 while attached (pps suite). */
  readonly backendCounters: BenchObject[];
  private forwarderValue: Forwarder = 'kernel';
  private lbAttach: AttachResult | undefined;
  private readonly log: (m: string) => void;

  private constructor(init: {
    topo: Topology; tmp: string; objectPath: string; instance: string; dp: DataPlane;
    lbIn: { name: string; ifindex: number }; ingressCounter: BenchObject; backendCounters: BenchObject[]; log: (m: string) => void;
  }) {
    this.topo = init.topo;
    this.tmp = init.tmp;
    this.objectPath = init.objectPath;
    this.instance = init.instance;
    this.dp = init.dp;
    this.lbIn = init.lbIn;
    this.ingressCounter = init.ingressCounter;
    this.backendCounters = init.backendCounters;
    this.log = init.log;
  }

  get forwarder(): Forwarder { return this.forwarderValue; }
  get client() { return this.topo.clients[0]!; }
  get backends() { return this.topo.backends; }
  get vip(): string { return this.topo.vip; }
  /** The path lb runs on veth-c1 and, for XDP, its mode (after the last switch to lb or lb-xdp). */
  get lbPath(): string | undefined {
    const a = this.lbAttach;
    return a === undefined ? undefined : a.path === 'xdp' ? `xdp ${a.xdpMode}` : a.path;
  }

  /** Runs fn with this thread in the LB namespace. */
  inLb<T>(fn: () => T): T {
    return withNetns(this.topo.lbNs, fn);
  }

  static async create(cleanup: Cleanup, log: (m: string) => void): Promise<BenchEnv> {
    await removeStaleRuns(log);

    const tmp = mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${process.pid}-`));
    cleanup.add({ label: `remove ${tmp}`, run: () => rmSync(tmp, { recursive: true, force: true }) });
    const objectPath = compileBenchObject(tmp);

    log('creating the namespace topology (1 client, LB, 3 backends)');
    const topo = await createTopology({ prefix: makeRunPrefix(BENCH_PREFIX_FAMILY), backends: 3, clients: 1 });
    cleanup.add({ label: `destroy topology ${topo.prefix}`, run: () => topo.destroy(), runSync: () => topo.destroySync() });

    const pinRootExisted = existsSync(LB_PIN_ROOT) && readdirSync(LB_PIN_ROOT).length > 0;
    const instance = `${INSTANCE_PREFIX}${process.pid}`;
    const lbNs = topo.lbNs;
    const downInstance = (): void => {
      if (existsSync(`/run/netns/${lbNs}`)) withNetns(lbNs, () => DataPlane.down(instance));
      DataPlane.down(instance);
      removeEmptyPinRoot(pinRootExisted);
    };
    cleanup.add({ label: `lb down --instance ${instance}`, run: downInstance });
    log(`loading lb (instance ${instance})`);
    const dp = DataPlane.open({ instance });
    cleanup.add({ label: 'close the data plane handle', run: () => dp.close() });

    const objects: BenchObject[] = [];
    cleanup.add({ label: 'unload the benchmark programs', run: () => { for (const o of objects) o.close(); } });
    const ingressCounter = new BenchObject(objectPath, 'ingress counter (veth-c1)');
    objects.push(ingressCounter);
    const backendCounters = topo.backends.map((b) => new BenchObject(objectPath, `delivery counter (${b.name} eth0)`));
    objects.push(...backendCounters);

    const lbIn = { name: topo.clients[0]!.lbIface.name, ifindex: 0 };
    const env = new BenchEnv({ topo, tmp, objectPath, instance, dp, lbIn, ingressCounter, backendCounters, log });
    env.inLb(() => {
      lbIn.ifindex = interfaceIndex(lbIn.name);
      installConfig(dp, env.lbConfig());
      const tx = dp.setTxPorts(topo.backends.map((b) => b.lbIface.name));
      if (tx.refused.length > 0) {
        throw new BenchError(`lb_tx_ports refused ${tx.refused.map((r) => `${r.ifname} (${r.reason})`).join(', ')}`);
      }
    });
    writeFileSync(join(tmp, 'nft.conf'), env.nftRules());
    return env;
  }

  /** lb's configuration: UDP 9000 and TCP 8080 over the three backends, TCP 8081 to b1 alone. */
  lbConfig(): GenerationConfig {
    const ifindex = this.lbIn.ifindex;
    const vip = this.vip;
    const all = (port: number, firstId: number) => ({
      targets: this.backends.map((b, i) => ({ addr: b.address, port, weight: 1, targetId: firstId + i })),
    });
    return {
      settings: EMPTY_SETTINGS,
      listeners: [
        { key: { ifindex, vip, port: BENCH_UDP_PORT, proto: IPPROTO_UDP }, value: { listenerId: 1, defaultGroup: 0, flags: 0 } },
        { key: { ifindex, vip, port: HTTP_PORT, proto: IPPROTO_TCP }, value: { listenerId: 2, defaultGroup: 1, flags: 0 } },
        { key: { ifindex, vip, port: HTTP_PORT_ONE_BACKEND, proto: IPPROTO_TCP }, value: { listenerId: 3, defaultGroup: 2, flags: 0 } },
      ],
      groups: [
        { id: 0, group: all(BENCH_UDP_PORT, 1) },
        { id: 1, group: all(HTTP_PORT, 11) },
        { id: 2, group: { targets: [{ addr: this.backends[0]!.address, port: HTTP_PORT, weight: 1, targetId: 21 }] } },
      ],
      srcRoutes: [],
    };
  }

  /** Target ids of the UDP group (lb_tstats slots), in backend order. */
  get udpTargetIds(): number[] { return this.backends.map((_, i) => 1 + i); }

  /** The nftables equivalent: DNAT of the VIP's ports to a random backend (conntrack keeps flows). */
  nftRules(): string {
    const map = this.backends.map((b, i) => `${i} : ${b.address}`).join(', ');
    return [
      `table ip ${NFT_TABLE} {`,
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      `    ip daddr ${this.vip} meta l4proto { tcp, udp } th dport { ${HTTP_PORT}, ${BENCH_UDP_PORT} } dnat to numgen random mod ${this.backends.length} map { ${map} }`,
      `    ip daddr ${this.vip} tcp dport ${HTTP_PORT_ONE_BACKEND} dnat to ${this.backends[0]!.address}:${HTTP_PORT}`,
      '  }',
      '}',
      '',
    ].join('\n');
  }

  /** Makes `mode` the only forwarding configuration active in the LB namespace. */
  async setForwarder(mode: Forwarder): Promise<void> {
    if (mode === this.forwarderValue) return;
    switch (this.forwarderValue) {
      case 'lb': case 'lb-xdp': this.inLb(() => this.dp.detach(this.lbIn.name)); break;
      case 'nft': await this.topo.exec('lb', ['nft', 'delete', 'table', 'ip', NFT_TABLE], { timeoutMs: 10_000 }); break;
      case 'ceiling': case 'xdp-redirect': this.ingressCounter.detach(); break;
      case 'kernel': break;
    }
    this.forwarderValue = 'kernel';
    switch (mode) {
      case 'lb': case 'lb-xdp': {
        const path = mode === 'lb-xdp' ? 'xdp' : this.inLb(() => choosePaths([this.lbIn.name]))[this.lbIn.name]!.path;
        const r = this.inLb(() => this.dp.attach(this.lbIn.name, { path, xdpMode: 'auto' }));
        this.lbAttach = r;
        if (path === 'xdp' && r.xdpMode !== 'native') this.log(`warning: lb runs in ${r.xdpMode} XDP mode on ${r.ifname}: ${r.nativeError ?? ''}`);
        break;
      }
      case 'nft':
        await this.topo.exec('lb', ['nft', '-f', join(this.tmp, 'nft.conf')], { timeoutMs: 10_000 });
        break;
      case 'ceiling':
        this.inLb(() => this.ingressCounter.attach(this.lbIn.name, this.lbIn.ifindex, (fn) => this.inLb(fn), 'bench_count_drop'));
        break;
      case 'xdp-redirect': {
        const b1 = this.backends[0]!;
        this.inLb(() => {
          this.ingressCounter.setNextHop(interfaceIndex(b1.lbIface.name), b1.iface.mac, b1.lbIface.mac);
          this.ingressCounter.attach(this.lbIn.name, this.lbIn.ifindex, (fn) => this.inLb(fn), 'bench_redirect');
        });
        break;
      }
      case 'kernel': break;
    }
    this.forwarderValue = mode;
  }

  /** Attaches a delivery counter to every backend's eth0 (idempotent). */
  attachBackendCounters(): void {
    this.backends.forEach((b, i) => {
      const c = this.backendCounters[i]!;
      if (c.isAttached) return;
      withNetns(b.ns, () => c.attach('eth0', interfaceIndex('eth0'), (fn) => withNetns(b.ns, fn)));
    });
  }

  detachBackendCounters(): void {
    for (const c of this.backendCounters) c.detach();
  }

  /** Packets counted at each backend so far. */
  backendCounts(): bigint[] {
    return this.backendCounters.map((c) => c.count());
  }

  /** lb's global counters (summed over CPUs). */
  lbStats(): Record<StatName, bigint> {
    return this.dp.readStats();
  }

  /** Starts the backend HTTP/UDP servers (b1, b2, b3) unless they run. */
  async ensureBackendServers(): Promise<void> {
    await this.topo.startBackendServers();
  }

  /** TX/RX packet counters of an interface in one of the topology's namespaces. */
  async linkStats(role: string, ifname: string): Promise<{ rxPackets: number; rxDropped: number; txPackets: number; txDropped: number }> {
    const r = await run(['ip', '-n', this.topo.ns(role), '-j', '-s', 'link', 'show', 'dev', ifname], { timeoutMs: 5000 });
    const [link] = JSON.parse(r.stdout) as Array<{ stats64?: { rx: Record<string, number>; tx: Record<string, number> } }>;
    const s = link?.stats64;
    if (!s) throw new BenchError(`no stats64 for ${ifname} in ${role}`);
    return { rxPackets: s.rx.packets ?? 0, rxDropped: s.rx.dropped ?? 0, txPackets: s.tx.packets ?? 0, txDropped: s.tx.dropped ?? 0 };
  }
}

/** Removes namespaces and lb pins that crashed earlier benchmark runs left behind. */
async function removeStaleRuns(log: (m: string) => void): Promise<void> {
  const removed = await destroyStale(BENCH_PREFIX_FAMILY);
  if (removed.length > 0) log(`removed namespaces of an earlier, interrupted run: ${removed.join(', ')}`);
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(name);
    if (m && !isAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  if (!existsSync(LB_PIN_ROOT)) return;
  for (const name of readdirSync(LB_PIN_ROOT)) {
    const m = new RegExp(`^${INSTANCE_PREFIX}(\\d+)$`).exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    DataPlane.down(name);
    log(`removed the pins of an earlier, interrupted run: ${LB_PIN_ROOT}/${name}`);
  }
}

/** Removes /sys/fs/bpf/lb when this run created it and it is empty again. */
function removeEmptyPinRoot(existedBefore: boolean): void {
  if (existedBefore) return;
  try {
    if (readdirSync(LB_PIN_ROOT).length === 0) rmdirSync(LB_PIN_ROOT);
  } catch {
    // gone already, or another instance appeared meanwhile: leave it
  }
}
