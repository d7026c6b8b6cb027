// The delta apply: in a process that applies again and again (the daemon), what both generations
// hold is remembered from the applies this process made, so the next apply finds the change by
// comparing its configuration with the previous one, and writes, journals, hashes and reads back
// only the changed entries, instead of encoding, sorting and hashing the whole table.
//
// What is remembered, per instance, after an apply of this process completed:
// - both generations' entries in canonical columns (keyed for their generation) and digest states;
// - the configuration the active generation holds (the GenerationConfig the caller passed: the
//   caller must not change it afterwards);
// - the keys where the two generations may differ: the keys the last apply's configuration
//   changed. The inactive generation holds the configuration before last, so it differs from the
//   desired one only at those keys and at the keys this apply's configuration changes.
// It is used only while lb_ctl shows the serial and active generation this process left, and every
// config map has the kernel id it had: another apply (another process, a rollback, a reload) flips
// lb_ctl or replaces the maps. Any failed apply forgets it. Like the routes records
// (src/state/routes-record.ts), it trusts that nothing but lb's apply writes the config maps; an
// apply whose configuration did not change takes the full path, which reads the maps and heals
// drift. The journal, the read-back and recovery are those of a full apply (docs/apply.md).

import { configDelta, deltaSize, pickEntries, DELTA_LISTS, type DeltaList } from '../core/config-delta.js';
import {
  canonicalColumns, compareKeys, encodeColumns, SHAPES, type Column, type Columns,
} from '../core/columns.js';
import { emptyKeys, entriesAt, patchColumn, retarget, sortedUniqueKeys, unionKeys } from '../core/columns-delta.js';
import { copyDigest, digestEntry, digestHex, type DigestState } from '../core/generation-digest.js';
import { encodeSettings } from '../core/abi.js';
import type { GenerationConfig } from '../core/generation.js';
import type { Ctl, DataPlane } from '../dataplane/index.js';
import { configMapIds } from '../state/known-live.js';
import type { RecordBody } from '../state/routes-record.js';

/** One generation's content: canonical columns keyed for that generation, and their digest state. */
export interface GenContent {
  columns: Columns;
  digest: DigestState;
  /** Its routes as last written to its routes record (src/state/routes-record.ts), for reuse. */
  routesBody?: RecordBody;
}

export type KeySets = Record<DeltaList, Column>;

export interface AppliedState {
  mapIds: string;
  activeGen: number;
  serial: number;
  /** What the active generation holds; undefined when not known in configuration terms. */
  config: GenerationConfig | undefined;
  /** By generation; undefined when not known. */
  gens: [GenContent | undefined, GenContent | undefined];
  /** Keys (keyed for generation 0) outside which the two generations are equal; null: not known. */
  differ: KeySets | null;
}

const remembered = new Map<string, AppliedState>();

/** A delta is not taken when it touches more than this share of the entries: the full path is as fast then. */
const MAX_SHARE = 0.25;

/** The maps whose kernel ids tell a replaced instance: the same that tell the daemon's plan (src/state/known-live.ts). */
const mapIdsOf = configMapIds;

/** What this process remembers of the instance, if lb_ctl and the maps show nothing else wrote since. */
export function takeApplied(instance: string, dp: DataPlane, ctl: Ctl): AppliedState | undefined {
  const s = remembered.get(instance);
  // Taken out: whatever happens next, only a completed apply puts a state back.
  remembered.delete(instance);
  if (s === undefined || s.mapIds !== mapIdsOf(dp) || s.activeGen !== ctl.activeGen || s.serial !== ctl.serial) return undefined;
  return s;
}

export function rememberApplied(instance: string, dp: DataPlane, s: Omit<AppliedState, 'mapIds'>): void {
  remembered.set(instance, { ...s, mapIds: mapIdsOf(dp) });
}

/** Forgets the instance (a test, or a process that gives the instance up). */
export function forgetApplied(instance: string): void {
  remembered.delete(instance);
}

/** The keys (for `gen`) of the entries at the delta's positions on both sides, per list. */
function changedKeys(gen: number, prev: GenerationConfig, next: GenerationConfig, d: ReturnType<typeof configDelta>): { keys: KeySets; nextEntries: Columns } {
  const before = encodeColumns(gen, pickEntries(prev, d.prev));
  const afterAll = encodeColumns(gen, pickEntries(next, d.next));
  const keys = {} as KeySets;
  for (const list of DELTA_LISTS) keys[list] = unionKeys(sortedUniqueKeys(before[list]), sortedUniqueKeys(afterAll[list]));
  // In canonical form: sorted, and a group without targets is an absent group.
  return { keys, nextEntries: canonicalColumns(afterAll) };
}

/** The keys, keyed for generation 0, where `prev` and `next` may differ (for the next apply's `differ`). */
export function differingKeys(prev: GenerationConfig, next: GenerationConfig): KeySets {
  return changedKeys(0, prev, next, configDelta(prev, next)).keys;
}

export function noKeys(): KeySets {
  return { listeners: emptyKeys(SHAPES.listeners.keySize), groups: emptyKeys(4), srcRoutes: emptyKeys(SHAPES.srcRoutes.keySize), maglev: emptyKeys(4) };
}

export interface DeltaPlan {
  /** The inactive generation's settings and its entries at the touched keys (for the diff and the journal). */
  current: Columns;
  /** The desired settings and entries at the touched keys (the diff's other side). */
  want: Columns;
  /** The inactive generation whole, as known before the apply (for the rollback's check). */
  inactive: Columns;
  /**
   * The desired generation whole: each list is the inactive one patched at the touched keys, a copy
   * made when first read (a read-back that decodes needs it; a plain one does not).
   */
  desired: Columns;
  /**
   * The desired generation whole, once the apply has completed: lists not copied yet are patched in
   * place where the change replaces values only (the inactive columns are not needed any more).
   */
  commit(): Columns;
  digest: DigestState;
  desiredDigest: string;
  /** This apply's changed keys, for generation 0: the next apply's `differ`. */
  changed: KeySets;
}

/** Sorted entries of two sorted columns with no key in common. */
function mergeEntries(a: Column, b: Column): Column {
  const { keySize, valueSize } = a;
  const count = a.count + b.count;
  const out: Column = { keySize, valueSize, count, keys: Buffer.allocUnsafe(count * keySize), values: Buffer.allocUnsafe(count * valueSize) };
  let i = 0;
  let j = 0;
  for (let n = 0; n < count; n++) {
    const [c, at] = j >= b.count || (i < a.count && compareKeys(a, i, b, j) < 0) ? [a, i++] : [b, j++];
    c.keys.copy(out.keys, n * keySize, at * keySize, (at + 1) * keySize);
    c.values.copy(out.values, n * valueSize, at * valueSize, (at + 1) * valueSize);
  }
  return out;
}

/** Keys of the sorted set `a` that are not in the sorted set `b`. */
function minusKeys(a: Column, b: Column): Column {
  const keep: number[] = [];
  let j = 0;
  for (let i = 0; i < a.count; i++) {
    while (j < b.count && compareKeys(b, j, a, i) < 0) j++;
    if (j < b.count && compareKeys(b, j, a, i) === 0) continue;
    keep.push(i);
  }
  const keys = Buffer.allocUnsafe(keep.length * a.keySize);
  keep.forEach((i, n) => a.keys.copy(keys, n * a.keySize, i * a.keySize, (i + 1) * a.keySize));
  return { keySize: a.keySize, valueSize: 0, count: keep.length, keys, values: Buffer.alloc(0) };
}

/**
 * The delta apply of `cfg` into generation `targetGen`, or null when the full path must run: what
 * the generations hold is not known, the configuration did not change, or the change touches more
 * than a quarter of the entries.
 */
export function planDelta(s: AppliedState, targetGen: number, cfg: GenerationConfig): DeltaPlan | null {
  const activeGen = 1 - targetGen;
  const inactive = s.gens[targetGen];
  const active = s.gens[activeGen];
  if (inactive === undefined || active === undefined || s.config === undefined || s.differ === null) return null;
  const d = configDelta(s.config, cfg);
  const entries = DELTA_LISTS.reduce((n, l) => n + inactive.columns[l].count, 0);
  const differing = DELTA_LISTS.reduce((n, l) => n + s.differ![l].count, 0);
  const size = deltaSize(d);
  if ((size === 0 && !d.settings) || size + differing > MAX_SHARE * Math.max(entries, 1)) return null;

  const { keys: now, nextEntries } = changedKeys(targetGen, s.config, cfg, d);
  const current = { settings: inactive.columns.settings } as Columns;
  const want = { settings: encodeSettings(cfg.settings) } as Columns;
  const digest = copyDigest(inactive.digest);
  const changed = {} as KeySets;
  const touched = {} as KeySets;
  const at = {} as Record<DeltaList, Int32Array>;
  for (const list of DELTA_LISTS) {
    const differ = retarget(list, s.differ[list], targetGen);
    touched[list] = unionKeys(now[list], differ);
    // Keys only the last apply changed: this configuration holds there what the active generation holds.
    const carried = entriesAt(active.columns[list], retarget(list, minusKeys(differ, now[list]), activeGen)).column;
    want[list] = mergeEntries(nextEntries[list], retarget(list, carried, targetGen));
    ({ column: current[list], index: at[list] } = entriesAt(inactive.columns[list], touched[list]));
    for (let i = 0; i < current[list].count; i++) digestEntry(digest, list, -1, current[list], i);
    for (let i = 0; i < want[list].count; i++) digestEntry(digest, list, 1, want[list], i);
    changed[list] = retarget(list, now[list], 0);
  }
  const copies: Partial<Columns> = {};
  const copy = (list: DeltaList): Column => (copies[list] ??= patchColumn(inactive.columns[list], touched[list], want[list]));
  const desired: Columns = {
    settings: want.settings,
    get listeners() { return copy('listeners'); },
    get groups() { return copy('groups'); },
    get srcRoutes() { return copy('srcRoutes'); },
    get maglev() { return copy('maglev'); },
  };
  const commit = (): Columns => {
    const out = { settings: want.settings } as Columns;
    for (const list of DELTA_LISTS) {
      const c = inactive.columns[list];
      const cur = current[list];
      const w = want[list];
      out[list] = copies[list] ?? (sameKeys(cur, w) ? overwriteValues(c, at[list], w) : copy(list));
    }
    return out;
  };
  return { current, want, inactive: inactive.columns, desired, commit, digest, desiredDigest: digestHex(digest, want.settings), changed };
}

/** Whether two sorted columns hold the same keys. */
function sameKeys(a: Column, b: Column): boolean {
  if (a.count !== b.count) return false;
  for (let i = 0; i < a.count; i++) if (compareKeys(a, i, b, i) !== 0) return false;
  return true;
}

/** `c` with the values at `at` replaced by those of `w` (same keys, same order): in place. */
function overwriteValues(c: Column, at: Int32Array, w: Column): Column {
  for (let i = 0; i < at.length; i++) w.values.copy(c.values, at[i]! * c.valueSize, i * w.valueSize, (i + 1) * w.valueSize);
  return c;
}
