// Two generations of configuration in the maps, and the single update that flips between them.
//
// Packets read lb_ctl.active_gen once and then use only that generation's listeners, source routes,
// groups, Maglev tables and settings. A configuration is therefore written into the inactive
// generation (never seen by packets), and becomes live with one lb_ctl update: no packet observes
// half of it.
// This module is the mechanism on the live maps (the encoding is src/core/generation.ts); src/apply/
// adds planning, journaling, rollback and read-back.

import { constants } from 'node:os';
import { LB_GENERATIONS, LB_MAX_GROUPS, decodeCtl, decodeU32, encodeCtl, encodeGroup, encodeSettings, encodeU32 } from '../core/abi.js';
import { EMPTY_SETTINGS, decodeGeneration, encodeGeneration, type EncodedGeneration, type GenerationConfig } from '../core/generation.js';
import { gather, type Column, type Columns } from '../core/columns.js';
import type { DataPlane } from './data-plane.js';
import { ENOTSUPP, MAP_BATCH_OPTS, bpfError, native } from './libbpf.js';

const { ENOENT, EOPNOTSUPP } = constants.errno;

const ZERO_KEY = encodeU32(0);
const EMPTY_GROUP = encodeGroup({ targets: [] });

export function readCtl(dp: DataPlane): { activeGen: number; serial: number } {
  const raw = dp.maps.lb_ctl.lookup(ZERO_KEY);
  return raw ? decodeCtl(raw) : { activeGen: 0, serial: 0 };
}

/** Makes `gen` the generation packets use, with one map update. Returns the new serial. */
export function flipTo(dp: DataPlane, gen: number): number {
  const serial = (readCtl(dp).serial + 1) >>> 0;
  dp.maps.lb_ctl.update(ZERO_KEY, encodeCtl({ activeGen: gen, serial }));
  return serial;
}


/**
 * readGenerationsRaw without the source routes, as columns (src/core/columns.ts): one batch read
 * of each map into contiguous buffers, no Buffer per entry. The apply's read of the inactive (and
 * sometimes the active) generation.
 */
export function readGenerationsColumns(dp: DataPlane, gens: readonly number[]): Array<Omit<Columns, 'srcRoutes'>> {
  const listeners = dp.maps.lb_listeners.lookupBatchColumns();
  const maglev = dp.maps.lb_maglev.lookupBatchColumns(16);
  const groupSize = dp.maps.lb_groups.valueSize;
  return gens.map((gen) => {
    const lo = gen * LB_MAX_GROUPS;
    const inGen = (c: Column, keep: (i: number) => boolean): Column => {
      const order: number[] = [];
      for (let i = 0; i < c.count; i++) if (keep(i)) order.push(i);
      return gather(c, order);
    };
    const half = readGroupHalf(dp, gen);
    const present = presentSlots(half, groupSize);
    const groups = gather({ keySize: 4, valueSize: groupSize, count: LB_MAX_GROUPS, keys: Buffer.alloc(0), values: half }, present, (i, out, at) => out.writeUInt32LE(lo + i, at));
    return {
      settings: dp.maps.lb_settings.lookup(encodeU32(gen)) ?? encodeSettings(EMPTY_SETTINGS),
      listeners: inGen(listeners, (i) => listeners.keys[i * listeners.keySize + 11] === gen),
      groups,
      maglev: inGen(maglev, (i) => {
        const idx = maglev.keys.readUInt32LE(i * 4);
        return idx >= lo && idx < lo + LB_MAX_GROUPS;
      }),
    };
  });
}

/** The raw entries of one generation as they are in the maps now. */
export function readGenerationRaw(dp: DataPlane, gen: number): EncodedGeneration {
  return readGenerationsRaw(dp, [gen])[0]!;
}

/**
 * The raw entries of several generations, with one walk of each hash and trie map for all of
 * them: the listener and source-route maps hold both generations, so reading the active and the
 * inactive one separately would walk them twice. lb_listeners is read with batch lookups; the
 * LPM trie has no batch operations and is walked key by key (two syscalls per entry): with
 * `srcRoutes: false` it is not read at all, and srcRoutes come back empty.
 */
export function readGenerationsRaw(dp: DataPlane, gens: readonly number[], opts: { srcRoutes?: boolean } = {}): EncodedGeneration[] {
  const listeners = dp.maps.lb_listeners.lookupBatch();
  const srcRoutes = opts.srcRoutes !== false ? readSrcRoutesRaw(dp, gens) : gens.map(() => []);
  return gens.map((gen, i) => ({
    settings: dp.maps.lb_settings.lookup(encodeU32(gen)) ?? encodeSettings(EMPTY_SETTINGS),
    listeners: listeners.filter(([k]) => k.readUInt8(11) === gen),
    groups: readGroupsRaw(dp, gen),
    srcRoutes: srcRoutes[i]!,
    maglev: readMaglevRaw(dp, gen),
  }));
}

/**
 * The source routes of each of `gens`, by walking lb_src_routes (an LPM trie has no batch
 * operations: two syscalls per entry). One walk visits both generations' keys; values are looked
 * up only for the ones asked for.
 */
export function readSrcRoutesRaw(dp: DataPlane, gens: readonly number[]): Array<Array<[Buffer, Buffer]>> {
  const out = gens.map((): Array<[Buffer, Buffer]> => []);
  for (const key of dp.maps.lb_src_routes.keys()) {
    const at = gens.indexOf(key.readUInt32LE(4) >>> 31); // the scope's top bit is the generation
    if (at < 0) continue;
    const value = dp.maps.lb_src_routes.lookup(key);
    if (value !== undefined) out[at]!.push([key, value]);
  }
  return out;
}

/**
 * The value lb_src_routes holds for exactly this key, or undefined when the key is absent. An LPM
 * lookup alone answers the longest prefix at most as long as the key's, which may be a shorter
 * prefix covering it; get_next_key tells them apart: for a key the trie does not hold, it answers
 * the trie's first key (postorder), which is never the successor of a key it holds. `firstKey` is
 * that first key (readFirstSrcRoute), read once per check.
 */
export function srcRouteExact(dp: DataPlane, key: Buffer, firstKey: Buffer | null): Buffer | undefined {
  const map = dp.maps.lb_src_routes;
  const value = map.lookup(key);
  if (value === undefined || firstKey === null) return undefined;
  if (key.equals(firstKey)) return value;
  const next = Buffer.alloc(map.keySize);
  const ret = native().bpf_map_get_next_key(map.fd, key, next);
  if (ret === -ENOENT) return value; // the key is held and is the last one
  if (ret < 0) throw bpfError('LB_BPF_MAP', 'bpf_map_get_next_key on map lb_src_routes', -ret, { map: 'lb_src_routes' });
  return next.equals(firstKey) ? undefined : value;
}

/** The first key of lb_src_routes in its walk order, or null when the trie is empty. */
export function readFirstSrcRoute(dp: DataPlane): Buffer | null {
  const next = Buffer.alloc(dp.maps.lb_src_routes.keySize);
  const ret = native().bpf_map_get_next_key(dp.maps.lb_src_routes.fd, null, next);
  if (ret === -ENOENT) return null;
  if (ret < 0) throw bpfError('LB_BPF_MAP', 'bpf_map_get_next_key on map lb_src_routes', -ret, { map: 'lb_src_routes' });
  return next;
}

/** The Maglev tables of one generation (lb_maglev is a hash keyed like lb_groups). */
export function readMaglevRaw(dp: DataPlane, gen: number): Array<[Buffer, Buffer]> {
  const lo = gen * LB_MAX_GROUPS;
  return dp.maps.lb_maglev.lookupBatch(16).filter(([k]) => {
    const idx = decodeU32(k);
    return idx >= lo && idx < lo + LB_MAX_GROUPS;
  });
}

/**
 * The groups of one generation that hold targets (count > 0), read with one batch syscall over
 * that generation's half of lb_groups: the whole array is 32768 slots of 1 KiB, and the apply
 * reads a generation several times.
 */
export function readGroupsRaw(dp: DataPlane, gen: number): Array<[Buffer, Buffer]> {
  // From the generation's half read whole, the present slots found by their count word: no view
  // or callback per slot (16,384 of them, most empty), one copy of just the present values.
  const size = dp.maps.lb_groups.valueSize;
  const half = readGroupHalf(dp, gen);
  const present = presentSlots(half, size);
  const compact = Buffer.allocUnsafe(present.length * size);
  const lo = gen * LB_MAX_GROUPS;
  return present.map((slot, n) => {
    half.copy(compact, n * size, slot * size, (slot + 1) * size);
    return [encodeU32(lo + slot), compact.subarray(n * size, (n + 1) * size)];
  });
}

/**
 * The slots of a half of lb_groups that hold a group (count > 0), in slot order. Through a 32-bit
 * view when the half allows it: readUInt32LE is Node JavaScript, 16,384 calls a half run
 * interpreted while an apply is cold.
 */
function presentSlots(half: Buffer, size: number): number[] {
  const present: number[] = [];
  if (half.byteOffset % 4 === 0 && size % 4 === 0) {
    const w = new Uint32Array(half.buffer, half.byteOffset, (LB_MAX_GROUPS * size) >> 2);
    const stride = size >> 2;
    for (let i = 0; i < LB_MAX_GROUPS; i++) if (w[i * stride] !== 0) present.push(i); // count, little-endian
  } else {
    for (let i = 0; i < LB_MAX_GROUPS; i++) if (half.readUInt32LE(i * size) > 0) present.push(i);
  }
  return present;
}

/** The read buffer of readGroupSlotsRaw: one half of lb_groups (16 MiB), allocated once, reused. */
let slotScratch: { keys: Buffer; values: Buffer } | undefined;

/**
 * The slots of one generation's half of lb_groups that `keep` selects (every slot when none is
 * given, empty ones included), with their exact bytes: one batch syscall into a buffer reused from
 * read to read, and the kept values copied out into one buffer of just them.
 */
/**
 * Every slot of one generation's half of lb_groups, slot i (index gen * LB_MAX_GROUPS + i) at
 * i * valueSize: one batch syscall. The answer is a view of a buffer reused by the next read of
 * lb_groups: use it before that.
 */
export function readGroupHalf(dp: DataPlane, gen: number): Buffer {
  const map = dp.maps.lb_groups;
  const lo = gen * LB_MAX_GROUPS;
  const size = map.valueSize;
  const slots = readGroupScratch(dp, gen);
  if (slots !== null && slots.got === LB_MAX_GROUPS && slots.keys.readUInt32LE(0) === lo && slots.keys.readUInt32LE((LB_MAX_GROUPS - 1) * map.keySize) === lo + LB_MAX_GROUPS - 1) {
    return slots.values.subarray(0, LB_MAX_GROUPS * size);
  }
  // No batch lookup, or an answer out of order: slot by slot from whatever came back.
  const out = Buffer.alloc(LB_MAX_GROUPS * size);
  for (const [k, v] of readGroupSlotsRaw(dp, gen)) v.copy(out, (decodeU32(k) - lo) * size, 0, size);
  return out;
}

/** One batch lookup of a generation's half into the scratch buffers; null when the map has no batch lookup. */
function readGroupScratch(dp: DataPlane, gen: number): { keys: Buffer; values: Buffer; got: number } | null {
  const map = dp.maps.lb_groups;
  const lo = gen * LB_MAX_GROUPS;
  if (slotScratch === undefined || slotScratch.values.length !== map.valueSize * LB_MAX_GROUPS || slotScratch.keys.length !== map.keySize * LB_MAX_GROUPS) {
    // Not zeroed: the kernel fills the first `count` slots, and only those are read.
    slotScratch = { keys: Buffer.allocUnsafeSlow(map.keySize * LB_MAX_GROUPS), values: Buffer.allocUnsafeSlow(map.valueSize * LB_MAX_GROUPS) };
  }
  const { keys, values } = slotScratch;
  const count = [LB_MAX_GROUPS];
  const opts = Buffer.alloc(MAP_BATCH_OPTS.size);
  opts.writeBigUInt64LE(BigInt(MAP_BATCH_OPTS.size), 0);
  // An array's batch token is the last index read: start after lo - 1.
  const ret = native().bpf_map_lookup_batch(map.fd, lo === 0 ? null : encodeU32(lo - 1), Buffer.alloc(8), keys, values, count, opts);
  if (ret < 0 && -ret !== ENOENT) {
    if (-ret !== ENOTSUPP && -ret !== EOPNOTSUPP) throw bpfError('LB_BPF_MAP', 'bpf_map_lookup_batch on map lb_groups', -ret, { map: 'lb_groups', gen });
    return null;
  }
  return { keys, values, got: Math.min(count[0] ?? 0, LB_MAX_GROUPS) };
}

export function readGroupSlotsRaw(dp: DataPlane, gen: number, keep?: (idx: number, value: Buffer) => boolean): Array<[Buffer, Buffer]> {
  const map = dp.maps.lb_groups;
  const lo = gen * LB_MAX_GROUPS;
  const slots = readGroupScratch(dp, gen);
  if (slots === null) {
    return map.lookupBatch().filter(([k, v]) => {
      const idx = decodeU32(k);
      return idx >= lo && idx < lo + LB_MAX_GROUPS && (keep === undefined || keep(idx, v));
    });
  }
  const { keys, values, got } = slots;
  const kept: number[] = [];
  for (let i = 0; i < got; i++) {
    const idx = keys.readUInt32LE(i * map.keySize);
    if (idx < lo || idx >= lo + LB_MAX_GROUPS) continue;
    if (keep === undefined || keep(idx, values.subarray(i * map.valueSize, (i + 1) * map.valueSize))) kept.push(i);
  }
  const size = map.valueSize;
  const compact = Buffer.allocUnsafe(kept.length * size);
  return kept.map((i, n) => {
    values.copy(compact, n * size, i * size, (i + 1) * size);
    return [encodeU32(keys.readUInt32LE(i * map.keySize)), compact.subarray(n * size, (n + 1) * size)];
  });
}


export function readGeneration(dp: DataPlane, gen: number): GenerationConfig {
  return decodeGeneration(gen, readGenerationRaw(dp, gen));
}

/**
 * Replaces the whole content of generation `gen` with `cfg`: writes every entry of cfg, then
 * removes the entries of the old content that cfg does not have. Must only be used on the
 * inactive generation; it does not flip.
 */
export function writeGeneration(dp: DataPlane, gen: number, cfg: GenerationConfig): void {
  if (!Number.isInteger(gen) || gen < 0 || gen >= LB_GENERATIONS) throw new RangeError(`generation must be 0 or 1, got ${gen}`);
  const next = encodeGeneration(gen, cfg);
  const old = readGenerationRaw(dp, gen);
  const keep = (entries: Array<[Buffer, Buffer]>): Set<string> => new Set(entries.map(([k]) => k.toString('hex')));
  const stale = (before: Array<[Buffer, Buffer]>, after: Array<[Buffer, Buffer]>): Buffer[] => {
    const wanted = keep(after);
    return before.map(([k]) => k).filter((k) => !wanted.has(k.toString('hex')));
  };

  dp.maps.lb_settings.update(encodeU32(gen), next.settings);
  dp.maps.lb_groups.updateBatch(next.groups);
  dp.maps.lb_maglev.updateBatch(next.maglev);
  dp.maps.lb_src_routes.updateBatch(next.srcRoutes);
  dp.maps.lb_listeners.updateBatch(next.listeners);
  dp.maps.lb_listeners.deleteBatch(stale(old.listeners, next.listeners));
  for (const k of stale(old.srcRoutes, next.srcRoutes)) dp.maps.lb_src_routes.delete(k);
  dp.maps.lb_maglev.deleteBatch(stale(old.maglev, next.maglev));
  // lb_groups is an array: a removed group is cleared, not deleted.
  dp.maps.lb_groups.updateBatch(stale(old.groups, next.groups).map((k) => [k, EMPTY_GROUP] as [Buffer, Buffer]));
}

/** Writes cfg into the inactive generation and flips to it. Returns the generation now active. */
export function installConfig(dp: DataPlane, cfg: GenerationConfig): number {
  const gen = 1 - readCtl(dp).activeGen;
  writeGeneration(dp, gen, cfg);
  flipTo(dp, gen);
  return gen;
}
