// Config x RuntimeInputs -> the desired LogicalState. Pure: no I/O, no clock, no randomness; the
// runtime (health, drain, breaker, DNS) reaches in only through RuntimeInputs.
//
// Decisions recorded here:
// - One listener per interface x protocol ('both' -> tcp and udp); vip = listen.address or 0.0.0.0.
// - Session persistence is a per-listener flag in the data plane (LB_LF_PERSIST), so a listener
//   takes the proxy's setting; a source route whose own setting differs cannot be honoured and
//   gets a warning ("route-persistence-ignored").
// - Proxies on the splice path (SNI routes, PROXY protocol; docs/design.md §6) get no TCP listener
//   here: the daemon's acceptor serves them (src/core/sni/splice-table.ts, docs/sni.md), and the
//   fast path passes their packets to the stack (the config makes them TCP only). Their
//   interfaces are still attached.
// - A host target contributes one backend per resolved address, sharing the target's weight:
//   floor(weight / N) each, and the remainder 1 by 1 to the lowest addresses (numeric order).
//   Unresolved: no backend, a warning. Two entries of one group that land on the same addr:port
//   (an ip target and a host resolving to it) merge into one backend with the summed weight.
// - LB_MAX_TARGETS is enforced per group after DNS expansion (error).

import { isLoopback } from '../config/ipv4.js';
import { sortDiagnostics, type Diagnostic } from '../config/diagnostics.js';
import type { LbConfig, Proxy, SourceRef, Target, TargetGroup } from '../config/types.js';
import { LB_MAX_TARGETS, ipv4ToU32 } from '../abi.js';
import { servedByAcceptor } from '../sni/served.js';
import { listenerKey, type InterfacePath, type L4Proto, type LogicalListener, type LogicalSettings, type LogicalState, type LogicalTarget } from '../state.js';

/** The timeout after either side sent FIN; the config has no key for it. */
export const TCP_FIN_TIMEOUT_SEC = 10;

/** The largest weight a runtime input may set (the config's own range). */
export const MAX_WEIGHT = 1000;

/** The group a target belongs to: 'default' (the default target) or a source route's canonical prefix. */
export type GroupName = 'default' | (string & {});

/**
 * What the runtime knows that the config does not. Every hook is optional; without one the
 * config's values apply. The compile step calls the hooks synchronously and must see a
 * consistent snapshot, so the runtime hands in its current answers, never a live query.
 */
export interface RuntimeInputs {
  /**
   * The effective weight of a configured target (health with gradual recovery, drain -> 0,
   * open circuit breaker -> 0, least-connections adjustments), or undefined for the configured
   * weight. Called once per target of each compiled group (default target and source routes;
   * `group` is 'default' or the route's prefix), before DNS expansion: a host target's
   * effective weight is then shared among its addresses. Must be an integer 0..1000; anything
   * else is ignored with a warning.
   */
  effectiveWeight?(proxy: string, group: GroupName, target: Target): number | undefined;
  /** The current IPv4 addresses of a DNS host (lower case), or undefined when not resolved (yet). */
  resolve?(host: string): string[] | undefined;
}

export interface CompileResult {
  state: LogicalState;
  /** Warnings and errors (stage 'compile', with `code`), sorted by position. Any error: do not apply. */
  diagnostics: Diagnostic[];
}

export function compileConfig(config: LbConfig, inputs: RuntimeInputs = {}): CompileResult {
  const diagnostics: Diagnostic[] = [];
  const byKey = new Map<string, { listener: LogicalListener; proxy: Proxy }>();
  const interfaces = new Set<string>();
  const paths: Record<string, InterfacePath> = {};

  for (const proxy of config.proxies) {
    const defaultTargets = compileGroup(proxy, 'default', proxy.defaultTarget, inputs, diagnostics);
    const sourceRoutes = [...proxy.sourceRoutes]
      .sort((a, b) => compareStrings(a.prefix, b.prefix))
      .map((route) => {
        // The acceptor honours a route's own setting; only a fast-path listener cannot.
        if (route.sessionPersistence !== proxy.sessionPersistence && !servedByAcceptor(proxy)) {
          diagnostics.push(diagnostic('warning', 'route-persistence-ignored', route.source,
            `source route ${route.prefix} of proxy "${proxy.name}" sets session-persistence ${route.sessionPersistence}, ` +
            `but persistence is per listener in the data plane: the proxy's setting (${proxy.sessionPersistence}) applies`));
        }
        return { prefix: route.prefix, targets: compileGroup(proxy, route.prefix, route.targets, inputs, diagnostics) };
      });
    const vip = proxy.listen.address ?? '0.0.0.0';
    const protos: L4Proto[] = servedByAcceptor(proxy) ? [] : proxy.listen.protocol === 'both' ? ['tcp', 'udp'] : [proxy.listen.protocol];
    for (const iface of proxy.listen.interfaces) {
      interfaces.add(iface);
      paths[iface] ??= { path: proxy.listen.mode }; // the semantic checks make proxies on one interface agree
      if (hasLoopbackTarget(defaultTargets, sourceRoutes)) paths[iface].routeLocalnet = true;
      for (const proto of protos) {
        const listener: LogicalListener = {
          iface, vip, port: proxy.listen.port, proto, proxy: proxy.name, persist: proxy.sessionPersistence,
          defaultTargets: defaultTargets.map((t) => ({ ...t })),
          sourceRoutes: sourceRoutes.map((r) => ({ prefix: r.prefix, targets: r.targets.map((t) => ({ ...t })) })),
        };
        const key = listenerKey(listener);
        const other = byKey.get(key);
        if (other) {
          // The semantic checks reject this; kept so compile never emits two entries for one key.
          diagnostics.push(diagnostic('error', 'listener-conflict', proxy.listen.source,
            `proxy "${proxy.name}" and proxy "${other.proxy.name}" both listen on ${key}`));
          continue;
        }
        byKey.set(key, { listener, proxy });
      }
    }
  }

  const listeners = [...byKey.entries()].sort(([a], [b]) => compareStrings(a, b)).map(([, v]) => v.listener);
  return {
    state: {
      interfaces: [...interfaces].sort(compareStrings),
      paths,
      settings: {
        tcpIdleSec: config.settings.connectionTimeoutSec,
        udpIdleSec: config.settings.udpTimeoutSec,
        tcpFinSec: TCP_FIN_TIMEOUT_SEC,
        ...rateLimitSettings(config),
      },
      listeners,
    },
    diagnostics: sortDiagnostics(diagnostics),
  };
}

/** settings.rate-limits as the data plane's buckets (lb_settings of the generation). */
function rateLimitSettings(config: LbConfig): Pick<LogicalSettings, 'perSource' | 'perBackend'> {
  const { perSource, perBackend } = config.settings.rateLimits;
  return {
    ...(perSource ? { perSource: { rate: perSource.requestsPerSec, burst: perSource.burst } } : {}),
    ...(perBackend ? { perBackend: { rate: perBackend.requestsPerSec, burst: perBackend.burst } } : {}),
  };
}

/** The backends of one group, in config order, with effective weights, DNS expanded (also the SNI acceptor's, src/core/sni/splice-table.ts). */
export function compileGroup(proxy: Proxy, group: GroupName, config: TargetGroup, inputs: RuntimeInputs, out: Diagnostic[]): LogicalTarget[] {
  const backends: LogicalTarget[] = [];
  const index = new Map<string, LogicalTarget>();
  const add = (addr: string, port: number, weight: number, source: SourceRef): void => {
    const key = `${addr}:${port}`;
    const seen = index.get(key);
    if (seen) {
      seen.weight += weight;
      out.push(diagnostic('warning', 'duplicate-backend', source,
        `${key} is already a backend of this group (proxy "${proxy.name}", ${describeGroup(group)}); one backend takes both weights`));
      return;
    }
    const backend = { addr, port, weight };
    index.set(key, backend);
    backends.push(backend);
  };

  for (const target of config.targets) {
    const weight = effectiveWeight(proxy, group, target, inputs, out);
    if (target.kind === 'ip') {
      add(target.ip, target.port, weight, target.source);
      continue;
    }
    const addresses = resolveHost(proxy, target, inputs, out);
    const n = addresses.length;
    addresses.forEach((addr, i) => add(addr, target.port, Math.floor(weight / n) + (i < weight % n ? 1 : 0), target.source));
  }

  if (backends.length > LB_MAX_TARGETS) {
    out.push(diagnostic('error', 'group-too-large', config.source,
      `proxy "${proxy.name}", ${describeGroup(group)}: ${backends.length} backends after DNS expansion; ` +
      `the data plane holds at most ${LB_MAX_TARGETS} per group (LB_MAX_TARGETS)`));
  }
  return backends;
}

function effectiveWeight(proxy: Proxy, group: GroupName, target: Target, inputs: RuntimeInputs, out: Diagnostic[]): number {
  const w = inputs.effectiveWeight?.(proxy.name, group, target);
  if (w === undefined) return target.weight;
  if (Number.isInteger(w) && w >= 0 && w <= MAX_WEIGHT) return w;
  out.push(diagnostic('warning', 'invalid-effective-weight', target.source,
    `the runtime set weight ${String(w)} for ${target.id} (proxy "${proxy.name}"); expected an integer 0..${MAX_WEIGHT}, ` +
    `the configured weight ${target.weight} applies`));
  return target.weight;
}

/** Distinct valid IPv4 answers in numeric order; [] with a warning when there are none. */
function resolveHost(proxy: Proxy, target: Target & { kind: 'host' }, inputs: RuntimeInputs, out: Diagnostic[]): string[] {
  const answer = inputs.resolve?.(target.host);
  if (answer === undefined || answer.length === 0) {
    out.push(diagnostic('warning', 'dns-unresolved', target.source,
      `${target.host} (proxy "${proxy.name}") has no resolved address yet; it contributes no backend until DNS answers`));
    return [];
  }
  const valid = new Map<string, number>();
  for (const addr of answer) {
    try {
      valid.set(addr, ipv4ToU32(addr));
    } catch {
      out.push(diagnostic('warning', 'dns-invalid-answer', target.source,
        `${target.host} (proxy "${proxy.name}") resolved to ${JSON.stringify(addr)}, which is not an IPv4 address; ignored`));
    }
  }
  return [...valid.entries()].sort((a, b) => a[1] - b[1]).map(([addr]) => addr);
}

function describeGroup(group: GroupName): string {
  return group === 'default' ? 'default target' : group.startsWith('sni:') ? `SNI route ${group.slice(4)}` : `source route ${group}`;
}

function diagnostic(severity: 'error' | 'warning', code: string, source: SourceRef, message: string): Diagnostic {
  return {
    severity, stage: 'compile', code, file: source.file, pointer: source.pointer,
    ...(source.line !== undefined ? { line: source.line } : {}),
    ...(source.column !== undefined ? { column: source.column } : {}),
    message,
  };
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether a listener's groups name a target on 127.0.0.0/8 (a service on this host). */
function hasLoopbackTarget(defaultTargets: readonly LogicalTarget[], routes: ReadonlyArray<{ targets: readonly LogicalTarget[] }>): boolean {
  return [defaultTargets, ...routes.map((r) => r.targets)].some((g) => g.some((t) => isLoopback(ipv4ToU32(t.addr))));
}
