// What the runtime reads from the kernel: per-backend counters (lb_tstats: new flows, failed
// connection attempts), active flows per backend and newly unanswered connection attempts
// (lb_flows, lb_halfopen). Shell: reads the instance's pinned maps through the process's one
// reader (pinnedDataPlane: the handle stays open while the pins are unchanged, and is opened anew
// after a `lb down` or an upgrade behind the daemon's back); an instance without pins (nothing
// applied yet, or taken down) reads as null.
//
// Breaker input per backend and sample (docs/runtime.md, "Circuit breaker"):
//   attempts = delta of lb_tstats.new_flows
//   failures = delta of lb_tstats.failed_conns + TCP flows newly found unanswered after the bound
// The deltas are taken by the caller; this reads the cumulative counters.

import { DataPlane, TargetCounters, pinnedDataPlane } from '../dataplane/index.js';
import { countUnansweredFlows, type ConntrackEntry } from '../dataplane/unanswered-flows.js';
import { decodeFlow, decodeFlowKey } from '../core/abi.js';
import { activeFlowsByBackend, type FlowTimeouts } from './active-flows.js';

export interface BackendCounters {
  /** The lb_tstats slot the counters came from: a new id means a new series (no delta). */
  targetId: number;
  newFlows: bigint;
  failedConns: bigint;
}

export interface RuntimeSampleRequest {
  /** "addr:port" -> target id of the applied state. */
  targetIds: ReadonlyMap<string, number>;
  /** Also scan lb_flows (active flows and unanswered attempts); costs one pass over the table. */
  flows: boolean;
  timeouts: FlowTimeouts;
}

export interface RuntimeSample {
  counters: Map<string, BackendCounters>;
  /** Active flows per backend; null when the flows were not scanned. */
  active: Map<string, number> | null;
  /** Connection attempts found unanswered since the previous scan, per backend. */
  unanswered: Map<string, number>;
}

export interface RuntimeSampler {
  sample(req: RuntimeSampleRequest): RuntimeSample | null;
  /** Active flows per backend now; null without a data plane. */
  activeFlows(timeouts: FlowTimeouts): Map<string, number> | null;
}

/** A TCP attempt without any reply for this long counts as failed (above the first SYN retransmission gaps). */
export const DEFAULT_UNANSWERED_BOUND_MS = 3_000;

export class KernelSampler implements RuntimeSampler {
  private readonly instance: string;
  private readonly boundNs: bigint;
  /** Flows already counted as unanswered; null until the first scan (its findings are the baseline). */
  private counted: Set<string> | null = null;

  constructor(instance: string, options: { unansweredBoundMs?: number } = {}) {
    this.instance = instance;
    this.boundNs = BigInt(Math.round((options.unansweredBoundMs ?? DEFAULT_UNANSWERED_BOUND_MS) * 1e6));
  }

  sample(req: RuntimeSampleRequest): RuntimeSample | null {
    return this.withDataPlane((dp) => {
      const counters = new Map<string, BackendCounters>();
      // One batch walk (not a syscall per backend) of the slots up to the highest id asked about.
      const table = TargetCounters.read(dp, { buckets: false, below: Math.max(0, ...req.targetIds.values()) + 1 });
      for (const [backend, targetId] of req.targetIds) {
        const s = table.targetStats(targetId);
        counters.set(backend, { targetId, newFlows: s.newFlows, failedConns: s.failedConns });
      }
      if (!req.flows) return { counters, active: null, unanswered: new Map() };
      const entries = readEntries(dp);
      const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, like bpf_ktime_get_ns
      const baseline = this.counted === null;
      this.counted ??= new Set();
      const perId = countUnansweredFlows(entries, now, this.boundNs, this.counted);
      const unanswered = new Map<string, number>();
      if (!baseline) {
        const byId = new Map([...req.targetIds].map(([b, id]) => [id, b]));
        for (const [id, n] of perId) {
          const backend = byId.get(id);
          if (backend !== undefined) unanswered.set(backend, n);
        }
      }
      return { counters, active: activeFlowsByBackend(entries, now, req.timeouts), unanswered };
    });
  }

  activeFlows(timeouts: FlowTimeouts): Map<string, number> | null {
    return this.withDataPlane((dp) => activeFlowsByBackend(readEntries(dp), process.hrtime.bigint(), timeouts));
  }

  private withDataPlane<T>(fn: (dp: DataPlane) => T): T | null {
    return pinnedDataPlane(this.instance).read(fn); // reading never creates a data plane
  }
}

/** Both conntrack tables: a SYN nobody answered stays in lb_halfopen (bpf/lib/halfopen.h). */
function readEntries(dp: DataPlane): ConntrackEntry[] {
  return [...dp.maps.lb_flows.lookupBatch(), ...dp.maps.lb_halfopen.lookupBatch()]
    .map(([k, v]) => ({ key: decodeFlowKey(k), value: decodeFlow(v) }));
}
