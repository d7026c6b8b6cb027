// Which entries of a GenerationConfig changed from one configuration to the next, found by
// comparing the objects: the first step of a delta apply (src/apply/delta.ts), which writes and
// hashes only what changed instead of encoding, sorting and hashing the whole table.
//
// Per list: the common prefix and suffix are skipped; in the middle, lists of equal length are
// compared position by position (edits scattered over the table); otherwise, or when that finds
// more than 64, the shortest edit script of up to 64 edits is searched (an entry removed here and
// another added there); failing both, the in-place differences, or the whole middle, count. Every position not in
// the result is paired with an equal entry on the other side, so every key whose entry differs is
// among the changed positions of one side or the other (a key is unique in a list); positions
// are only a way to find them, and a poor alignment costs more positions, never a missed change.

import type { GenerationConfig } from './generation.js';

export type DeltaList = 'listeners' | 'groups' | 'srcRoutes' | 'maglev';
export const DELTA_LISTS: readonly DeltaList[] = ['listeners', 'groups', 'srcRoutes', 'maglev'];

/** Changed positions of each list in the previous and the next configuration. */
export interface ConfigDelta {
  settings: boolean;
  prev: Record<DeltaList, number[]>;
  next: Record<DeltaList, number[]>;
}

/**
 * Structural equality of configuration data (plain objects, arrays, Buffers, primitives): for the
 * settings, compared once per apply.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    n++;
    if (!sameData(x[k], y[k])) return false;
  }
  for (const _k in y) n--;
  return n === 0;
}

type Entry<L extends DeltaList> = NonNullable<GenerationConfig[L]>[number];

// The entries are compared field by field (a generic walk costs ~10x more at 100,000 entries). The
// FIELDS records are checked by the compiler against the types: a field added to an entry type
// fails the build here until its comparison is added below.
type Fields<T> = { readonly [K in keyof T]-?: true };
const LISTENER_FIELDS: Fields<Entry<'listeners'>> & Fields<Entry<'listeners'>['key']> & Fields<Entry<'listeners'>['value']> = {
  key: true, value: true, ifindex: true, vip: true, port: true, proto: true, listenerId: true, defaultGroup: true, flags: true,
};
const GROUP_FIELDS: Fields<Entry<'groups'>> & Fields<Entry<'groups'>['group']> & Fields<Entry<'groups'>['group']['targets'][number]> = {
  id: true, group: true, targets: true, addr: true, port: true, weight: true, targetId: true,
};
const ROUTE_FIELDS: Fields<Entry<'srcRoutes'>> = { listenerId: true, addr: true, prefixLen: true, group: true };
const MAGLEV_FIELDS: Fields<Entry<'maglev'>> = { group: true, table: true };
void [LISTENER_FIELDS, GROUP_FIELDS, ROUTE_FIELDS, MAGLEV_FIELDS];

const SAME: { [L in DeltaList]: (a: Entry<L>, b: Entry<L>) => boolean } = {
  listeners: (a, b) => a === b || (a.key.ifindex === b.key.ifindex && a.key.vip === b.key.vip && a.key.port === b.key.port && a.key.proto === b.key.proto
    && a.value.listenerId === b.value.listenerId && a.value.defaultGroup === b.value.defaultGroup && a.value.flags === b.value.flags),
  groups: (a, b) => {
    if (a === b) return true;
    if (a.id !== b.id || a.group.targets.length !== b.group.targets.length) return false;
    for (let i = 0; i < a.group.targets.length; i++) {
      const x = a.group.targets[i]!;
      const y = b.group.targets[i]!;
      if (x.addr !== y.addr || x.port !== y.port || x.weight !== y.weight || x.targetId !== y.targetId) return false;
    }
    return true;
  },
  srcRoutes: (a, b) => a === b || (a.listenerId === b.listenerId && a.addr === b.addr && a.prefixLen === b.prefixLen && a.group === b.group),
  maglev: (a, b) => a === b || (a.group === b.group && a.table.equals(b.table)),
};

/** Positions of a and b outside the common prefix and suffix. */
function trimmed<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): { head: number; aEnd: number; bEnd: number } {
  let head = 0;
  const shorter = Math.min(a.length, b.length);
  while (head < shorter && same(a[head]!, b[head]!)) head++;
  let tail = 0;
  while (tail < shorter - head && same(a[a.length - 1 - tail]!, b[b.length - 1 - tail]!)) tail++;
  return { head, aEnd: a.length - tail, bEnd: b.length - tail };
}

const range = (from: number, to: number): number[] => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/**
 * The shortest edit script between a[from, aEnd) and b[from, bEnd) (Myers' O((N+M)·D) greedy
 * algorithm) when it has at most maxD edits: the positions only in a and only in b. null beyond.
 */
function editScript<T>(a: readonly T[], b: readonly T[], from: number, aEnd: number, bEnd: number, same: (x: T, y: T) => boolean, maxD: number):
  { prev: number[]; next: number[] } | null {
  const n = aEnd - from;
  const m = bEnd - from;
  const off = maxD + 1;
  const v = new Int32Array(2 * maxD + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= maxD; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && same(a[from + x]!, b[from + y]!)) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        // Walk back through the trace: each step of d is one position only in a or only in b.
        const prev: number[] = [];
        const next: number[] = [];
        let [cx, cy] = [n, m];
        for (let e = d; e > 0; e--) {
          const w = trace[e]!;
          const ck = cx - cy;
          const down = ck === -e || (ck !== e && w[off + ck - 1]! < w[off + ck + 1]!);
          const pk = down ? ck + 1 : ck - 1;
          const px = w[off + pk]!;
          const py = px - pk;
          if (down) next.push(from + py);
          else prev.push(from + px);
          [cx, cy] = [px, py];
        }
        return { prev: prev.reverse(), next: next.reverse() };
      }
    }
  }
  return null;
}

/** At most this many edits are searched for when positions do not line up (each search step costs a pass). */
const MAX_EDITS = 64;

function listDelta<T>(prev: readonly T[], next: readonly T[], same: (a: T, b: T) => boolean): { prev: number[]; next: number[] } {
  const { head, aEnd, bEnd } = trimmed(prev, next, same);
  let inPlace: number[] | null = null;
  if (aEnd - head === bEnd - head) {
    // Equal lengths: in place (edits scattered over a table line up there).
    inPlace = [];
    for (let i = head; i < aEnd; i++) if (!same(prev[i]!, next[i]!)) inPlace.push(i);
    if (inPlace.length <= MAX_EDITS) return { prev: inPlace, next: inPlace.slice() };
  }
  // An entry removed here and another added there: the few edits between them; else the
  // positions that differ in place; else the whole middle. An edit script beats the in-place
  // positions only where they form long runs (a shift): each isolated one costs it two edits, so
  // with more than MAX_EDITS / 2 runs it cannot succeed, and is not searched (a pass per edit).
  let runs = 0;
  if (inPlace !== null) for (let i = 0; i < inPlace.length; i++) if (i === 0 || inPlace[i - 1]! !== inPlace[i]! - 1) runs++;
  const script = inPlace !== null && runs > MAX_EDITS / 2 ? null : editScript(prev, next, head, aEnd, bEnd, same, MAX_EDITS);
  if (script !== null) return script;
  if (inPlace !== null) return { prev: inPlace, next: inPlace.slice() };
  return { prev: range(head, aEnd), next: range(head, bEnd) };
}

export function configDelta(prev: GenerationConfig, next: GenerationConfig): ConfigDelta {
  const d: ConfigDelta = {
    settings: !sameData(prev.settings, next.settings),
    prev: { listeners: [], groups: [], srcRoutes: [], maglev: [] },
    next: { listeners: [], groups: [], srcRoutes: [], maglev: [] },
  };
  const put = (list: DeltaList, r: { prev: number[]; next: number[] }): void => {
    d.prev[list] = r.prev;
    d.next[list] = r.next;
  };
  put('listeners', listDelta(prev.listeners, next.listeners, SAME.listeners));
  put('groups', listDelta(prev.groups, next.groups, SAME.groups));
  put('srcRoutes', listDelta(prev.srcRoutes, next.srcRoutes, SAME.srcRoutes));
  put('maglev', listDelta(prev.maglev ?? [], next.maglev ?? [], SAME.maglev));
  return d;
}

/** Changed positions on both sides, settings not counted. */
export function deltaSize(d: ConfigDelta): number {
  return DELTA_LISTS.reduce((n, l) => n + d.prev[l].length + d.next[l].length, 0);
}

/** The configuration's entries at the delta's positions of one side (settings kept): a small config to encode. */
export function pickEntries(cfg: GenerationConfig, at: Record<DeltaList, number[]>): GenerationConfig {
  const maglev = cfg.maglev ?? [];
  return {
    settings: cfg.settings,
    listeners: at.listeners.map((i) => cfg.listeners[i]!),
    groups: at.groups.map((i) => cfg.groups[i]!),
    srcRoutes: at.srcRoutes.map((i) => cfg.srcRoutes[i]!),
    maglev: at.maglev.map((i) => maglev[i]!),
  };
}
