// The seam between the reconciler and the runtime services (health, drain, circuit breaker,
// least-connections, DNS: src/runtime). Not wired yet: the daemon passes NO_RUNTIME.
//
// The contract the runtime must keep:
// - snapshot() hands in a consistent, synchronous view of its answers (RuntimeInputs for
//   compileConfig) and a fingerprint that changes exactly when those answers change. The
//   reconciler compiles with the inputs and records the fingerprint with what it applied.
// - When its answers change, the runtime asks for a reconcile (Reconciler.trigger('manual',
//   'runtime: ...')). A revision that is unchanged but whose fingerprint moved is reconciled
//   again (not an "unchanged" no-op), so the new effective weights are applied like any change.
// - Runtime-driven changes are therefore never drift: drift is the live maps differing from the
//   last APPLIED desired state, which includes the runtime inputs used at that apply.
// - configure() is told each validated config (which targets to health-check, which names to
//   resolve, which drains still name a target) before it is compiled.

import type { RuntimeInputs } from '../compile/compile.js';
import type { LbConfig } from '../config/types.js';

export interface RuntimeSnapshot {
  inputs: RuntimeInputs;
  /** Equal fingerprints mean equal inputs. */
  fingerprint: string;
}

export interface RuntimeProvider {
  snapshot(): RuntimeSnapshot;
  configure?(config: LbConfig, revision: string): void;
}

/** No runtime services: the config's own weights, no DNS answers. */
export const NO_RUNTIME: RuntimeProvider = {
  snapshot: () => ({ inputs: {}, fingerprint: 'none' }),
};
