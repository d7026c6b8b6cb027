// What /metrics reads from the kernel at scrape time: lb_stats_v4, lb_tstats of every backend of
// the active generation, the rate limiter's counters (lb_rl_stats, lb_rl_backend, the top of
// lb_rl_src), and the data path of every attached interface. Reads the pinned maps through the
// process's one reader (pinnedDataPlane: kept open while the pins are unchanged); an instance
// without pins (nothing applied yet, or taken down) reads as null, and so does one with only some
// (being loaded or taken down right now: opening it would load and pin the objects).
//
// The backends' labels ("addr:port" by target id), the generation's settings and the inventory
// are read once per config: again only when lb_ctl (generation, serial) or the inventory file
// moved. Reading the whole live state on every scrape took 0.5 s of the daemon's thread with
// 10,000 proxies; a scrape now reads lb_ctl, the counters (batch walks: target-counters.ts), the
// attachments and the links.

import { statSync } from 'node:fs';
import {
  EMPTY_SETTINGS, TargetCounters, decodeGroup, decodeSettings, encodeU32, pinnedDataPlane, rateLimitSummary, readCtl, readGroupsRaw, type DataPlane, type Settings,
} from '../dataplane/index.js';
import type { BackendSample, DataPlaneSample } from '../observe/metrics.js';
import { linkFacts } from '../dataplane/link-facts.js';
import { pathLabel } from '../reconcile/status.js';
import { isAttached } from '../state/live.js';
import { inventoryPath, readInventory, type Inventory } from '../state/inventory.js';
import { runDir } from '../state/run-dir.js';
import { targetLabel } from '../core/state.js';

/** What a scrape needs of the active config: read again only when its key moves. */
interface ConfigLabels {
  key: string;
  /** [backend label, target id], sorted by label. */
  backends: Array<[string, number]>;
  settings: Settings;
  inventory: Inventory | null;
}

export class DataPlaneMetricsReader {
  private labels: ConfigLabels | undefined;

  constructor(private readonly instance: string) {}

  read(): DataPlaneSample | null {
    return pinnedDataPlane(this.instance).read((dp) => {
      const stats = dp.readStats();
      const { backends: ids, settings, inventory } = this.configLabels(dp);
      const counters = TargetCounters.read(dp, { buckets: true });
      const backends: BackendSample[] = ids.map(([backend, id]) => {
        const s = counters.targetStats(id);
        return { backend, packets: s.packets, bytes: s.bytes, newFlows: s.newFlows, closedFlows: s.closedFlows, rateLimited: counters.limited(id) };
      });
      const attachments = dp.attachments().filter(isAttached);
      const paths = attachments.flatMap((a) => {
        const path = pathLabel(a);
        return path === null ? [] : [{ interface: a.ifname, path, reason: inventory?.paths?.[a.ifname]?.reason ?? '' }];
      });
      const facts = new Map(linkFacts().map((l) => [l.name, l]));
      const served = [...new Set([...(inventory?.interfaces ?? []), ...attachments.map((a) => a.ifname)])].sort();
      const links = served.map((name) => {
        const l = facts.get(name);
        return { interface: name, up: l !== undefined && l.up && l.carrier };
      });
      const { perSource: _s, perBackend: _b, ...rateLimits } = rateLimitSummary(dp, settings);
      return { stats, backends, paths, links, rateLimits };
    });
  }

  private configLabels(dp: DataPlane): ConfigLabels {
    const ctl = readCtl(dp);
    const key = `${ctl.activeGen} ${ctl.serial} ${inventoryStamp(this.instance)}`;
    if (this.labels?.key === key) return this.labels;
    // The active generation's groups and settings only: its listeners and Maglev tables (the bulk
    // of readGenerationRaw with 10,000 proxies) name no backend.
    const ids = new Map<string, number>();
    for (const [, value] of readGroupsRaw(dp, ctl.activeGen)) for (const t of decodeGroup(value).targets) ids.set(targetLabel(t), t.targetId);
    const backends = [...ids.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const settings = dp.maps.lb_settings.lookup(encodeU32(ctl.activeGen));
    this.labels = { key, backends, settings: settings ? decodeSettings(settings) : EMPTY_SETTINGS, inventory: readInventory(runDir(this.instance)) };
    return this.labels;
  }
}

/** The inventory file's change time and size ('-' when there is none): it is written after the maps. */
function inventoryStamp(instance: string): string {
  const st = statSync(inventoryPath(runDir(instance)), { throwIfNoEntry: false });
  return st ? `${st.mtimeMs} ${st.size} ${st.ino}` : '-';
}
