// The daemon's observability needs each validated config's settings (access log, metrics
// endpoint) as the runtime services get them: this wraps the reconciler's RuntimeProvider so its
// configure() also calls the hook. Everything else passes through unchanged.

import type { LbConfig } from '../core/config/types.js';
import type { RuntimeProvider } from '../reconcile/runtime.js';
import type { StaleStatus } from '../runtime/service.js';

export function withConfigHook(inner: RuntimeProvider, hook: (config: LbConfig) => void): RuntimeProvider {
  return {
    snapshot: () => inner.snapshot(),
    ...(inner.snapshotYielding ? { snapshotYielding: (pause: () => Promise<void>) => inner.snapshotYielding!(pause) } : {}),
    configure: (config, revision) => {
      inner.configure?.(config, revision);
      hook(config);
    },
    ...(inner.configureYielding ? {
      configureYielding: async (config: LbConfig, revision: string, pause: () => Promise<void>) => {
        await inner.configureYielding!(config, revision, pause);
        hook(config);
      },
    } : {}),
    ...(inner.status ? { status: () => inner.status!() } : {}),
    ...(inner.statusYielding ? { statusYielding: (pause: () => Promise<void>, opts?: StaleStatus) => inner.statusYielding!(pause, opts) } : {}),
    ...(inner.statusKey ? { statusKey: () => inner.statusKey!() } : {}),
  };
}
