// Two generations of configuration in the maps, and the single update that flips between them.
//
// Packets read lb_ctl.active_gen once and then use only that generation's listeners, source routes,
// groups, Maglev tables and settings. A configuration is therefore written into the inactive
// generation (never seen by packets), and becomes live with one lb_ctl update: no packet observes
// half of it.
// This module is the mechanism on the live maps (the encoding is src/core/generation.ts); src/apply/
// adds planning, journaling, rollback and read-back.

import { constants } from 'node:os';
import { LB_GENERATIONS, LB_MAX_GROUPS, decodeCtl, decodeListenerKey, decodeSrcKey, decodeU32, encodeCtl, encodeGroup, encodeSettings, encodeU32 } from '../core/abi.js';
import { EMPTY_SETTINGS, decodeGeneration, encodeGeneration, type EncodedGeneration, type GenerationConfig } from '../core/generation.js';
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


/** The raw entries of one generation as they are in the maps now. */
export function readGenerationRaw(dp: DataPlane, gen: number): EncodedGeneration {
  return readGenerationsRaw(dp, [gen])[0]!;
}

/**
 * The raw entries of several generations, with one walk of each hash and trie map for all of
 * them: the listener and source-route maps hold both generations, so reading the active and the
 * inactive one separately would walk them twice. lb_listeners is read with batch lookups; the
 * LPM trie has no batch operations and is walked key by key.
 */
export function readGenerationsRaw(dp: DataPlane, gens: readonly number[]): EncodedGeneration[] {
  const listeners = dp.maps.lb_listeners.lookupBatch();
  // The walk visits both generations' keys; values are looked up only for the ones asked for.
  const srcRoutes: Array<[Buffer, Buffer]> = [];
  for (const key of dp.maps.lb_src_routes.keys()) {
    if (!gens.includes(decodeSrcKey(key).gen)) continue;
    const value = dp.maps.lb_src_routes.lookup(key);
    if (value !== undefined) srcRoutes.push([key, value]);
  }
  return gens.map((gen) => ({
    settings: dp.maps.lb_settings.lookup(encodeU32(gen)) ?? encodeSettings(EMPTY_SETTINGS),
    listeners: listeners.filter(([k]) => decodeListenerKey(k).gen === gen),
    groups: readGroupsRaw(dp, gen),
    srcRoutes: srcRoutes.filter(([k]) => decodeSrcKey(k).gen === gen),
    maglev: readMaglevRaw(dp, gen),
  }));
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
  const map = dp.maps.lb_groups;
  const lo = gen * LB_MAX_GROUPS;
  const keys = Buffer.alloc(map.keySize * LB_MAX_GROUPS);
  const values = Buffer.alloc(map.valueSize * LB_MAX_GROUPS);
  const count = [LB_MAX_GROUPS];
  const opts = Buffer.alloc(MAP_BATCH_OPTS.size);
  opts.writeBigUInt64LE(BigInt(MAP_BATCH_OPTS.size), 0);
  // An array's batch token is the last index read: start after lo - 1.
  const ret = native().bpf_map_lookup_batch(map.fd, lo === 0 ? null : encodeU32(lo - 1), Buffer.alloc(8), keys, values, count, opts);
  if (ret < 0 && -ret !== ENOENT) {
    if (-ret !== ENOTSUPP && -ret !== EOPNOTSUPP) throw bpfError('LB_BPF_MAP', 'bpf_map_lookup_batch on map lb_groups', -ret, { map: 'lb_groups', gen });
    return map.lookupBatch().filter(([k, v]) => {
      const idx = decodeU32(k);
      return idx >= lo && idx < lo + LB_MAX_GROUPS && v.readUInt32LE(0) > 0;
    });
  }
  const out: Array<[Buffer, Buffer]> = [];
  const got = Math.min(count[0] ?? 0, LB_MAX_GROUPS);
  for (let i = 0; i < got; i++) {
    const off = i * map.valueSize;
    if (values.readUInt32LE(off) === 0) continue;
    const idx = keys.readUInt32LE(i * map.keySize);
    if (idx < lo || idx >= lo + LB_MAX_GROUPS) continue;
    out.push([Buffer.from(keys.subarray(i * map.keySize, (i + 1) * map.keySize)), Buffer.from(values.subarray(off, off + map.valueSize))]);
  }
  return out;
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
