// What /metrics reads from the kernel at scrape time: lb_stats_v4, lb_tstats of every backend of
// the active generation, the rate limiter's counters (lb_rl_stats, lb_rl_backend, the top of lb_rl_src), and the data path of every attached interface. Opens the pinned maps for the read and closes them again; an instance
// without pins (nothing applied yet, or taken down) reads as null, and so does one with only some
// (being loaded or taken down right now: opening it would load and pin the objects).

import { DataPlane, rateLimitSummary, readBackendBucket } from '../dataplane/index.js';
import type { BackendSample, DataPlaneSample } from '../observe/metrics.js';
import { linkFacts } from '../dataplane/link-facts.js';
import { pathLabel } from '../reconcile/status.js';
import { instanceComplete } from '../runtime/dataplane-sampler.js';
import { readLive } from '../state/live.js';
import { targetLabel } from '../core/state.js';

export function sampleDataPlane(instance: string): DataPlaneSample | null {
  if (!instanceComplete(instance)) return null;
  const dp = DataPlane.open({ instance });
  try {
    const stats = dp.readStats();
    const live = readLive(instance, { dp });
    const ids = new Map<string, number>();
    for (const { group } of live.generation.groups) for (const t of group.targets) ids.set(targetLabel(t), t.targetId);
    const backends: BackendSample[] = [...ids.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([backend, id]) => {
      const s = dp.readTargetStats(id);
      return { backend, packets: s.packets, bytes: s.bytes, newFlows: s.newFlows, closedFlows: s.closedFlows, rateLimited: readBackendBucket(dp, id).limited };
    });
    const paths = live.attachments.flatMap((a) => {
      const path = pathLabel(a);
      return path === null ? [] : [{ interface: a.ifname, path, reason: live.inventory?.paths?.[a.ifname]?.reason ?? '' }];
    });
    const facts = new Map(linkFacts().map((l) => [l.name, l]));
    const served = [...new Set([...(live.inventory?.interfaces ?? []), ...live.attachments.map((a) => a.ifname)])].sort();
    const links = served.map((name) => {
      const l = facts.get(name);
      return { interface: name, up: l !== undefined && l.up && l.carrier };
    });
    const { perSource: _s, perBackend: _b, ...rateLimits } = rateLimitSummary(dp, live.generation.settings);
    return { stats, backends, paths, links, rateLimits };
  } finally {
    dp.close();
  }
}
