// The normalized config: what the compile step consumes. Produced by normalize.ts from a config
// that passed the schema and the semantic checks, so every field here is present, typed and
// defaulted; nothing in it needs checking again.
//
// Conventions:
// - camelCase names of the file's kebab-case keys (test/unit/config/schema-types.test.ts checks
//   the settings against the schema).
// - One target or a list in the file is always a TargetGroup here.
// - Addresses stay dotted strings; prefixes are canonical ("10.0.0.0/8"); names are lower case
//   where matching is case-insensitive (hosts, SNI names).
// - Every proxy, listener, group, target and route carries `source`: the file, file-local JSON
//   pointer and line:column it came from, so a later error (compile, apply, DNS, health) can
//   point back at the config line that caused it.
// - Order is the file order (files by name, then position in the file); compile sorts what it
//   needs sorted.

import type { PathRequest } from '../data-path-choice.js';

export interface SourceRef {
  file: string;
  /** File-local JSON pointer. */
  pointer: string;
  line?: number;
  column?: number;
}

export interface LbConfig {
  proxies: Proxy[];
  settings: Settings;
  /** The files the config was read from, in merge order. */
  files: string[];
}

export type Protocol = 'tcp' | 'udp' | 'both';
export type ProxyProtocol = 'v2' | 'off';

export interface Proxy {
  name: string;
  listen: Listen;
  defaultTarget: TargetGroup;
  /** In file order; the data plane matches the longest prefix. */
  sourceRoutes: SourceRoute[];
  sniRoutes: SniRoute[];
  sessionPersistence: boolean;
  /**
   * 'splice' when the proxy has SNI routes or a target with PROXY protocol v2: its connections
   * must be accepted in user space (docs/design.md §6). Otherwise 'xdp': NAT in the kernel fast path.
   */
  dataPath: 'xdp' | 'splice';
  source: SourceRef;
}
export interface Listen {
  interfaces: string[];
  port: number;
  /** The VIP; null: every address on the interfaces. */
  address: string | null;
  /** 'both' is kept: the compile step makes one listener entry per protocol. */
  protocol: Protocol;
  /** The data path requested for the interfaces (src/core/data-path-choice.ts). */
  mode: PathRequest;
  source: SourceRef;
}

export interface TargetGroup {
  targets: Target[];
  /** Sum of the targets' weights; 0 means the group takes no new flows. */
  totalWeight: number;
  /** false when the file set no weights (every target got DEFAULT_WEIGHT). */
  weightsExplicit: boolean;
  source: SourceRef;
}

interface TargetBase {
  port: number;
  /** 0..1000, relative within the group; 0: no new flows. */
  weight: number;
  /** The effective check (all levels merged); null: not checked (always healthy). */
  healthCheck: HealthCheck | null;
  proxyProtocol: ProxyProtocol;
  /** "10.0.0.1:8080" or "api.internal:8080": how `lb drain PROXY TARGET` names it. */
  id: string;
  source: SourceRef;
}

export interface IpTarget extends TargetBase {
  kind: 'ip';
  ip: string;
}

/** Resolved at runtime; each A record becomes a backend with an equal share of `weight`. */
export interface HostTarget extends TargetBase {
  kind: 'host';
  /** Lower case. */
  host: string;
  dnsRefreshSeconds: number;
}

export type Target = IpTarget | HostTarget;

export interface SourceRoute {
  /** Canonical "a.b.c.d/len" (a plain address in the file is a /32). */
  prefix: string;
  network: string;
  prefixLength: number;
  targets: TargetGroup;
  /** The route's own setting, else the proxy's. */
  sessionPersistence: boolean;
  source: SourceRef;
}

export interface SniRoute {
  /** Lower case, without the "*." of a wildcard. */
  hostname: string;
  /** true: matches any name ending in "." + hostname (not hostname itself). */
  wildcard: boolean;
  targets: TargetGroup;
  sessionPersistence: boolean;
  source: SourceRef;
}

export interface HealthCheck {
  type: 'tcp' | 'http' | 'https';
  path: string;
  expectedCodes: number[];
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** Port to check; null: the target's port. */
  port: number | null;
}

export interface RateLimit {
  requestsPerSec: number;
  /** Defaults to requestsPerSec. */
  burst: number;
}

export interface Settings {
  statsEnabled: boolean;
  connectionTimeoutSec: number;
  udpTimeoutSec: number;
  maxConnections: number;
  /** null: no bound. */
  maxSniRoutes: number | null;
  /** false: every target's healthCheck is null. */
  healthCheckEnabled: boolean;
  /** settings.health-check-defaults over the built-in values; null when not configured. */
  healthCheckDefaults: HealthCheck | null;
  defaultDrainTimeoutMs: number;
  drainCheckIntervalMs: number;
  rateLimits: { perSource: RateLimit | null; perBackend: RateLimit | null };
  circuitBreaker: {
    enabled: boolean;
    errorThresholdPct: number;
    minRequests: number;
    windowSizeMs: number;
    openDurationMs: number;
    halfOpenRequests: number;
  };
  loadBalancing: {
    algorithm: 'weighted-random' | 'least-connections';
    weighted: boolean;
    updateIntervalMs: number;
  };
  metrics: { enabled: boolean; address: string; port: number; path: string };
  accessLog: {
    enabled: boolean;
    format: 'json' | 'clf';
    /** '-': no file. */
    path: string;
    /** Also write each line to the daemon's stdout. */
    stdout: boolean;
    maxFileSizeMb: number;
    maxFiles: number;
    bufferSize: number;
  };
}
