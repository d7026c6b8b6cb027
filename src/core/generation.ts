// One generation's configuration: its decoded form (GenerationConfig) and the map entries that
// hold it (EncodedGeneration), with the pure codecs between them. Writing, reading and flipping
// generations in the live maps is the shell's part: src/dataplane/generation.ts.

import {
  LB_MAGLEV_SIZE, LB_MAX_GROUPS, decodeGroup, decodeListener, decodeListenerKey, decodeSettings,
  decodeSrcKey, decodeU32, encodeGroup, encodeListener, encodeListenerKey, encodeSettings,
  encodeMaglev, encodeSrcKey, encodeU32, groupIndex,
  type Group, type Listener, type ListenerKey, type Settings,
} from './abi.js';

/** Everything one generation holds, decoded. Order is not significant. */
export interface GenerationConfig {
  settings: Settings;
  listeners: Array<{ key: Omit<ListenerKey, 'gen'>; value: Listener }>;
  groups: Array<{ id: number; group: Group }>;
  srcRoutes: Array<{ listenerId: number; addr: string; prefixLen: number; group: number }>;
  /**
   * Maglev tables (lb_maglev) of groups of persistent listeners, by group id: LB_MAGLEV_SIZE bytes,
   * each a target index of that group. Derived from the groups (src/core/compile/encode.ts builds them);
   * absent = none.
   */
  maglev?: Array<{ group: number; table: Buffer }>;
}

export const EMPTY_SETTINGS: Settings = { tcpIdleSec: 0, udpIdleSec: 0, tcpFinSec: 0, flags: 0 };

/** Encoded entries of one generation, keyed by map: what writeGeneration puts in the maps. */
export interface EncodedGeneration {
  settings: Buffer;
  listeners: Array<[Buffer, Buffer]>;
  groups: Array<[Buffer, Buffer]>;
  srcRoutes: Array<[Buffer, Buffer]>;
  maglev: Array<[Buffer, Buffer]>;
}

export function encodeGeneration(gen: number, cfg: GenerationConfig): EncodedGeneration {
  return {
    settings: encodeSettings(cfg.settings),
    listeners: cfg.listeners.map((l) => [encodeListenerKey({ ...l.key, gen }), encodeListener(l.value)]),
    groups: cfg.groups.map((g) => [encodeU32(groupIndex(gen, g.id)), encodeGroup(g.group)]),
    srcRoutes: cfg.srcRoutes.map((r) => [
      encodeSrcKey({ gen, listenerId: r.listenerId, addr: r.addr, prefixLen: r.prefixLen }),
      encodeU32(r.group),
    ]),
    maglev: (cfg.maglev ?? []).map((m) => [encodeU32(groupIndex(gen, m.group)), encodeMaglev(m.table)]),
  };
}

export function decodeGeneration(gen: number, raw: EncodedGeneration): GenerationConfig {
  return {
    settings: decodeSettings(raw.settings),
    listeners: raw.listeners.map(([k, v]) => {
      const { gen: _gen, ...key } = decodeListenerKey(k);
      return { key, value: decodeListener(v) };
    }),
    groups: raw.groups.map(([k, v]) => ({ id: decodeU32(k) - gen * LB_MAX_GROUPS, group: decodeGroup(v) })),
    srcRoutes: raw.srcRoutes.map(([k, v]) => {
      const key = decodeSrcKey(k);
      return { listenerId: key.listenerId, addr: key.addr, prefixLen: key.prefixLen, group: decodeU32(v) };
    }),
    maglev: raw.maglev.map(([k, v]) => ({ group: decodeU32(k) - gen * LB_MAX_GROUPS, table: Buffer.from(v.subarray(0, LB_MAGLEV_SIZE)) })),
  };
}

/**
 * The same entries keyed for the other generation: values are shared, keys copied with their
 * generation changed (lb_listeners: the gen byte; lb_groups, lb_maglev: the slot index's half;
 * lb_src_routes: the scope's top bit). Cheaper than encoding the configuration again.
 */
export function retargetGeneration(raw: EncodedGeneration, from: number, to: number): EncodedGeneration {
  if (from === to) return raw;
  const slot = (list: Array<[Buffer, Buffer]>): Array<[Buffer, Buffer]> =>
    list.map(([k, v]) => [encodeU32(decodeU32(k) - from * LB_MAX_GROUPS + to * LB_MAX_GROUPS), v]);
  return {
    settings: raw.settings,
    listeners: raw.listeners.map(([k, v]) => {
      const key = Buffer.from(k);
      key.writeUInt8(to, 11);
      return [key, v];
    }),
    groups: slot(raw.groups),
    srcRoutes: raw.srcRoutes.map(([k, v]) => {
      const key = Buffer.from(k);
      key.writeUInt32LE(((key.readUInt32LE(4) & 0x7fffffff) | (to << 31)) >>> 0, 4);
      return [key, v];
    }),
    maglev: slot(raw.maglev),
  };
}

