// Runs raw operations (src/core/ops.ts) against the live maps.

import type { OpRun } from '../core/columns.js';
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

/**
 * executeOps for op runs in columns (src/core/columns.ts): runs[0..] in order, each in batch
 * syscalls straight from its columns (source routes through lb_route_batch), stopping before op
 * `stopBefore` counted across the runs, as executeOps does. Returns how many ran.
 */
export function executeRuns(dp: DataPlane, runs: readonly OpRun[], stopBefore = Number.POSITIVE_INFINITY): number {
  let done = 0;
  for (const run of runs) {
    if (done >= stopBefore) break;
    const n = Math.min(run.count, stopBefore - done);
    const map = dp.maps[run.map];
    if (map.typeName === 'lpm_trie' && n >= ROUTE_BATCH_MIN) {
      writeRoutes(dp, run.kind, { count: n, keys: run.keys, values: run.kind === 'put' ? run.values : null });
    } else if (map.typeName === 'lpm_trie' || n === 1) {
      const ks = run.keySize;
      const vs = run.valueSize;
      for (let i = 0; i < n; i++) {
        const key = run.keys.subarray(i * ks, (i + 1) * ks);
        if (run.kind === 'put') map.update(key, run.values.subarray(i * vs, (i + 1) * vs));
        else map.delete(key);
      }
    } else if (run.kind === 'put') {
      map.updateColumns(run.keys, run.values, n);
    } else {
      map.deleteColumns(run.keys, n);
    }
    done += n;
  }
  return done;
}
