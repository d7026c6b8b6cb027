// How the daemon feeds the front door: the config and runtime answers of each successful reconcile.
// The runtime provider is wrapped to see the config each revision was validated into and the
// inputs the reconciler compiled with; after a run that applied (or found nothing to change), the
// front door gets that pair, so the acceptor and the data plane always serve the same revision.

import type { RuntimeInputs } from '../core/compile/compile.js';
import type { LbConfig } from '../core/config/types.js';
import type { RuntimeProvider } from '../reconcile/runtime.js';
import type { ReconcileOutcome } from '../reconcile/types.js';
import type { FrontDoor } from './front-door.js';

export interface FrontDoorHook {
  provider: RuntimeProvider;
  /** Call with the reconciler's last outcome whenever a report is published; acts once per outcome. */
  afterReport(outcome: ReconcileOutcome | undefined): void;
}

export function frontDoorHook(inner: RuntimeProvider, door: FrontDoor, on: { error(err: unknown): void; applied(revision: string, listeners: number): void }): FrontDoorHook {
  const configs = new Map<string, LbConfig>();
  let inputs: RuntimeInputs = {};
  let seen: ReconcileOutcome | undefined;
  const remember = (config: LbConfig, revision: string): void => {
    configs.set(revision, config);
    // Keep the last few: a reconcile names one revision, and older ones are never applied again.
    for (const key of configs.keys()) if (configs.size > 4) configs.delete(key);
  };
  const provider: RuntimeProvider = {
    snapshot: () => {
      const s = inner.snapshot();
      inputs = s.inputs;
      return s;
    },
    ...(inner.snapshotYielding ? {
      snapshotYielding: async (pause: () => Promise<void>) => {
        const s = await inner.snapshotYielding!(pause);
        inputs = s.inputs;
        return s;
      },
    } : {}),
    configure: (config, revision) => {
      inner.configure?.(config, revision);
      remember(config, revision);
    },
    ...(inner.configureYielding ? {
      configureYielding: async (config: LbConfig, revision: string, pause: () => Promise<void>) => {
        await inner.configureYielding!(config, revision, pause);
        remember(config, revision);
      },
    } : {}),
    ...(inner.status ? { status: () => inner.status!() } : {}),
    ...(inner.statusYielding ? { statusYielding: (pause: () => Promise<void>, opts?: { stale?: boolean }) => inner.statusYielding!(pause, opts) } : {}),
    ...(inner.statusKey ? { statusKey: () => inner.statusKey!() } : {}),
  };
  return {
    provider,
    afterReport(outcome) {
      if (!outcome || outcome === seen) return;
      seen = outcome;
      if (outcome.result !== 'applied' && outcome.result !== 'noop') return;
      const config = configs.get(outcome.revision);
      if (config) door.apply(config, inputs).then((ls) => { if (ls.length > 0) on.applied(outcome.revision, ls.length); }, (err: unknown) => on.error(err));
    },
  };
}
