// Default values of the config format. The schema's `default` annotations state the same values
// (checked by test/unit/config/schema.test.ts); normalize.ts applies these.

import type { RawHealthCheck } from './raw-types.js';

/** Weight of a target whose group sets no weights: equal shares (as the original's 100). */
export const DEFAULT_WEIGHT = 100;
export const DEFAULT_DNS_REFRESH_SECONDS = 30;

/** Built-in health check values, under settings.health-check-defaults. */
export const HEALTH_CHECK_DEFAULTS: Required<Omit<RawHealthCheck, 'port'>> = {
  type: 'tcp',
  path: '/health',
  'expected-codes': [200, 201, 202, 204],
  'interval-ms': 10_000,
  'timeout-ms': 3_000,
  'healthy-threshold': 2,
  'unhealthy-threshold': 3,
};

export const SETTINGS_DEFAULTS = {
  'stats-enabled': false,
  'connection-timeout-sec': 300,
  'udp-timeout-sec': 60,
  'max-connections': 100_000,
  'health-check-enabled': true,
  'default-drain-timeout-ms': 30_000,
  'drain-check-interval-ms': 1_000,
} as const;

export const CIRCUIT_BREAKER_DEFAULTS = {
  enabled: false,
  'error-threshold-pct': 50,
  'min-requests': 10,
  'window-size-ms': 60_000,
  'open-duration-ms': 30_000,
  'half-open-requests': 3,
} as const;

export const LOAD_BALANCING_DEFAULTS = {
  algorithm: 'weighted-random',
  weighted: true,
  'update-interval-ms': 1_000,
} as const;

export const METRICS_DEFAULTS = {
  enabled: false,
  address: '0.0.0.0',
  port: 9090,
  path: '/metrics',
} as const;

export const ACCESS_LOG_DEFAULTS = {
  enabled: false,
  format: 'json',
  path: 'logs/access.log',
  stdout: false,
  'max-file-size-mb': 100,
  'max-files': 10,
  'buffer-size': 10_000,
} as const;

export const LISTEN_DEFAULTS = { protocol: 'tcp', mode: 'auto' } as const;
export const PROXY_DEFAULTS = { 'session-persistence': false, 'proxy-protocol': 'off' } as const;
