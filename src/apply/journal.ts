// The apply journal, /run/lb/<instance>/journal.json: written (fsync'ed, atomic rename) before an
// apply changes anything, removed when the apply has finished or been rolled back. If it is found
// later, an apply was interrupted, and it holds everything recovery needs to decide which side of
// the flip the apply died on and to finish it or undo it exactly (src/apply/recover.ts).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import type { Inventory } from '../state/inventory.js';
import { removeFileDurably, writeFileAtomic } from '../state/run-dir.js';
import { compareKeys, type OpRun } from '../core/columns.js';
import { CONFIG_MAPS, type ConfigMapName, type SavedEntry } from '../core/ops.js';

export const JOURNAL_FORMAT_VERSION = 1;

export interface Journal {
  instance: string;
  pid: number;
  startedAt: string;
  /** Network namespace of the apply (readlink /proc/thread-self/ns/net): interface names mean something only there. */
  netns: string;
  /** The generation the apply writes (the inactive one when it started). */
  targetGen: number;
  /** lb_ctl when the apply started. */
  oldCtl: { activeGen: number; serial: number };
  /** lb_ctl.serial right after the apply's flip: finding it there means the flip happened. */
  postFlipSerial: number;
  /** sha256 of the desired generation's canonical bytes (checked before finishing a recovery). */
  desiredDigest: string;
  /** The entries of the target generation the apply may touch, as they were before. */
  saved: SavedEntry[];
  /** Interfaces the apply attaches that were not attached before (detached again on rollback). */
  attach: string[];
  /** Interfaces to detach once the new configuration is live. */
  detach: string[];
  /** The inventory to write when the apply completes. */
  inventory: Inventory;
}

interface JournalJson extends Omit<Journal, 'saved'> {
  format_version: number;
  /**
   * Consecutive saved entries of one map with the same saved value are one item: `key` holds their
   * keys one after the other, `keySize` bytes each (absent: one key). `zeros`: that many zero bytes
   * follow `value` (absent: none). A full apply into an empty generation saves 100,000 entries
   * that are absent keys and empty 1 KiB group slots: a few items, not 100,000.
   */
  saved: SavedJson[];
}

/** Saved entries as the journal stores them (see JournalJson.saved). */
export interface SavedJson { map: ConfigMapName; key: string; keySize?: number; value: string | null; zeros?: number }

/**
 * A journal whose saved entries are already in the journal's form: the apply builds them straight
 * from its op runs (savedItemsOfRuns) instead of one SavedEntry per op; savedEntriesOf gives the
 * entries back when a rollback needs them.
 */
export interface JournalDraft extends Omit<Journal, 'saved'> {
  savedItems: SavedJson[];
}

/** Zero bytes at the end of a value, when enough to be worth leaving out of the journal. */
function trailingZeros(value: Buffer): number {
  let end = value.length;
  while (end > 0 && value[end - 1] === 0) end--;
  return value.length - end >= 16 ? value.length - end : 0;
}

export function journalPath(dir: string): string {
  return join(dir, 'journal.json');
}

export function encodeJournal(j: Journal | JournalDraft): string {
  const { savedItems, saved, ...rest } = { savedItems: undefined, saved: undefined, ...j };
  const json: JournalJson = { format_version: JOURNAL_FORMAT_VERSION, ...rest, saved: savedItems ?? savedRuns(saved ?? []) };
  return `${JSON.stringify(json)}\n`;
}

/** The saved entries of journal items (trusted: made by this process, or checked by decodeJournal). */
export function savedEntriesOf(items: readonly SavedJson[]): SavedEntry[] {
  const saved: SavedEntry[] = [];
  for (const s of items) {
    const keys = Buffer.from(s.key, 'hex');
    const keySize = s.keySize ?? keys.length;
    const hex = s.value === null ? null : Buffer.from(s.value, 'hex');
    const value = hex !== null && s.zeros ? Buffer.concat([hex, Buffer.alloc(s.zeros)]) : hex;
    for (let off = 0; off < keys.length; off += keySize) saved.push({ map: s.map, key: keys.subarray(off, off + keySize), value });
  }
  return saved;
}

/** The journal with its saved entries as entries. */
export function journalOf(draft: JournalDraft): Journal {
  const { savedItems, ...rest } = draft;
  return { ...rest, saved: savedEntriesOf(savedItems) };
}

/**
 * The saved items of op runs: every key the runs touch with its value before the apply, given by
 * `previous` (null: absent), consecutive keys of one run with the same previous value in one item.
 * A key repeated right after itself (a desired generation with a key twice) is saved once.
 */
export function savedItemsOfRuns(runs: readonly OpRun[], previous: (run: OpRun, i: number) => Buffer | null): SavedJson[] {
  const out: SavedJson[] = [];
  for (const run of runs) {
    const ks = run.keySize;
    // Items are ranges [start, end) of the run's keys: their hex is one slice of the key column.
    let start = -1;
    let value: Buffer | null = null;
    const flush = (end: number): void => {
      if (start < 0 || end <= start) return;
      const item: SavedJson = { map: run.map, key: run.keys.toString('hex', start * ks, end * ks), value: null };
      if (end - start > 1) item.keySize = ks;
      if (value !== null) {
        const zeros = trailingZeros(value);
        item.value = value.toString('hex', 0, value.length - zeros);
        if (zeros > 0) item.zeros = zeros;
      }
      out.push(item);
      start = -1;
    };
    for (let i = 0; i < run.count; i++) {
      if (i > 0 && compareKeys(run, i - 1, run, i) === 0) {
        flush(i); // the repeated key is saved once, with the first
        continue;
      }
      const v = previous(run, i);
      if (start < 0 || (v === null ? value !== null : value === null || !value.equals(v))) {
        flush(i);
        start = i;
        value = v;
      }
    }
    flush(run.count);
  }
  return out;
}

function savedRuns(saved: readonly SavedEntry[]): SavedJson[] {
  const out: SavedJson[] = [];
  const sameRun = (a: SavedEntry, b: SavedEntry): boolean => a.map === b.map && a.key.length === b.key.length
    && (a.value === null ? b.value === null : b.value !== null && a.value.equals(b.value));
  for (let i = 0; i < saved.length;) {
    const first = saved[i]!;
    let end = i + 1;
    while (end < saved.length && sameRun(first, saved[end]!)) end++;
    const keys = end - i === 1 ? first.key.toString('hex') : Buffer.concat(saved.slice(i, end).map((s) => s.key)).toString('hex');
    const item: SavedJson = { map: first.map, key: keys, value: null };
    if (end - i > 1) item.keySize = first.key.length;
    if (first.value !== null) {
      const zeros = trailingZeros(first.value);
      item.value = first.value.toString('hex', 0, first.value.length - zeros);
      if (zeros > 0) item.zeros = zeros;
    }
    out.push(item);
    i = end;
  }
  return out;
}

const isHex = (s: unknown): s is string => typeof s === 'string' && /^([0-9a-f]{2})*$/.test(s);
const isNum = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');

export function decodeJournal(text: string, path = 'journal'): Journal {
  const bad = (why: string): LbError => new LbError('LB_APPLY_JOURNAL',
    `${path} is not a usable apply journal (${why}); inspect it, then remove it by hand (\`lb down\` removes the instance altogether)`, { path });
  let v: Partial<JournalJson>;
  try {
    v = JSON.parse(text) as Partial<JournalJson>;
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  if (v.format_version !== JOURNAL_FORMAT_VERSION) throw bad(`format_version ${String(v.format_version)}, expected ${JOURNAL_FORMAT_VERSION}`);
  if (!isNum(v.targetGen) || v.targetGen > 1) throw bad('targetGen');
  if (!v.oldCtl || !isNum(v.oldCtl.activeGen) || !isNum(v.oldCtl.serial)) throw bad('oldCtl');
  if (!isNum(v.postFlipSerial)) throw bad('postFlipSerial');
  if (typeof v.desiredDigest !== 'string') throw bad('desiredDigest');
  if (!isStrings(v.attach) || !isStrings(v.detach)) throw bad('attach/detach');
  if (!Array.isArray(v.saved)) throw bad('saved');
  if (typeof v.inventory !== 'object' || v.inventory === null) throw bad('inventory');
  const saved: SavedEntry[] = [];
  v.saved.forEach((s, i) => {
    if (!CONFIG_MAPS.includes(s.map) || !isHex(s.key) || !(s.value === null || isHex(s.value))) throw bad(`saved[${i}]`);
    if (s.zeros !== undefined && (!isNum(s.zeros) || s.value === null || s.zeros > 1 << 20)) throw bad(`saved[${i}].zeros`);
    const keys = Buffer.from(s.key, 'hex');
    const keySize = s.keySize ?? keys.length;
    if (!isNum(keySize) || keySize === 0 || keys.length % keySize !== 0) throw bad(`saved[${i}].keySize`);
    const hex = s.value === null ? null : Buffer.from(s.value, 'hex');
    const value = hex !== null && s.zeros ? Buffer.concat([hex, Buffer.alloc(s.zeros)]) : hex;
    for (let off = 0; off < keys.length; off += keySize) saved.push({ map: s.map, key: keys.subarray(off, off + keySize), value });
  });
  return {
    instance: String(v.instance), pid: Number(v.pid), startedAt: String(v.startedAt), netns: String(v.netns), targetGen: v.targetGen,
    oldCtl: { activeGen: v.oldCtl.activeGen, serial: v.oldCtl.serial }, postFlipSerial: v.postFlipSerial,
    desiredDigest: v.desiredDigest, saved, attach: v.attach, detach: v.detach, inventory: v.inventory,
  };
}

/** Writes the journal durably: after this returns, a crash leaves exactly this journal behind. */
export function writeJournal(dir: string, journal: Journal | JournalDraft): void {
  writeFileAtomic(journalPath(dir), encodeJournal(journal));
}

/** The journal in `dir`, or null. Throws LB_APPLY_JOURNAL when one exists but cannot be used. */
export function readJournal(dir: string): Journal | null {
  const path = journalPath(dir);
  if (!existsSync(path)) return null;
  return decodeJournal(readFileSync(path, 'utf8'), path);
}

export function removeJournal(dir: string): boolean {
  return removeFileDurably(journalPath(dir));
}
