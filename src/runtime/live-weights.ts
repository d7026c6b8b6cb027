// The weights the data plane holds now, per target ("addr:port", summed over the groups that list
// it): what an operator or a test compares with the config it applied. Reads the pinned maps.

import { targetLabel } from '../core/state.js';
import { instanceComplete } from '../dataplane/index.js';
import { readLive } from '../state/live.js';

/** Reads tried while an apply flips generations under them. */
const STABLE_READS = 10;

/** backend "addr:port" -> weight in the live (active) generation, over every group; {} without a complete instance. */
export function liveWeights(instance: string): Record<string, number> {
  // Only a complete instance (readLive would load and pin the objects of one the daemon is
  // loading right now), and two equal reads in a row: an apply flipping generations between
  // reading lb_ctl and the groups is seen as a difference and read again.
  if (!instanceComplete(instance)) return {};
  let live = readLive(instance);
  for (let i = 0; i < STABLE_READS; i++) {
    const again = readLive(instance);
    if (again.digest === live.digest) break;
    live = again;
  }
  const out: Record<string, number> = {};
  for (const { group } of live.generation.groups) for (const t of group.targets) out[targetLabel(t)] = (out[targetLabel(t)] ?? 0) + t.weight;
  return out;
}
