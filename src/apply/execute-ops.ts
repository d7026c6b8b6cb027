// Runs raw operations (src/core/ops.ts) against the live maps.

import type { RawOp } from '../core/ops.js';
import type { DataPlane } from '../dataplane/index.js';
import { ROUTE_BATCH_MIN, writeRoutes } from '../dataplane/route-batch.js';

/**
 * Runs ops[0..stopBefore) against the maps, consecutive ops of one map and kind in one batch
 * syscall. Returns how many ran. `stopBefore` is the fault-injection point: the ops before it run,
 * the one at it and all after it do not, exactly as if the process had died there.
 */
export function executeOps(dp: DataPlane, ops: readonly RawOp[], stopBefore = ops.length): number {
  const end = Math.max(0, Math.min(stopBefore, ops.length));
  let i = 0;
  while (i < end) {
    const first = ops[i]!;
    let j = i + 1;
    while (j < end && ops[j]!.map === first.map && ops[j]!.kind === first.kind) j++;
    const map = dp.maps[first.map];
    if (map.typeName === 'lpm_trie' && j - i >= ROUTE_BATCH_MIN) {
      // The LPM trie has no batch syscalls: many routes go through lb_route_batch in the kernel.
      writeRoutes(dp, first.kind, ops.slice(i, j));
    } else if (first.kind === 'put' && (j - i === 1 || map.typeName === 'lpm_trie')) {
      // A few routes: one update each, without building a batch first.
      for (let k = i; k < j; k++) map.update(ops[k]!.key, ops[k]!.value!);
    } else {
      const run = ops.slice(i, j);
      if (first.kind === 'delete') map.deleteBatch(run.map((op) => op.key));
      else map.updateBatch(run.map((op) => [op.key, op.value!] as [Buffer, Buffer]));
    }
    i = j;
  }
  return end;
}
