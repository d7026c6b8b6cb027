// A network-namespace topology built from a loaded config, so that the config runs unchanged: an
// LB namespace whose interfaces carry the config's names (eth0, eth1, ...), a client namespace
// behind each of them, a namespace per backend address with a host route to it, and the client
// source addresses the config's source routes need. What goes where, and why, is in
// seed-topology-plan.ts (pure); this file creates it and tears it down.
//
// Like topology.ts: nothing is created in the root namespace (veth pairs are made with both ends
// directly in their namespaces), the namespaces have no link to the outside world, IPv6 is off,
// names are `<prefix>-lb`, `<prefix>-cN`, `<prefix>-bK` (so destroyStale() of the prefix family
// removes what a crashed run left), and every process started through the topology dies with it.
// No server runs by default: the caller starts its own (ports and addresses are in `plan`).

import { deleteSandbox, deleteSandboxSync, forget, removeOnExit } from './namespaces.js';
import { ManagedProcess, SandboxError, run, type RunResult } from './process.js';
import { choosePrefix, execIn, listNamespaces, nsenterArgs, type ExecOptions } from './topology.js';
import {
  planSeedTopology, type PlannedBackend, type PlannedInterface, type SeedConfig, type SeedPlan, type SeedPlanOptions,
} from './seed-topology-plan.js';

export * from './seed-topology-plan.js';

export interface SeedTopologyOptions extends SeedPlanOptions {
  /** Namespace name prefix. Default: `lbt<pid><3 letters>` (makeRunPrefix(), one no namespace uses). */
  prefix?: string;
  /** Tear down on SIGINT/SIGTERM/SIGHUP and process exit. Default true. */
  cleanupOnSignal?: boolean;
}

const CMD_TIMEOUT_MS = 15_000;
const UP_TIMEOUT_MS = 10_000;
const PARALLEL = 8;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over `items`, at most `limit` at once. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export type SeedBackend = PlannedBackend & { ns: string };
export type SeedInterface = PlannedInterface & { ns: string };

/** A built seed topology. Create it with createSeedTopology(); always destroy() it. */
export class SeedTopology {
  readonly lbNs: string;
  readonly namespaceNames: string[] = [];
  private readonly processes = new Set<ManagedProcess>();
  private destroying: Promise<void> | undefined;
  private destroyed = false;

  /** @internal use createSeedTopology() */
  constructor(readonly prefix: string, readonly plan: SeedPlan) {
    this.lbNs = `${prefix}-lb`;
  }

  get interfaces(): SeedInterface[] { return this.plan.interfaces.map((i) => ({ ...i, ns: `${this.prefix}-${i.client}` })); }
  get backends(): SeedBackend[] { return this.plan.backends.map((b) => ({ ...b, ns: `${this.prefix}-${b.name}` })); }

  /** The listen interface `name` and its client namespace. */
  iface(name: string): SeedInterface {
    const i = this.interfaces.find((x) => x.name === name);
    if (!i) throw new SandboxError(`${name} is not a listen interface of topology ${this.prefix}`);
    return i;
  }

  /** The backend serving address `ip`. */
  backend(ip: string): SeedBackend {
    const b = this.backends.find((x) => x.ip === ip);
    if (!b) throw new SandboxError(`${ip} is not a backend address of topology ${this.prefix}`);
    return b;
  }

  /** Where a client on `iface` connects to reach a listener: its VIP, or the LB's address on that interface. */
  destination(listenAddress: string | null, iface: string): string {
    return listenAddress ?? this.iface(iface).lbAddress;
  }

  /** A client source address for `proxy` on `iface`: inside route `prefix`, or (null) outside every route. */
  source(proxy: string, iface: string, prefix: string | null): string | undefined {
    return this.plan.sources.find((s) => s.proxy === proxy && s.iface === iface && s.prefix === prefix)?.address;
  }

  /** Runs a command to completion in one of the topology's namespaces (nsenter: /sys/fs/bpf stays visible). */
  exec(ns: string, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
    this.assertUsable();
    return execIn(this.own(ns), argv, { via: 'nsenter', timeoutMs: CMD_TIMEOUT_MS, ...opts });
  }

  /** Starts a long-running process in one of the namespaces; destroy() ends it. */
  spawnIn(ns: string, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; label?: string } = {}): ManagedProcess {
    this.assertUsable();
    const p = new ManagedProcess([...nsenterArgs(this.own(ns)), ...argv], {
      ...(opts.env ? { env: opts.env } : {}), label: opts.label ?? `${argv.join(' ')} in ${ns}`,
    });
    this.processes.add(p);
    void p.exited.then(() => this.processes.delete(p));
    return p;
  }

  private own(ns: string): string {
    if (!this.namespaceNames.includes(ns)) throw new SandboxError(`${ns} is not a namespace of topology ${this.prefix}`);
    return ns;
  }

  private assertUsable(): void {
    if (this.destroying || this.destroyed) throw new SandboxError(`topology ${this.prefix} is destroyed`);
  }

  /** Ends every process of the topology and deletes its namespaces. Idempotent; rejects if a namespace stays. */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    try {
      await deleteSandbox(this.prefix, this.processes, this.namespaceNames, PARALLEL);
    } finally {
      this.destroyed = true;
      forget(this);
    }
  }


  /** SIGKILL to every process, then `ip netns del` of every namespace, synchronously (exit and signal handlers). */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    forget(this);
    deleteSandboxSync(this.processes, this.namespaceNames);
  }
}

/**
 * Builds the topology that serves `config` unchanged (seed-topology-plan.ts). On any failure,
 * everything created so far is removed before the error propagates.
 */
export async function createSeedTopology(config: SeedConfig, opts: SeedTopologyOptions = {}): Promise<SeedTopology> {
  if (process.getuid?.() !== 0) throw new SandboxError('createSeedTopology needs root (network namespaces)');
  const plan = planSeedTopology(config, opts);
  const existing = await listNamespaces();
  const prefix = choosePrefix(opts.prefix, (p) => existing.some((n) => n.startsWith(`${p}-`)));

  const topo = new SeedTopology(prefix, plan);
  if (opts.cleanupOnSignal ?? true) {
    removeOnExit(topo);
  }
  const sh = (argv: string[]): Promise<RunResult> => run(argv, { timeoutMs: CMD_TIMEOUT_MS });
  const lb = topo.lbNs;
  try {
    const all: Array<{ ns: string; role: 'lb' | 'host' }> = [
      { ns: lb, role: 'lb' },
      ...topo.interfaces.map((i) => ({ ns: i.ns, role: 'host' as const })),
      ...topo.backends.map((b) => ({ ns: b.ns, role: 'host' as const })),
    ];
    for (const { ns } of all) {
      await sh(['ip', 'netns', 'add', ns]);
      topo.namespaceNames.push(ns);
    }
    await inParallel(all, PARALLEL, async ({ ns, role }) => {
      // Before any link exists, so every interface inherits the defaults: no IPv6 (no NDP/MLD
      // noise), and in the LB namespace forwarding on and rp_filter off (client sources from
      // routed prefixes arrive on the client links).
      const sysctls = ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
      if (role === 'lb') sysctls.push('net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0');
      await execIn(ns, ['sysctl', '-q', '-w', ...sysctls], { via: 'nsenter', timeoutMs: CMD_TIMEOUT_MS });
      await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    });

    await inParallel(topo.interfaces, PARALLEL, async (i) => {
      await sh(['ip', 'link', 'add', i.name, 'netns', lb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', i.ns]);
      await sh(['ip', '-n', lb, 'addr', 'add', `${i.lbAddress}/${i.prefixLen}`, 'dev', i.name]);
      await sh(['ip', '-n', i.ns, 'addr', 'add', `${i.clientAddress}/${i.prefixLen}`, 'dev', 'eth0']);
      for (const a of i.extraAddresses) await sh(['ip', '-n', i.ns, 'addr', 'add', `${a}/32`, 'dev', 'eth0']);
      await sh(['ip', '-n', lb, 'link', 'set', i.name, 'up']);
      await sh(['ip', '-n', i.ns, 'link', 'set', 'eth0', 'up']);
      await sh(['ip', '-n', i.ns, 'route', 'add', 'default', 'via', i.lbAddress, 'dev', 'eth0']);
      // Replies to a routed source address go back through the link it came from.
      for (const a of i.extraAddresses) await sh(['ip', '-n', lb, 'route', 'add', `${a}/32`, 'via', i.clientAddress, 'dev', i.name]);
    });

    await inParallel(topo.backends, PARALLEL, async (b) => {
      await sh(['ip', 'link', 'add', b.lbIface, 'netns', lb, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.ns]);
      await sh(['ip', '-n', lb, 'addr', 'add', `${b.gateway}/30`, 'dev', b.lbIface]);
      await sh(['ip', '-n', b.ns, 'addr', 'add', `${b.linkAddress}/30`, 'dev', 'eth0']);
      await sh(['ip', '-n', b.ns, 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
      await sh(['ip', '-n', lb, 'link', 'set', b.lbIface, 'up']);
      await sh(['ip', '-n', b.ns, 'link', 'set', 'eth0', 'up']);
      await sh(['ip', '-n', b.ns, 'route', 'add', 'default', 'via', b.gateway, 'dev', 'eth0']);
      await sh(['ip', '-n', lb, 'route', 'add', `${b.ip}/32`, 'via', b.linkAddress, 'dev', b.lbIface]);
    });

    // A veth end has carrier once its peer is up: the LB namespace's view covers every link.
    const want = [...topo.interfaces.map((i) => i.name), ...topo.backends.map((b) => b.lbIface)];
    const deadline = Date.now() + UP_TIMEOUT_MS;
    for (;;) {
      const rows = JSON.parse((await sh(['ip', '-n', lb, '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; flags?: string[] }>;
      const down = want.filter((n) => !rows.find((r) => r.ifname === n)?.flags?.includes('LOWER_UP'));
      if (down.length === 0) break;
      if (Date.now() > deadline) throw new SandboxError(`links not up after ${UP_TIMEOUT_MS} ms in ${lb}: ${down.join(', ')}`);
      await sleep(50);
    }
    return topo;
  } catch (err) {
    await topo.destroy().catch(() => { topo.destroySync(); });
    throw err;
  }
}
