// Reading a generation back after the apply wrote it (or after a rollback restored it): every
// entry the apply (or the rollback) wrote must hold exactly the bytes written, every key it
// deleted must be gone. The rest of the generation was not written: it holds what it held when
// the apply read it (docs/apply.md, step 7, says why that is enough).
//
// Many entries of a batch-readable map are read with batch lookups, many source routes written are
// checked in the kernel by lb_route_batch (lb_src_routes is an LPM trie: no batch lookup); a few,
// and deleted routes, one by one.

import { LbError } from '../core/errors.js';
import { compareBytes, gather, rawOpsOf, sameBytes, sortedOrder, type OpRun } from '../core/columns.js';
import { LB_MAX_GROUPS } from '../core/abi.js';
import { byteKey, type ConfigMapName } from '../core/ops.js';
import { readFirstSrcRoute, readGroupHalf, readGroupSlotsRaw, srcRouteExact, type DataPlane } from '../dataplane/index.js';
import { ROUTE_BATCH_MIN, runRouteBatch } from '../dataplane/route-batch.js';

/**
 * A key written with `value`, or removed (null). A raw op is one as it is (a delete has no value):
 * the read-back of 100,000 ops makes no second list of them.
 */
export interface Expectation {
  map: ConfigMapName;
  key: Buffer;
  value?: Buffer | null | undefined;
}

/** Above this many expected keys of one hash or array map, the map is read with batch lookups. */
const BATCH_ABOVE = 256;

/** Checks every expectation against generation `gen`; throws LB_APPLY_VERIFY naming the first that fails. */
export function readBack(dp: DataPlane, gen: number, expected: readonly Expectation[], code: 'LB_APPLY_VERIFY' | 'LB_APPLY_ROLLBACK' = 'LB_APPLY_VERIFY'): void {
  const diff = expectationDifference(dp, gen, expected);
  if (diff !== null) throw new LbError(code, `generation ${gen} read back differs: ${diff}`, { gen });
}

/** The first expectation the maps do not meet, in words, or null. */
export function expectationDifference(dp: DataPlane, gen: number, expected: readonly Expectation[]): string | null {
  const byMap = new Map<ConfigMapName, Expectation[]>();
  for (const e of expected) {
    const list = byMap.get(e.map);
    if (list === undefined) byMap.set(e.map, [e]);
    else list.push(e);
  }
  for (const [map, list] of byMap) {
    const diff = map === 'lb_src_routes' ? routeDifference(dp, list) : entryDifference(dp, gen, map, list);
    if (diff !== null) return diff;
  }
  return null;
}

/**
 * readBack for op runs in columns: the source routes a run puts are checked in the kernel straight
 * from the run's columns (no entry objects); everything else as expectations.
 */
export function readBackRuns(dp: DataPlane, gen: number, runs: readonly OpRun[]): void {
  for (const run of runs) {
    let diff: string | null;
    if (run.map === 'lb_src_routes' && run.kind === 'put' && run.count >= ROUTE_BATCH_MIN) {
      const failed = runRouteBatch(dp, 'verify', run);
      diff = failed === null ? null : routeDifference(dp, rawOpsOf([{ ...run, count: 1, keys: run.keys.subarray(failed.index * run.keySize), values: run.values.subarray(failed.index * run.valueSize) }]))
        ?? `lb_src_routes[${run.keys.toString('hex', failed.index * run.keySize, (failed.index + 1) * run.keySize)}] failed its check in the kernel (errno ${failed.errno})`;
    } else if (run.count > BATCH_ABOVE && run.map !== 'lb_settings' && run.map !== 'lb_src_routes') {
      diff = run.map === 'lb_groups' ? groupRunDifference(dp, gen, run) : hashRunDifference(dp, run);
    } else {
      diff = expectationDifference(dp, gen, rawOpsOf([run]));
    }
    if (diff !== null) throw new LbError('LB_APPLY_VERIFY', `generation ${gen} read back differs: ${diff}`, { gen });
  }
}

/** A run's entry i as an expectation, for the message about it. */
function entryOf(run: OpRun, i: number): Expectation {
  const key = run.keys.subarray(i * run.keySize, (i + 1) * run.keySize);
  return run.kind === 'put' ? { map: run.map, key, value: run.values.subarray(i * run.valueSize, (i + 1) * run.valueSize) } : { map: run.map, key, value: null };
}

/** lb_groups: every slot of the generation in one batch read, compared in place (an array: every slot exists). */
function groupRunDifference(dp: DataPlane, gen: number, run: OpRun): string | null {
  const half = readGroupHalf(dp, gen);
  const vs = run.valueSize;
  const lo = gen * LB_MAX_GROUPS;
  // 32-bit views when the buffers allow them: one loop over the words, not a Buffer.compare and a
  // readUInt32LE a group (Node JavaScript around the native compare: interpreted while cold).
  const [hw, rw, kw] = vs % 4 === 0 ? [words(half), words(run.values), words(run.keys)] : [null, null, null];
  const same = (i: number, slot: number): boolean => {
    if (hw === null || rw === null) return run.values.compare(half, slot * vs, (slot + 1) * vs, i * vs, (i + 1) * vs) === 0;
    const n = vs >> 2;
    for (let w = 0; w < n; w++) if (rw[i * n + w] !== hw[slot * n + w]) return false;
    return true;
  };
  for (let i = 0; i < run.count; i++) {
    const slot = (kw !== null ? kw[i]! >>> 0 : run.keys.readUInt32LE(i * 4)) - lo;
    if (slot < 0 || slot >= LB_MAX_GROUPS || !same(i, slot)) {
      return describe('lb_groups', entryOf(run, i), slot >= 0 && slot < LB_MAX_GROUPS ? Buffer.from(half.subarray(slot * vs, (slot + 1) * vs)) : undefined);
    }
  }
  return null;
}

/** A 32-bit view of b when its bytes are whole aligned words; null otherwise. */
function words(b: Buffer): Int32Array | null {
  return b.byteOffset % 4 === 0 && b.length % 4 === 0 ? new Int32Array(b.buffer, b.byteOffset, b.length >> 2) : null;
}

/**
 * Hash maps: the whole map in one batch read into columns, sorted, and walked beside the run (whose
 * keys are in canonical order) like a merge.
 */
function hashRunDifference(dp: DataPlane, run: OpRun): string | null {
  const read = dp.maps[run.map].lookupBatchColumns(run.map === 'lb_maglev' ? 16 : 1024); // Maglev tables are 16 KiB each
  const have = gather(read, sortedOrder(read));
  // A merge of two sorted columns, their buffers taken out once (compareBytes says why).
  const { keySize: ks, valueSize: vs, keys: hk, values: hv, count: hn } = have;
  const { keys: rk, values: rv, count: rn } = run;
  const put = run.kind === 'put';
  let j = 0;
  for (let i = 0; i < rn; i++) {
    while (j < hn && compareBytes(hk, j * ks, rk, i * ks, ks) < 0) j++;
    const found = j < hn && compareBytes(hk, j * ks, rk, i * ks, ks) === 0;
    if (put ? found && sameBytes(hv, j * vs, rv, i * vs, vs) : !found) continue;
    const got = found ? have.values.subarray(j * have.valueSize, (j + 1) * have.valueSize) : undefined;
    const diff = describe(run.map, entryOf(run, i), got);
    if (diff !== null) return diff;
  }
  return null;
}

/** Lookups into one reused buffer: the answer is valid until the next lookup (describe() is done with it by then). */
function scratchLookup(dp: DataPlane, map: ConfigMapName): (key: Buffer) => Buffer | undefined {
  const m = dp.maps[map];
  const out = Buffer.alloc(m.valueBufferSize);
  return (key) => (m.lookupInto(key, out) ? out : undefined);
}

function describe(map: ConfigMapName, e: Expectation, got: Buffer | undefined): string | null {
  const key = e.key.toString('hex');
  const want = e.value ?? null;
  if (want === null) return got === undefined ? null : `${map} holds key ${key}, which was deleted`;
  if (got === undefined) return `${map} lacks key ${key}`;
  return got.equals(want) ? null : `${map}[${key}] differs from the value written`;
}

/** Hash and array maps: a lookup answers exactly the key asked for. */
function entryDifference(dp: DataPlane, gen: number, map: Exclude<ConfigMapName, 'lb_src_routes'>, list: Expectation[]): string | null {
  let lookup = scratchLookup(dp, map);
  if (list.length > BATCH_ABOVE && map !== 'lb_settings') {
    const slots = new Set(list.map((e) => e.key.readUInt32LE(0)));
    const entries = map === 'lb_groups' ? readGroupSlotsRaw(dp, gen, (idx) => slots.has(idx)) : dp.maps[map].lookupBatch();
    const index = new Map(entries.map(([k, v]) => [byteKey(k), v]));
    lookup = (key) => index.get(byteKey(key));
  }
  for (const e of list) {
    const diff = describe(map, e, lookup(e.key));
    if (diff !== null) return diff;
  }
  return null;
}

/**
 * The trie, key by key. A put is checked by the value a lookup of its key answers: the value the
 * data path gets for that prefix (were the key missing, only a covering shorter prefix with the
 * very same value could answer it, and that gives every address of the prefix the same group). A
 * deleted key must be gone exactly: a lookup that answers is told apart from a covering prefix
 * by srcRouteExact.
 */
function routeDifference(dp: DataPlane, list: Expectation[]): string | null {
  let first: Buffer | null | undefined;
  const lookup = scratchLookup(dp, 'lb_src_routes');
  // Many puts are checked by lb_route_batch in the kernel (the same lookup, no syscall per route);
  // the first that fails is described from a lookup of its own below.
  const puts = list.filter((e) => (e.value ?? null) !== null);
  const batched = puts.length >= ROUTE_BATCH_MIN;
  if (batched) {
    const failed = runRouteBatch(dp, 'verify', puts);
    if (failed !== null) return describe('lb_src_routes', puts[failed.index]!, lookup(puts[failed.index]!.key)) ?? `lb_src_routes[${puts[failed.index]!.key.toString('hex')}] failed its check in the kernel (errno ${failed.errno})`;
  }
  for (const e of list) {
    if (batched && (e.value ?? null) !== null) continue;
    let got = lookup(e.key);
    if ((e.value ?? null) === null && got !== undefined) got = srcRouteExact(dp, e.key, first === undefined ? (first = readFirstSrcRoute(dp)) : first);
    const diff = describe('lb_src_routes', e, got);
    if (diff !== null) return diff;
  }
  return null;
}
