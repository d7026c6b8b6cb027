// DNS-backed targets (`host` instead of `ip`): A-record resolution with periodic refresh.
//
// Pure part: dnsHosts (which hosts, how often), applyDnsAnswer (the state machine), refreshDelay
// (jitter). Shell part: DnsResolver (timers, node:dns), systemResolver.
//
// Decisions:
// - Refresh every dns-refresh-seconds (the smallest of the targets that use the host) x [0.9, 1.1)
//   so hosts configured alike do not all query at once; the first resolution of a host runs at once.
// - Last known good: a failed resolution (error, timeout, NXDOMAIN, no A records) keeps the
//   previous addresses and marks the host `stale`; a host never resolved is `never-resolved` with
//   the error, and contributes no backend (compile warns "dns-unresolved"). NXDOMAIN is treated
//   like any failure: a DNS outage or a botched zone change must not empty a pool; removing the
//   target from the config is how a host is retired.
// - After a failure the next try comes sooner: min(refresh, FAILURE_RETRY_MS), jittered alike.
// - Addresses are kept distinct and in numeric order, so an answer in another order is no change.

import { Resolver } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import type { LbConfig } from '../core/config/types.js';
import { configGroups } from './keys.js';

export type DnsStatus = 'ok' | 'stale' | 'never-resolved';

/** Retry delay after a failed resolution (capped by the host's refresh interval). */
export const FAILURE_RETRY_MS = 5_000;

export interface DnsHostSpec {
  /** Lower case. */
  host: string;
  refreshSeconds: number;
  /** Proxies and target ids that use the host (for status and metrics labels), sorted. */
  users: { proxy: string; targetId: string }[];
}

export interface DnsHostState {
  host: string;
  /** Last known good addresses, numeric order; [] when never resolved. */
  addresses: string[];
  status: DnsStatus;
  lastError: string | null;
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  consecutiveFailures: number;
}

export type DnsAnswer = { ok: true; addresses: readonly string[] } | { ok: false; error: string };

/** The hosts a config resolves, sorted, each with the smallest refresh interval among its targets. */
export function dnsHosts(config: LbConfig): DnsHostSpec[] {
  const hosts = new Map<string, DnsHostSpec>();
  for (const { proxy, group } of configGroups(config)) {
    for (const t of group.targets) {
      if (t.kind !== 'host') continue;
      const spec = hosts.get(t.host) ?? { host: t.host, refreshSeconds: t.dnsRefreshSeconds, users: [] };
      spec.refreshSeconds = Math.min(spec.refreshSeconds, t.dnsRefreshSeconds);
      if (!spec.users.some((u) => u.proxy === proxy.name && u.targetId === t.id)) spec.users.push({ proxy: proxy.name, targetId: t.id });
      hosts.set(t.host, spec);
    }
  }
  return [...hosts.values()].sort((a, b) => (a.host < b.host ? -1 : 1));
}

export function initialDnsState(host: string): DnsHostState {
  return { host, addresses: [], status: 'never-resolved', lastError: null, lastSuccessAt: null, lastAttemptAt: null, consecutiveFailures: 0 };
}

/** The next state after one resolution attempt at `now`. An answer with no IPv4 address is a failure. */
export function applyDnsAnswer(state: DnsHostState, answer: DnsAnswer, now: number): DnsHostState {
  const addresses = answer.ok ? normalizeAddresses(answer.addresses) : [];
  if (answer.ok && addresses.length > 0) {
    return { ...state, addresses, status: 'ok', lastError: null, lastSuccessAt: now, lastAttemptAt: now, consecutiveFailures: 0 };
  }
  const error = answer.ok ? 'no A records' : answer.error;
  return {
    ...state, status: state.lastSuccessAt === null ? 'never-resolved' : 'stale', lastError: error,
    lastAttemptAt: now, consecutiveFailures: state.consecutiveFailures + 1,
  };
}

/** Distinct valid IPv4 addresses in numeric order. */
export function normalizeAddresses(addresses: readonly string[]): string[] {
  const valid = [...new Set(addresses.filter((a) => isIPv4(a)))];
  const num = (a: string): number => a.split('.').reduce((n, p) => n * 256 + Number(p), 0);
  return valid.sort((a, b) => num(a) - num(b));
}

/** Delay to the next resolution: the refresh interval (or the failure retry) x [0.9, 1.1). */
export function refreshDelay(refreshSeconds: number, lastOk: boolean, random: number): number {
  const base = lastOk ? refreshSeconds * 1000 : Math.min(refreshSeconds * 1000, FAILURE_RETRY_MS);
  return base * (0.9 + 0.2 * random);
}

export type Resolve4 = (host: string) => Promise<string[]>;

export interface SystemResolverOptions {
  /** "ip" or "ip:port" entries; default: the system's resolv.conf servers. */
  servers?: string[];
  /** Per-try timeout, ms (default 2000). */
  timeoutMs?: number;
  /** Tries per server (default 2). */
  tries?: number;
}

/** A resolve4 over node:dns (c-ares, the servers given or the system's). */
export function systemResolver(options: SystemResolverOptions = {}): Resolve4 {
  const resolver = new Resolver({ timeout: options.timeoutMs ?? 2_000, tries: options.tries ?? 2 });
  if (options.servers) resolver.setServers(options.servers);
  return (host) => resolver.resolve4(host);
}

export interface DnsChangeEvent {
  host: string;
  previous: DnsHostState;
  state: DnsHostState;
  /** The address set changed: recompile, and update the health-check specs. */
  addressesChanged: boolean;
}

export interface DnsResolverOptions {
  resolve4?: Resolve4;
  random?: () => number;
  now?: () => number;
}

interface HostEntry {
  spec: DnsHostSpec;
  state: DnsHostState;
  timer: NodeJS.Timeout | null;
  inflight: Promise<void> | null;
  removed: boolean;
}

/**
 * Keeps the hosts of a config resolved. 'change' fires when a host's addresses or status change.
 * answers() is the `dns` input of buildRuntimeInputs; snapshot() feeds status and metrics.
 */
export class DnsResolver extends EventEmitter<{ change: [DnsChangeEvent] }> {
  private readonly entries = new Map<string, HostEntry>();
  private readonly resolve4: Resolve4;
  private readonly random: () => number;
  private readonly now: () => number;
  private running = false;

  constructor(options: DnsResolverOptions = {}) {
    super();
    this.resolve4 = options.resolve4 ?? systemResolver();
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  /** Replaces the hosts (config reload): kept hosts keep their answers and schedule, new ones resolve at once. */
  setHosts(hosts: readonly DnsHostSpec[]): void {
    const keep = new Set(hosts.map((h) => h.host));
    for (const [host, e] of this.entries) {
      if (keep.has(host)) continue;
      e.removed = true;
      if (e.timer) clearTimeout(e.timer);
      this.entries.delete(host);
    }
    for (const spec of hosts) {
      const e = this.entries.get(spec.host);
      if (e) {
        const faster = spec.refreshSeconds < e.spec.refreshSeconds;
        e.spec = spec;
        if (faster && this.running) this.schedule(e, refreshDelay(spec.refreshSeconds, e.state.status === 'ok', this.random()));
        continue;
      }
      const entry: HostEntry = { spec, state: initialDnsState(spec.host), timer: null, inflight: null, removed: false };
      this.entries.set(spec.host, entry);
      if (this.running) this.schedule(entry, 0);
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const e of this.entries.values()) this.schedule(e, e.state.lastAttemptAt === null ? 0 : refreshDelay(e.spec.refreshSeconds, e.state.status === 'ok', this.random()));
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
    }
    await Promise.all([...this.entries.values()].map((e) => e.inflight));
  }

  /** Resolves now (all hosts, or one) and waits; the schedule continues from here. */
  async refresh(host?: string): Promise<void> {
    const list = host === undefined ? [...this.entries.values()] : [this.entries.get(host)].filter((e): e is HostEntry => !!e);
    await Promise.all(list.map((e) => this.run(e)));
  }

  /** The last known good addresses of a host; undefined when never resolved (or unknown). */
  resolve(host: string): string[] | undefined {
    const e = this.entries.get(host);
    return e && e.state.addresses.length > 0 ? [...e.state.addresses] : undefined;
  }

  /** host -> last known good addresses, for the hosts that have some. */
  answers(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [host, e] of this.entries) if (e.state.addresses.length > 0) out.set(host, [...e.state.addresses]);
    return out;
  }

  snapshot(): Map<string, DnsHostState> {
    return new Map([...this.entries].map(([h, e]) => [h, e.state]));
  }

  hosts(): DnsHostSpec[] {
    return [...this.entries.values()].map((e) => e.spec);
  }

  private schedule(e: HostEntry, delayMs: number): void {
    if (!this.running || e.removed) return;
    if (e.timer) clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      e.timer = null;
      void this.run(e);
    }, Math.max(0, delayMs));
    e.timer.unref();
  }

  private run(e: HostEntry): Promise<void> {
    if (e.inflight) return e.inflight;
    e.inflight = this.resolve4(e.spec.host)
      .then((addresses): DnsAnswer => ({ ok: true, addresses }), (err: unknown): DnsAnswer => ({ ok: false, error: describeDnsError(err) }))
      .then((answer) => {
        e.inflight = null;
        if (e.removed) return;
        const previous = e.state;
        const state = applyDnsAnswer(previous, answer, this.now());
        e.state = state;
        const addressesChanged = previous.addresses.join() !== state.addresses.join();
        if (addressesChanged || previous.status !== state.status || previous.lastError !== state.lastError) {
          this.emit('change', { host: e.spec.host, previous, state, addressesChanged });
        }
        this.schedule(e, refreshDelay(e.spec.refreshSeconds, state.status === 'ok', this.random()));
      });
    return e.inflight;
  }
}

function describeDnsError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; message?: unknown };
    if (typeof e.code === 'string') return e.code;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}
