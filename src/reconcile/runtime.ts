// The seam between the reconciler and the runtime services (health, drain, circuit breaker,
// least-connections, DNS: src/runtime). The daemon plugs in RuntimeService
// (src/runtime/service.ts); NO_RUNTIME compiles the config's own weights.
//
// The contract the runtime keeps:
// - snapshot() hands in a consistent, synchronous view of its answers (RuntimeInputs for
//   compileConfig) and a fingerprint that changes exactly when those answers change. The
//   reconciler compiles with the inputs and records the fingerprint with what it applied.
// - When its answers change, the runtime asks for a reconcile (Reconciler.trigger('manual',
//   'runtime: ...')). A revision that is unchanged but whose fingerprint moved is reconciled
//   again (not an "unchanged" no-op), so the new effective weights are applied like any change.
// - Runtime-driven changes are therefore never drift: drift is the live maps differing from the
//   last APPLIED desired state, which includes the runtime inputs used at that apply.
// - configure() is told each validated config (which targets to health-check, which names to
//   resolve, which drains still name a target) before it is compiled; the reconciler takes the
//   snapshot it compiles with after configure(), so a new config never compiles with the
//   answers of the previous one.
// - status() is the runtime part of the status report (health, drain, circuit, DNS per target);
//   statusKey() says what of it is worth a new status-branch commit (states, not counters).

import type { RuntimeInputs } from '../core/compile/compile.js';
import type { LbConfig } from '../core/config/types.js';
import type { RuntimeStatus } from '../runtime/status.js';
import type { StaleStatus } from '../runtime/service.js';

export interface RuntimeSnapshot {
  inputs: RuntimeInputs;
  /** Equal fingerprints mean equal inputs. */
  fingerprint: string;
}

export interface RuntimeProvider {
  snapshot(): RuntimeSnapshot;
  /**
   * snapshot(), built with `pause` between slices of the work (the daemon's runtime: the effective
   * weights of every target of a large config). The run asks for the inputs of a new config this
   * way, so the daemon's event loop keeps serving meanwhile. Absent: snapshot().
   */
  snapshotYielding?(pause: () => Promise<void>): Promise<RuntimeSnapshot>;
  configure?(config: LbConfig, revision: string): void;
  /**
   * configure(), its walks over every target with `pause` between them (a large config must not
   * hold the daemon's event loop); the run uses it when present.
   */
  configureYielding?(config: LbConfig, revision: string, pause: () => Promise<void>): Promise<void>;
  /** The runtime section of the status report; null before there is any. */
  status?(): RuntimeStatus | null;
  /**
   * status(), built with `pause` between slices of the work (the control socket's answers). With
   * `stale`, a status whose inputs did not move but which is older than its time bound answers at
   * once while a fresh one is built. Absent: status().
   */
  statusYielding?(pause: () => Promise<void>, opts?: StaleStatus): Promise<RuntimeStatus | null>;
  /** Changes exactly when status() changed in a way worth publishing (not counters or times). */
  statusKey?(): string;
}

/** No runtime services: the config's own weights, no DNS answers. */
export const NO_RUNTIME: RuntimeProvider = {
  snapshot: () => ({ inputs: {}, fingerprint: 'none' }),
};
