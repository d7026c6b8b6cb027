// One example config under test: its (possibly changed) file, loaded with lb's own loader; the
// topology built from it (src/sandbox/seed-topology.ts); a server on every backend address and
// loopback target; a DNS responder when it has host targets; lb applying it (`lb apply`, or
// `lb daemon --config` when it needs the runtime services: health checks, DNS); and what the test
// needs to talk about it: its groups, the weights lb should give them, clients that exercise them,
// the live weights, the runtime status. tearDown() removes everything, also after a failure.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../../src/source/load-config.js';
import type { LbConfig, Proxy, Target, TargetGroup } from '../../../src/core/config/types.js';
import { DataPlane, instanceComplete, instanceDir } from '../../../src/dataplane/index.js';
import type { RuntimeStatus } from '../../../src/runtime/status.js';
import { createSeedTopology, ipToU32, waitUntil, withNetns, type ManagedProcess, type SeedTopology } from '../../../src/sandbox/index.js';
import { readLive } from '../../../src/state/live.js';
import type { LogicalState } from '../../../src/core/state.js';
import { runDir } from '../../../src/state/run-dir.js';
import { endHolder } from '../../../src/acceptor/holder.js';
import { endPairKeeper } from '../../../src/acceptor/pair-keeper.js';
import { ROOT, runCliAsync, type CliResult } from '../../lib/cli.js';
import { DaemonProcess, lbStatus, waitForStatus } from '../lib/daemon.js';
import type { Expectation } from './expectations.js';
import { DnsServer, runBatch, startServer, type Answer } from './scripts.js';

export const SEEDS = join(ROOT, 'test', 'fixtures', 'seed-configs');

/**
 * Source ports, bound explicitly by the clients (their namespaces have no other sockets): each
 * source address counts up from PORT_BASE, so every connection of a file is a new flow with a
 * 5-tuple of its own (a reused one would hit the conntrack entry of the one before), and which
 * ports a test uses depends on the file alone: the flow hash, so the shares, repeat run after run.
 */
const PORT_BASE = 10_000;
const PORT_END = 65_000;

/** How long a read of the live maps is reused (polls run every POLL_MS). */
const LIVE_TTL_MS = 150;
/** Interval of the tests' polls of the live maps and the daemon's status. */
export const POLL_MS = 200;

/** Sandboxes alive at once: the daemon files wait for health checks and DNS refreshes; the rest take turns. */
const MAX_ACTIVE = 4;
let active = 0;
const queue: Array<() => void> = [];
async function acquire(): Promise<void> {
  if (active < MAX_ACTIVE) { active++; return; }
  await new Promise<void>((resolve) => queue.push(resolve));
}
function release(): void {
  const next = queue.shift();
  if (next) next(); else active--;
}

/** A group of backends the data plane serves: a proxy's default target or one of its source routes. */
export interface Group {
  proxy: Proxy;
  /** 'default' or the route's prefix (as compile and the runtime name groups). */
  name: string;
  targets: TargetGroup;
  /** Interfaces a client of this group is exercised from. */
  ifaces: string[];
}

export const groupLabel = (g: Group): string => `${g.proxy.name} ${g.name === 'default' ? 'default target' : `route ${g.name}`}`;

const byAddress = (a: string, b: string): number => ipToU32(a.split(':')[0]!) - ipToU32(b.split(':')[0]!) || a.localeCompare(b);

export class ExampleRun {
  readonly instance: string;
  readonly mode: 'apply' | 'daemon';
  readonly hosts: string[];
  topo: SeedTopology | undefined;
  daemon: DaemonProcess | undefined;
  dns: DnsServer | undefined;
  /** Each DNS name's current answer. */
  answers: Record<string, string[]> = {};
  /** The warnings under the plan lb prints (`lb apply`'s; `lb plan`'s for the daemon), as the table writes them. */
  planWarnings: string[] = [];
  applied: CliResult | undefined;
  /** Connections answered per backend since the start (lb's per-target counters should agree). */
  readonly tally = new Map<string, number>();
  private readonly servers = new Map<string, { ns: string; listen: Array<{ addr: string; port: number }>; proc?: ManagedProcess }>();
  /** Next source port per source address and protocol. */
  private readonly nextPort = new Map<string, number>();
  private acquired = false;
  private live: { at: number; state: LogicalState } | undefined;
  private startedAt = 0;
  private closed = false;

  private constructor(readonly file: string, readonly slot: number, readonly ex: Expectation, readonly dir: string,
    readonly configPath: string, readonly config: LbConfig, private readonly tls: { cert: string; key: string }) {
    this.instance = `ex-${process.pid}-${slot}-${randomBytes(2).toString('hex')}`;
    this.hosts = [...new Set(this.allTargets().flatMap((t) => (t.kind === 'host' ? [t.host] : [])))].sort();
    // The runtime services (health checks, DNS) run in `lb daemon`; `lb apply` alone does not run them.
    // SNI routes and PROXY v2 are served by the daemon's acceptor (docs/sni.md): such files run in the daemon too.
    this.mode = this.hosts.length > 0 || this.allTargets().some((t) => t.healthCheck !== null) || this.config.proxies.some((p) => p.dataPath === 'splice')
      ? 'daemon' : 'apply';
  }

  /**
   * Reads the file with lb's loader, as it is, or (the table's `change`) a changed copy written to
   * `dir`. Runs at collection time: the tests generated for the file depend on what it holds.
   */
  static async load(file: string, slot: number, ex: Expectation, dir: string, tls: { cert: string; key: string }): Promise<ExampleRun> {
    mkdirSync(dir, { recursive: true });
    let path = join(SEEDS, file);
    if (ex.change) {
      path = join(dir, file);
      writeFileSync(path, ex.change.apply(readFileSync(join(SEEDS, file), 'utf8')));
    }
    const { config } = await loadConfig(path);
    return new ExampleRun(file, slot, ex, dir, path, config, tls);
  }

  get t(): SeedTopology {
    if (!this.topo) throw new Error(`${this.file}: the topology was not built`);
    return this.topo;
  }

  allTargets(): Target[] {
    return this.config.proxies.flatMap((p) => [p.defaultTarget, ...p.sourceRoutes.map((r) => r.targets), ...p.sniRoutes.map((r) => r.targets)])
      .flatMap((g) => g.targets);
  }

  /** The groups of default targets and source routes (the SNI routes' are sniGroups()). */
  groups(): Group[] {
    return this.config.proxies.flatMap((proxy) => [
      { proxy, name: 'default', targets: proxy.defaultTarget, ifaces: [...proxy.listen.interfaces] },
      ...proxy.sourceRoutes.map((r) => ({
        proxy, name: r.prefix, targets: r.targets,
        ifaces: this.t.plan.covered.find((c) => c.proxy === proxy.name && c.prefix === r.prefix)?.ifaces ?? [],
      })),
    ]);
  }

  /** One group per SNI route, named "sni:NAME" as the runtime names it, exercised from the proxy's first interface. */
  sniGroups(): Array<Group & { hostname: string }> {
    return this.config.proxies.flatMap((proxy) => proxy.sniRoutes.map((r) => ({
      proxy, name: `sni:${r.wildcard ? '*.' : ''}${r.hostname}`, hostname: r.hostname, targets: r.targets, ifaces: [proxy.listen.interfaces[0]!],
    })));
  }

  protocols(p: Proxy): Array<'tcp' | 'udp'> {
    return p.listen.protocol === 'both' ? ['tcp', 'udp'] : [p.listen.protocol];
  }

  /** Whether clients of `p` speak TLS: the comments say TLS passes through, or it routes by TLS name. */
  speaksTls(p: Proxy): boolean {
    return (this.ex.tls ?? []).includes(p.name) || p.sniRoutes.length > 0;
  }

  /**
   * The backend weights lb should give group `g` ("ADDR:PORT" -> weight, zeros left out) while the
   * addresses in `down` fail their health checks, by the rules of docs/runtime.md: a checked
   * target that is down gets 0 (a host target the share of its live addresses, spread over them);
   * a group whose every target is down fails open (every target its configured weight); a host
   * target's weight is spread over its addresses, floor(w/n) each and the rest one by one from the
   * lowest address.
   */
  expectedWeights(g: Group, down: ReadonlySet<string> = new Set()): Map<string, number> {
    const rows = g.targets.targets.map((t) => {
      const addrs = t.kind === 'ip' ? [t.ip] : [...(this.answers[t.host] ?? [])].sort(byAddress);
      const live = addrs.filter((a) => !(t.healthCheck && down.has(a)));
      const fraction = addrs.length === 0 ? 0 : live.length / addrs.length;
      const weight = fraction === 0 ? 0 : Math.max(1, Math.round(t.weight * fraction));
      return { t, addrs, live, weight, healthDown: fraction === 0 && addrs.length > 0 };
    });
    const failOpen = g.targets.totalWeight > 0 && rows.every((r) => r.weight === 0) && rows.some((r) => r.healthDown);
    const out = new Map<string, number>();
    for (const r of rows) {
      const weight = failOpen ? r.t.weight : r.weight;
      const over = failOpen || r.live.length === 0 ? r.addrs : r.live;
      over.forEach((a, i) => {
        const w = Math.floor(weight / over.length) + (i < weight % over.length ? 1 : 0);
        const key = `${a}:${r.t.port}`;
        if (w > 0) out.set(key, (out.get(key) ?? 0) + w);
      });
    }
    return out;
  }

  /** `n` source ports never used before from `source` over `proto`. */
  ports(source: string, proto: 'tcp' | 'udp', n: number): number[] {
    const key = `${source}/${proto}`;
    const first = this.nextPort.get(key) ?? PORT_BASE;
    if (first + n > PORT_END) throw new Error(`${this.file}: source ports of ${key} used up (${PORT_END - first} left, ${n} asked for)`);
    this.nextPort.set(key, first + n);
    return Array.from({ length: n }, (_, i) => first + i);
  }

  /** Connections made so far. */
  get connections(): number {
    return [...this.nextPort.values()].reduce((a, p) => a + p - PORT_BASE, 0);
  }

  /**
   * `n` new connections (or UDP flows) from a client of group `g` on `iface` to the proxy's
   * listener: from the client address the group's routes select, to the VIP or the LB's address.
   */
  async connect(g: Group, iface: string, n: number, opts: { proto?: 'tcp' | 'udp'; servername?: string; timeoutMs?: number } = {}):
  Promise<{ answers: Answer[]; source: string; destination: string }> {
    const p = g.proxy;
    const source = this.t.source(p.name, iface, g.name === 'default' || g.name.startsWith('sni:') ? null : g.name);
    if (!source) throw new Error(`no client source for ${groupLabel(g)} on ${iface}`);
    const destination = this.t.destination(p.listen.address, iface);
    const proto = opts.proto ?? this.protocols(p)[0]!;
    const answers = await runBatch(this.t, this.t.iface(iface).ns, {
      host: destination, port: p.listen.port, proto, localAddress: source, ports: this.ports(source, proto, n),
      tls: proto === 'tcp' && this.speaksTls(p), ...(opts.servername ? { servername: opts.servername } : {}),
    }, { timeoutMs: opts.timeoutMs ?? 3000, totalMs: 60_000 });
    // The data plane's per-backend counters see the fast path's flows only, not the acceptor's.
    if (p.dataPath !== 'splice') for (const a of answers) if (a.backend) this.tally.set(a.backend, (this.tally.get(a.backend) ?? 0) + 1);
    return { answers, source, destination };
  }

  /** `lb ARGS --instance I` in the LB namespace. */
  lb(args: readonly string[], timeoutMs = 60_000): Promise<CliResult> {
    return runCliAsync([...args, '--instance', this.instance], { ns: this.t.lbNs, timeoutMs });
  }

  /**
   * The kernel's active generation, read at most every LIVE_TTL_MS: the tests poll it from several
   * groups at once, and each read walks every map.
   */
  liveState(): LogicalState | undefined {
    if (this.live && Date.now() - this.live.at < LIVE_TTL_MS) return this.live.state;
    if (!instanceComplete(this.instance)) return undefined;
    // Read inside the LB namespace: the listeners are keyed by interface name, resolved from the
    // ifindex there. Two equal reads in a row: an apply flipping generations between two map reads
    // is read again.
    const read = (): ReturnType<typeof readLive> => withNetns(this.t.lbNs, () => readLive(this.instance));
    let live = read();
    for (let i = 0; i < 10; i++) {
      const again = read();
      if (again.digest === live.digest) break;
      live = again;
    }
    this.live = { at: Date.now(), state: live.state };
    return live.state;
  }

  /** Group `g`'s backend weights in the kernel's active generation ("ADDR:PORT" -> weight). */
  liveWeights(g: Group): Map<string, number> {
    const listener = this.liveState()?.listeners.find((l) => l.proxy === g.proxy.name);
    const targets = g.name === 'default' ? listener?.defaultTargets : listener?.sourceRoutes.find((r) => r.prefix === g.name)?.targets;
    return new Map((targets ?? []).map((t) => [`${t.addr}:${t.port}`, t.weight]));
  }

  async runtime(): Promise<RuntimeStatus> {
    const rt = (await lbStatus(this.instance)).status?.runtime;
    if (!rt) throw new Error(`${this.file}: the daemon reports no runtime section`);
    return rt;
  }

  async stopBackend(ip: string): Promise<void> {
    await this.servers.get(ip)?.proc?.stop(3000);
  }

  async startBackend(ip: string): Promise<void> {
    const s = this.servers.get(ip);
    if (!s) throw new Error(`no server for ${ip}`);
    if (!s.proc?.running) s.proc = await startServer(this.t, s.ns, s.listen, this.tls);
  }

  async setUp(): Promise<void> {
    await acquire();
    this.acquired = true;
    // A setup that timed out while queued was torn down already: build nothing.
    if (this.closed) { this.acquired = false; release(); throw new Error(`${this.file}: torn down before its turn came`); }
    this.startedAt = Date.now();
    // Every DNS name gets one spare address (serving from the start) for the re-resolution test.
    const dnsSpares = Object.fromEntries(this.hosts.map((h) => [h, 1]));
    this.topo = await createSeedTopology(this.config, { dnsRecords: this.ex.dnsRecords ?? {}, dnsSpares });
    const t = this.topo;
    for (const b of t.backends) this.servers.set(b.ip, { ns: b.ns, listen: b.ports.map((port) => ({ addr: b.ip, port })) });
    // Loopback targets: servers on 127.x inside the LB namespace, where lb delivers them.
    const lo = t.plan.loopback.flatMap((l) => l.ports.map((port) => ({ addr: l.ip, port })));
    if (lo.length > 0) this.servers.set('loopback', { ns: t.lbNs, listen: lo });
    await Promise.all([...this.servers.keys()].map((k) => this.startBackend(k)));

    if (this.mode === 'apply') {
      // What lb says it will not act on: the warnings under the plan `lb apply` prints.
      this.applied = await this.lb(['apply', '--config', this.configPath, '--auto-approve']);
      this.planWarnings = warningsOf(this.applied.stdout);
      return;
    }
    // The same from `lb plan` (no resolver: host names stay unresolved there; the daemon resolves them).
    const plan = await this.lb(['plan', '--config', this.configPath]);
    if (plan.code !== 0) throw new Error(`lb plan failed (exit ${plan.code}): ${plan.stderr}${plan.stdout}`);
    this.planWarnings = warningsOf(plan.stdout);

    const args = ['--config', this.configPath, '--poll', '1h', '--drift-interval', '1h', '--retry-interval', '200ms',
      '--ops-listen', '127.0.0.1:0', '--work-dir', join(this.dir, 'daemon'), '--log-level', 'info'];
    if (this.hosts.length > 0) {
      this.answers = Object.fromEntries(t.plan.hosts.map((h) => [h.host, [...h.records]]));
      this.dns = new DnsServer(join(this.dir, 'dns.json'));
      await this.dns.start(t, this.answers);
      // node:dns (c-ares) in the daemon asks this server only: not /etc/resolv.conf, nothing outside.
      args.push('--dns-server', `127.0.0.1:${this.dns.port}`);
    }
    this.daemon = new DaemonProcess(t.lbNs, this.instance, args);
    await this.daemon.started();
    await waitForStatus(this.instance, (s) => s.status?.lastAppliedRevision !== null && s.status?.lastAppliedRevision !== undefined,
      `${this.file}: the daemon applied the file`, 30_000);
    if (this.config.proxies.some((p) => p.dataPath === 'splice')) {
      await this.daemon.waitForLog((l) => l.msg === 'SNI acceptor serving', `${this.file}: the SNI acceptor serving`, 30_000);
    }
    await this.waitResolved();
  }

  /** Every DNS name resolved to its current answer, and every group's live backends as expected. */
  async waitResolved(timeoutMs = 20_000): Promise<void> {
    if (this.hosts.length === 0) return;
    await waitUntil(async () => {
      const rt = await this.runtime();
      const wrong = this.hosts.flatMap((h) => {
        const d = rt.dns.find((x) => x.host === h);
        const ok = d?.status === 'ok' && [...d.addresses].sort(byAddress).join() === [...this.answers[h]!].sort(byAddress).join();
        return ok ? [] : [`${h}: ${JSON.stringify(d)}, expected ${this.answers[h]!.join(', ')}`];
      });
      // The backends, not their weights: a backend back from a failed health check may still be
      // recovering (25/50/75 %).
      for (const g of this.groups()) {
        const live = this.liveWeights(g);
        const want = this.expectedWeights(g);
        if (!sameKeys(live, want)) wrong.push(`${groupLabel(g)}: live ${JSON.stringify(Object.fromEntries(live))}, expected ${JSON.stringify(Object.fromEntries(want))}`);
      }
      // Thrown while waiting: the last one is the timeout's cause.
      if (wrong.length > 0) throw new Error(wrong.join('\n'));
      return true;
    }, { timeoutMs, intervalMs: POLL_MS, what: `${this.file}: DNS answers resolved and live` });
  }

  async tearDown(): Promise<void> {
    this.closed = true;
    try {
      if (this.daemon?.proc.running) await this.daemon.stop(5000);
      // `lb down` in-process (the SNI acceptor's socket holder and pair keeper ended, then
      // DataPlane.down, what the command runs), in the LB namespace where the interfaces are:
      // detached there, every pin removed. Spares a CLI process per file.
      endHolder(this.instance);
      endPairKeeper(this.instance);
      if (this.topo && existsSync(instanceDir(this.instance))) withNetns(this.topo.lbNs, () => DataPlane.down(this.instance));
      await this.topo?.destroy();
    } finally {
      this.daemon?.proc.killSync();
      endHolder(this.instance);
      endPairKeeper(this.instance);
      this.topo?.destroySync();
      if (existsSync(instanceDir(this.instance))) DataPlane.down(this.instance);
      rmSync(runDir(this.instance), { recursive: true, force: true });
      rmSync(this.dir, { recursive: true, force: true });
      if (this.acquired) {
        release();
        console.log(`${this.file}: sandbox lived ${((Date.now() - this.startedAt) / 1000).toFixed(1)} s (${this.mode}, `
          + `${this.topo?.namespaceNames.length ?? 0} namespaces, ${this.connections} client connections)`);
      }
      this.acquired = false;
    }
  }
}

/** The warning lines of a plan's text output, as "[LINE:COL: ]POINTER: MESSAGE" (file name cut off). */
export function warningsOf(text: string): string[] {
  return text.split('\n').flatMap((l) => {
    const m = /^\S.*?(?::(\d+):(\d+))?: warning: (.*)$/.exec(l);
    return m ? [`${m[1] ? `${m[1]}:${m[2]}: ` : ''}${m[3]}`] : [];
  });
}

export function sameMap(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  const norm = (m: ReadonlyMap<string, number>): string => [...m].filter(([, w]) => w > 0).sort(([x], [y]) => x.localeCompare(y)).join(';');
  return norm(a) === norm(b);
}

export function sameKeys(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  const keys = (m: ReadonlyMap<string, number>): string => [...m].filter(([, w]) => w > 0).map(([k]) => k).sort().join(';');
  return keys(a) === keys(b);
}

export function counts(answers: readonly Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) if (a.backend) out[a.backend] = (out[a.backend] ?? 0) + 1;
  return out;
}

/**
 * What is wrong with a batch's answers: failures, answers from backends outside `allowed`, a
 * backend that saw another client address than the one sent from, a reply from another address
 * than the one connected to. [] when all is well.
 */
export function answerProblems(answers: readonly Answer[], allowed: ReadonlySet<string>, source: string, destination: string, port: number, viaAcceptor = false): string[] {
  const problems: string[] = [];
  for (const a of answers) {
    if (a.error) problems.push(`source port ${a.localPort}: ${a.error}`);
    else if (!allowed.has(a.backend!)) problems.push(`source port ${a.localPort}: answered by ${a.backend}, not one of ${[...allowed].join(', ')}`);
    // The acceptor is a proxy: its backend sees the balancer's address (PROXY v2 carries the client's).
    else if (viaAcceptor && a.seenClient?.startsWith(`${source}:`)) problems.push(`source port ${a.localPort}: ${a.backend} saw the client itself, not the acceptor`);
    else if (!viaAcceptor && a.seenClient !== `${source}:${a.localPort}`) problems.push(`source port ${a.localPort}: ${a.backend} saw client ${a.seenClient}, not ${source}:${a.localPort}`);
    else if (a.peer !== `${destination}:${port}`) problems.push(`source port ${a.localPort}: reply from ${a.peer}, not ${destination}:${port}`);
  }
  return problems.slice(0, 10);
}

/**
 * Shares of the answers against the weights: backends whose share is off by more than `sigmas`
 * standard deviations of a binomial share over that many connections (weight w of W over n
 * connections: sigmas x sqrt(p (1 - p) / n), p = w / W), and answers from backends of weight 0.
 */
export function shareProblems(c: Readonly<Record<string, number>>, weights: ReadonlyMap<string, number>, sigmas: number): string[] {
  const n = Object.values(c).reduce((a, b) => a + b, 0);
  const total = [...weights.values()].reduce((a, b) => a + b, 0);
  const problems: string[] = [];
  for (const [b, w] of weights) {
    const share = (c[b] ?? 0) / n;
    const p = w / total;
    const tolerance = sigmas * Math.sqrt(p * (1 - p) / n);
    if (Math.abs(share - p) > tolerance) {
      problems.push(`${b}: ${(share * 100).toFixed(1)} % of ${n}, weight ${w}/${total} = ${(p * 100).toFixed(1)} % (+-${(tolerance * 100).toFixed(1)} points)`);
    }
  }
  for (const b of Object.keys(c)) if (!weights.has(b)) problems.push(`${b}: ${c[b]} answers, weight 0`);
  return problems;
}
