// The runtime's view of backend traffic with the SNI acceptor's connections added. The breaker and
// least-connections read the data plane (lb_tstats, lb_flows: src/runtime/dataplane-sampler.ts),
// which never sees a connection the acceptor relays; this sampler adds the acceptor's per-backend
// load to each reading, so a backend that refuses the acceptor's connects opens its circuit, and
// the acceptor's open connections weigh in least-connections, as a fast-path flow's would.

import type { BackendCounters, RuntimeSample, RuntimeSampler } from '../runtime/dataplane-sampler.js';
import type { BackendLoad } from './acceptor.js';

/** The series id of a backend only the acceptor reaches (no lb_tstats slot). */
export const ACCEPTOR_ONLY_SERIES = -1;

export function withAcceptorLoad(inner: RuntimeSampler, load: () => ReadonlyMap<string, BackendLoad> | undefined): RuntimeSampler {
  return {
    sample(req) {
      const s = inner.sample(req);
      const l = load();
      return s && l ? addLoad(s, l) : s;
    },
    activeFlows(timeouts) {
      const active = inner.activeFlows(timeouts);
      const l = load();
      return active && l ? addActive(active, l) : active;
    },
  };
}

/** A reading with the acceptor's attempts and failures added to each backend's cumulative counters, and its open connections to the active ones. */
export function addLoad(s: RuntimeSample, load: ReadonlyMap<string, BackendLoad>): RuntimeSample {
  const counters = new Map<string, BackendCounters>(s.counters);
  for (const [backend, l] of load) {
    const k = counters.get(backend);
    // Both are cumulative for the daemon's life, so their sum is too: the breaker's deltas hold.
    counters.set(backend, {
      targetId: k?.targetId ?? ACCEPTOR_ONLY_SERIES,
      newFlows: (k?.newFlows ?? 0n) + BigInt(l.attempts),
      failedConns: (k?.failedConns ?? 0n) + BigInt(l.failed),
    });
  }
  return { counters, active: s.active ? addActive(s.active, load) : null, unanswered: s.unanswered };
}

function addActive(active: ReadonlyMap<string, number>, load: ReadonlyMap<string, BackendLoad>): Map<string, number> {
  const out = new Map(active);
  for (const [backend, l] of load) if (l.active > 0) out.set(backend, (out.get(backend) ?? 0) + l.active);
  return out;
}
