// Source routes written, deleted and checked in the kernel, a batch at a time. lb_src_routes is an
// LPM trie, which has no batch syscalls: one syscall per route cost an apply of 100,000 entries as
// much time as everything else together (docs/benchmarks.md, section 4). The apply stages up to
// LB_ROUTE_STAGE_OPS routes in lb_route_stage (one map update) and runs lb_route_batch
// (bpf/lb_apply.bpf.c) over them with BPF_PROG_TEST_RUN (one more syscall); the program writes back
// how many it did and the error of the first that failed.

import {
  LAYOUTS, LB_ROUTE_DELETE, LB_ROUTE_PUT, LB_ROUTE_STAGE_OPS, LB_ROUTE_VERIFY,
} from '../core/abi.js';
import { bpfError, progTestRunNoData } from './libbpf.js';
import type { DataPlane } from './data-plane.js';

export type RouteBatchMode = 'put' | 'delete' | 'verify';

/**
 * Below this many routes, one syscall per route is cheaper than staging a batch (the stage is one
 * 256 KiB value: copying it costs about as much as 30 single updates).
 */
export const ROUTE_BATCH_MIN = 32;

/** A source route: the LPM key (struct lb_src_key) and, for put and verify, its value (a group index). A raw op is one. */
export interface RouteEntry {
  readonly key: Buffer;
  readonly value?: Buffer | null | undefined;
}

/**
 * Routes laid out as columns: `count` keys (struct lb_src_key) one after the other in `keys`, and
 * for put and verify their values (4 bytes each) in `values`.
 */
export interface RouteColumns {
  readonly count: number;
  readonly keys: Buffer;
  readonly values?: Buffer | null;
}

/** The first route of a batch that failed: its index in the list given, and the kernel's errno. */
export interface RouteBatchFailure {
  index: number;
  errno: number;
}

const MODES: Record<RouteBatchMode, number> = { put: LB_ROUTE_PUT, delete: LB_ROUTE_DELETE, verify: LB_ROUTE_VERIFY };
const STAGE = LAYOUTS.lb_route_stage;
const KEY_SIZE = LAYOUTS.lb_src_key.size;
const ZERO = Buffer.alloc(4);

/**
 * Runs `mode` over every entry, in order, LB_ROUTE_STAGE_OPS at a time. put: lb_src_routes[key] =
 * value; delete: key removed (an absent key is no failure); verify: a lookup of key answers value.
 * Stops at the first entry that fails and returns it (verify: ENOENT no answer, EBADMSG another
 * value); null when every entry passed. The caller holds the instance lock: the stage is the
 * instance's one.
 */
export function runRouteBatch(dp: DataPlane, mode: RouteBatchMode, entries: readonly RouteEntry[] | RouteColumns): RouteBatchFailure | null {
  const stage = Buffer.alloc(STAGE.size);
  const prog = dp.programs.route_batch;
  const total = isColumns(entries) ? entries.count : entries.length;
  for (let from = 0; from < total; from += LB_ROUTE_STAGE_OPS) {
    const count = Math.min(LB_ROUTE_STAGE_OPS, total - from);
    stage.writeUInt32LE(count, STAGE.fields.count);
    stage.writeUInt32LE(MODES[mode], STAGE.fields.mode);
    if (isColumns(entries)) stageColumns(stage, mode, entries, from, count);
    else stageEntries(stage, mode, entries, from, count);
    dp.maps.lb_route_stage.update(ZERO, stage);
    const done = progTestRunNoData(prog.fd, prog.name, { instance: dp.instance, mode, count });
    if (done !== count) {
      const after = dp.maps.lb_route_stage.lookup(ZERO);
      const errno = after === undefined ? 5 /* EIO */ : -after.readInt32LE(STAGE.fields.err);
      return { index: from + Math.max(0, Math.min(done, count - 1)), errno };
    }
  }
  return null;
}

function isColumns(e: readonly RouteEntry[] | RouteColumns): e is RouteColumns {
  return !Array.isArray(e);
}

function stageEntries(stage: Buffer, mode: RouteBatchMode, entries: readonly RouteEntry[], from: number, count: number): void {
  for (let i = 0; i < count; i++) {
    const { key, value } = entries[from + i]!;
    if (key.length !== KEY_SIZE) throw bpfError('LB_BPF_MAP', `a source route key has ${key.length} bytes, expected ${KEY_SIZE}`, 22, { map: 'lb_src_routes' });
    key.copy(stage, STAGE.fields.keys + i * KEY_SIZE);
    stage.writeUInt32LE(mode === 'delete' || value === null || value === undefined ? 0 : value.readUInt32LE(0), STAGE.fields.groups + i * 4);
  }
}

/** Columns go in with two copies: the stage holds keys and values apart, as the columns do. */
function stageColumns(stage: Buffer, mode: RouteBatchMode, c: RouteColumns, from: number, count: number): void {
  if (c.keys.length < (from + count) * KEY_SIZE || (mode !== 'delete' && (c.values ?? Buffer.alloc(0)).length < (from + count) * 4)) {
    throw bpfError('LB_BPF_MAP', `source route columns hold fewer than ${from + count} routes`, 22, { map: 'lb_src_routes' });
  }
  c.keys.copy(stage, STAGE.fields.keys, from * KEY_SIZE, (from + count) * KEY_SIZE);
  if (mode !== 'delete') c.values!.copy(stage, STAGE.fields.groups, from * 4, (from + count) * 4);
}

/** The key of route i, for messages. */
function keyAt(entries: readonly RouteEntry[] | RouteColumns, i: number): Buffer {
  return isColumns(entries) ? entries.keys.subarray(i * KEY_SIZE, (i + 1) * KEY_SIZE) : entries[i]!.key;
}

/** Like runRouteBatch for put and delete, but a failure throws LB_BPF_MAP naming the route, as a single update would. */
export function writeRoutes(dp: DataPlane, mode: 'put' | 'delete', entries: readonly RouteEntry[] | RouteColumns): void {
  const failed = runRouteBatch(dp, mode, entries);
  if (failed === null) return;
  const key = keyAt(entries, failed.index);
  throw bpfError('LB_BPF_MAP', `${mode === 'put' ? 'bpf_map_update_elem' : 'bpf_map_delete_elem'} on map lb_src_routes (in lb_route_batch)`, failed.errno, {
    map: 'lb_src_routes', op: mode, key: key.toString('hex'), index: failed.index,
  });
}
