// The shape of a config file as written (kebab-case keys), once it has passed the schema.
// Mirrors schemas/lb-config.schema.json; test/unit/config/schema-types.test.ts checks that every
// interface here has exactly the schema's properties.

export type RawProtocol = 'tcp' | 'udp' | 'both';
export type RawProxyProtocol = 'v2' | 'off';
export type RawHealthCheckType = 'tcp' | 'http' | 'https' | 'none';

export interface RawConfig {
  proxies?: RawProxy[];
  settings?: RawSettings;
}

export interface RawProxy {
  name: string;
  listen: RawListen;
  'default-target': RawTargetGroup;
  'source-routes'?: RawSourceRoute[];
  'sni-routes'?: RawSniRoute[];
  'session-persistence'?: boolean;
  'proxy-protocol'?: RawProxyProtocol;
  'health-check'?: RawHealthCheck;
}

export interface RawListen {
  interfaces: string[];
  port: number;
  address?: string;
  protocol?: RawProtocol;
  mode?: 'auto' | 'xdp' | 'tc';
}

/** One target, or a list of them. */
export type RawTargetGroup = RawTarget | RawTarget[];

export interface RawTarget {
  ip?: string;
  host?: string;
  port: number;
  weight?: number;
  'dns-refresh-seconds'?: number;
  'health-check'?: RawHealthCheck;
  'proxy-protocol'?: RawProxyProtocol;
}

export interface RawSourceRoute {
  source: string;
  target?: RawTargetGroup;
  targets?: RawTargetGroup;
  'session-persistence'?: boolean;
}

export interface RawSniRoute {
  'sni-hostname': string;
  target?: RawTargetGroup;
  targets?: RawTargetGroup;
  'session-persistence'?: boolean;
}

export interface RawHealthCheck {
  type?: RawHealthCheckType;
  path?: string;
  'expected-codes'?: number[];
  'interval-ms'?: number;
  'timeout-ms'?: number;
  'healthy-threshold'?: number;
  'unhealthy-threshold'?: number;
  port?: number;
}

export interface RawRateLimit {
  'requests-per-sec': number;
  burst?: number;
}

export interface RawSettings {
  'stats-enabled'?: boolean;
  'connection-timeout-sec'?: number;
  'udp-timeout-sec'?: number;
  'max-connections'?: number;
  'max-sni-routes'?: number;
  'health-check-enabled'?: boolean;
  'health-check-defaults'?: RawHealthCheck;
  'default-drain-timeout-ms'?: number;
  'drain-check-interval-ms'?: number;
  'rate-limits'?: RawRateLimits;
  'circuit-breaker'?: RawCircuitBreaker;
  'load-balancing'?: RawLoadBalancing;
  metrics?: RawMetrics;
  'access-log'?: RawAccessLog;
}

export interface RawRateLimits {
  'per-source'?: RawRateLimit;
  'per-backend'?: RawRateLimit;
}

export interface RawCircuitBreaker {
  enabled?: boolean;
  'error-threshold-pct'?: number;
  'min-requests'?: number;
  'window-size-ms'?: number;
  'open-duration-ms'?: number;
  'half-open-requests'?: number;
}

export interface RawLoadBalancing {
  algorithm?: 'weighted-random' | 'least-connections';
  weighted?: boolean;
  'update-interval-ms'?: number;
}

export interface RawMetrics {
  enabled?: boolean;
  address?: string;
  port?: number;
  path?: string;
}

export interface RawAccessLog {
  enabled?: boolean;
  format?: 'json' | 'clf';
  path?: string;
  stdout?: boolean;
  'max-file-size-mb'?: number;
  'max-files'?: number;
  'buffer-size'?: number;
}
