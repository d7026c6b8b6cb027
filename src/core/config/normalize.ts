// From the merged, validated config (kebab-case, optional keys, one-or-many targets) to the
// normalized model of types.ts: defaults applied, groups always lists, names canonical, every
// part carrying its source position. Pure; assumes the schema and semantic checks passed.

import {
  ACCESS_LOG_DEFAULTS,
  CIRCUIT_BREAKER_DEFAULTS,
  DEFAULT_DNS_REFRESH_SECONDS,
  DEFAULT_WEIGHT,
  LISTEN_DEFAULTS,
  LOAD_BALANCING_DEFAULTS,
  METRICS_DEFAULTS,
  PROXY_DEFAULTS,
  SETTINGS_DEFAULTS,
} from './defaults.js';
import { effectiveHealthCheck } from './health.js';
import { normalizeSniHostname } from './hostname.js';
import { formatIpv4, formatPrefix, networkOf, parseIpv4Prefix } from './ipv4.js';
import type { MergedConfig } from './merge.js';
import { joinPointer } from './pointer.js';
import { targetsOf } from './groups.js';
import type { RawHealthCheck, RawProxy, RawRateLimit, RawSettings, RawTargetGroup } from './raw-types.js';
import type { HealthCheck, LbConfig, Proxy, RateLimit, Settings, Target, TargetGroup } from './types.js';

export function normalizeConfig(merged: MergedConfig): LbConfig {
  const settings = normalizeSettings(merged.settings);
  const proxies = merged.proxies.map((p, i) => normalizeProxy(merged, p, joinPointer('/proxies', i), settings));
  return { proxies, settings, files: merged.files.map((f) => f.file) };
}

interface ProxyScope {
  merged: MergedConfig;
  defaults: RawHealthCheck | undefined;
  proxyCheck: RawHealthCheck | undefined;
  healthEnabled: boolean;
  proxyProtocol: 'v2' | 'off';
}

function normalizeProxy(merged: MergedConfig, raw: RawProxy, pointer: string, settings: Settings): Proxy {
  const scope: ProxyScope = {
    merged,
    defaults: merged.settings['health-check-defaults'],
    proxyCheck: raw['health-check'],
    healthEnabled: settings.healthCheckEnabled,
    proxyProtocol: raw['proxy-protocol'] ?? PROXY_DEFAULTS['proxy-protocol'],
  };
  const sessionPersistence = raw['session-persistence'] ?? PROXY_DEFAULTS['session-persistence'];
  const sourceRoutes = (raw['source-routes'] ?? []).map((route, k) => {
    const routePointer = joinPointer(pointer, 'source-routes', k);
    const prefix = parseIpv4Prefix(route.source)!;
    const network = networkOf(prefix);
    const field = route.targets !== undefined ? 'targets' : 'target';
    return {
      prefix: formatPrefix(network, prefix.length),
      network: formatIpv4(network),
      prefixLength: prefix.length,
      targets: normalizeGroup(scope, route[field]!, joinPointer(routePointer, field)),
      sessionPersistence: route['session-persistence'] ?? sessionPersistence,
      source: merged.locate(routePointer),
    };
  });
  const sniRoutes = (raw['sni-routes'] ?? []).map((route, k) => {
    const routePointer = joinPointer(pointer, 'sni-routes', k);
    const field = route.targets !== undefined ? 'targets' : 'target';
    return {
      ...normalizeSniHostname(route['sni-hostname']),
      targets: normalizeGroup(scope, route[field]!, joinPointer(routePointer, field)),
      sessionPersistence: route['session-persistence'] ?? sessionPersistence,
      source: merged.locate(routePointer),
    };
  });
  const defaultTarget = normalizeGroup(scope, raw['default-target'], joinPointer(pointer, 'default-target'));
  const groups = [defaultTarget, ...sourceRoutes.map((r) => r.targets), ...sniRoutes.map((r) => r.targets)];
  const needsSplice = sniRoutes.length > 0 || groups.some((g) => g.targets.some((t) => t.proxyProtocol === 'v2'));
  return {
    name: raw.name,
    listen: {
      interfaces: [...raw.listen.interfaces],
      port: raw.listen.port,
      address: raw.listen.address ?? null,
      protocol: raw.listen.protocol ?? LISTEN_DEFAULTS.protocol,
      mode: raw.listen.mode ?? LISTEN_DEFAULTS.mode,
      source: merged.locate(joinPointer(pointer, 'listen')),
    },
    defaultTarget,
    sourceRoutes,
    sniRoutes,
    sessionPersistence,
    dataPath: needsSplice ? 'splice' : 'xdp',
    source: merged.locate(pointer),
  };
}

function normalizeGroup(scope: ProxyScope, raw: RawTargetGroup, pointer: string): TargetGroup {
  const refs = targetsOf(raw, pointer);
  const weightsExplicit = refs.some((r) => r.target.weight !== undefined);
  const targets = refs.map(({ target, pointer: targetPointer }): Target => {
    const check = scope.healthEnabled
      ? effectiveHealthCheck({ defaults: scope.defaults, proxy: scope.proxyCheck, target: target['health-check'] })
      : null;
    const base = {
      port: target.port,
      weight: target.weight ?? DEFAULT_WEIGHT,
      healthCheck: check ? toHealthCheck(check) : null,
      proxyProtocol: target['proxy-protocol'] ?? scope.proxyProtocol,
      source: scope.merged.locate(targetPointer),
    };
    if (target.host !== undefined) {
      const host = target.host.toLowerCase();
      return {
        kind: 'host',
        host,
        dnsRefreshSeconds: target['dns-refresh-seconds'] ?? DEFAULT_DNS_REFRESH_SECONDS,
        id: `${host}:${target.port}`,
        ...base,
      };
    }
    return { kind: 'ip', ip: target.ip!, id: `${target.ip}:${target.port}`, ...base };
  });
  return {
    targets,
    totalWeight: targets.reduce((sum, t) => sum + t.weight, 0),
    weightsExplicit,
    source: scope.merged.locate(pointer),
  };
}

function toHealthCheck(c: NonNullable<ReturnType<typeof effectiveHealthCheck>>): HealthCheck {
  return {
    type: c.type as HealthCheck['type'],
    path: c.path,
    expectedCodes: [...c['expected-codes']],
    intervalMs: c['interval-ms'],
    timeoutMs: c['timeout-ms'],
    healthyThreshold: c['healthy-threshold'],
    unhealthyThreshold: c['unhealthy-threshold'],
    port: c.port ?? null,
  };
}

function rateLimit(raw: RawRateLimit | undefined): RateLimit | null {
  return raw ? { requestsPerSec: raw['requests-per-sec'], burst: raw.burst ?? raw['requests-per-sec'] } : null;
}

function normalizeSettings(raw: RawSettings): Settings {
  const s = { ...SETTINGS_DEFAULTS, ...raw };
  const cb = { ...CIRCUIT_BREAKER_DEFAULTS, ...raw['circuit-breaker'] };
  const lb = { ...LOAD_BALANCING_DEFAULTS, ...raw['load-balancing'] };
  const metrics = { ...METRICS_DEFAULTS, ...raw.metrics };
  const log = { ...ACCESS_LOG_DEFAULTS, ...raw['access-log'] };
  const defaults = raw['health-check-defaults'] ? effectiveHealthCheck({ defaults: raw['health-check-defaults'] }) : null;
  return {
    statsEnabled: s['stats-enabled'],
    connectionTimeoutSec: s['connection-timeout-sec'],
    udpTimeoutSec: s['udp-timeout-sec'],
    maxConnections: s['max-connections'],
    maxSniRoutes: raw['max-sni-routes'] ?? null,
    healthCheckEnabled: s['health-check-enabled'],
    healthCheckDefaults: defaults ? toHealthCheck(defaults) : null,
    defaultDrainTimeoutMs: s['default-drain-timeout-ms'],
    drainCheckIntervalMs: s['drain-check-interval-ms'],
    rateLimits: { perSource: rateLimit(raw['rate-limits']?.['per-source']), perBackend: rateLimit(raw['rate-limits']?.['per-backend']) },
    circuitBreaker: {
      enabled: cb.enabled,
      errorThresholdPct: cb['error-threshold-pct'],
      minRequests: cb['min-requests'],
      windowSizeMs: cb['window-size-ms'],
      openDurationMs: cb['open-duration-ms'],
      halfOpenRequests: cb['half-open-requests'],
    },
    loadBalancing: { algorithm: lb.algorithm, weighted: lb.weighted, updateIntervalMs: lb['update-interval-ms'] },
    metrics: { enabled: metrics.enabled, address: metrics.address, port: metrics.port, path: metrics.path },
    accessLog: {
      enabled: log.enabled,
      format: log.format,
      path: log.path,
      stdout: log.stdout,
      maxFileSizeMb: log['max-file-size-mb'],
      maxFiles: log['max-files'],
      bufferSize: log['buffer-size'],
    },
  };
}

