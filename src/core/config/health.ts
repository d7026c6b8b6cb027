// Which health check applies to a target: built-in defaults, then settings.health-check-defaults,
// then the proxy's health-check, then the target's, merged key by key. Pure.

import { HEALTH_CHECK_DEFAULTS } from './defaults.js';
import type { RawHealthCheck } from './raw-types.js';

export interface HealthCheckLevels {
  defaults?: RawHealthCheck;
  proxy?: RawHealthCheck;
  target?: RawHealthCheck;
}

/** The merged check, or null when no level configures one or the result is type none. */
export function effectiveHealthCheck(levels: HealthCheckLevels): (typeof HEALTH_CHECK_DEFAULTS & { port?: number }) | null {
  if (!levels.defaults && !levels.proxy && !levels.target) return null;
  const merged = { ...HEALTH_CHECK_DEFAULTS, ...levels.defaults, ...levels.proxy, ...levels.target };
  return merged.type === 'none' ? null : merged;
}
