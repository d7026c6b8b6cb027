// The apply journal, /run/lb/<instance>/journal.bin: written (atomic rename) before an apply
// changes anything, removed when the apply has finished or been rolled back. If it is found
// later, an apply was interrupted, and it holds everything recovery needs to decide which side of
// the flip the apply died on and to finish it or undo it exactly (src/apply/recover.ts).
//
// Binary (format 2, docs/apply.md "The journal file"): a JSON header, then the saved entries as
// length-prefixed records of raw bytes, then a sha256 of all that. A full apply of 100,000 entries
// saves ~1.2 MB of keys; as hex inside JSON (format 1) they were 2.4 MB to build, escape-scan and
// write. An older lb's journal.json (format 1) is still read, so an upgrade in the middle of a
// crashed apply recovers it.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import type { Inventory } from '../state/inventory.js';
import { writeFileAtomic } from '../state/run-dir.js';
import type { OpRun } from '../core/columns.js';
import { CONFIG_MAPS, type ConfigMapName, type SavedEntry } from '../core/ops.js';

export const JOURNAL_FORMAT_VERSION = 2;
/** The JSON journal of lb versions before the binary one: still read (and removed), never written. */
export const LEGACY_JOURNAL_FORMAT_VERSION = 1;

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

/**
 * Saved entries as the journal stores them: consecutive entries of one map with the same saved
 * value are one item. A full apply into an empty generation saves 100,000 entries that are absent
 * keys and empty 1 KiB group slots: a few items, not 100,000.
 */
export interface SavedItem {
  map: ConfigMapName;
  keySize: number;
  /** The item's keys one after the other, keySize bytes each (at least one). */
  keys: Buffer;
  /** The value every key held, without its trailing zero bytes; null: the keys were absent. */
  value: Buffer | null;
  /** How many zero bytes follow `value` (0 when value is null). */
  zeros: number;
}

/**
 * A journal whose saved entries are already in the journal's form: the apply builds them straight
 * from its op runs (savedItemsOfRuns) instead of one SavedEntry per op; savedEntriesOf gives the
 * entries back when a rollback needs them.
 */
export interface JournalDraft extends Omit<Journal, 'saved'> {
  savedItems: SavedItem[];
}

/** Zero bytes at the end of a value, when enough to be worth leaving out of the journal. */
function trailingZeros(value: Buffer): number {
  let end = value.length;
  while (end > 0 && value[end - 1] === 0) end--;
  return value.length - end >= 16 ? value.length - end : 0;
}

/** An item of `keys` that all held `value` (null: absent): the value copied, its trailing zeros left out. */
function itemOf(map: ConfigMapName, keySize: number, keys: Buffer, value: Buffer | null): SavedItem {
  if (value === null) return { map, keySize, keys, value: null, zeros: 0 };
  const zeros = trailingZeros(value);
  return { map, keySize, keys, value: Buffer.from(value.subarray(0, value.length - zeros)), zeros };
}

/** The journal of the current format in `dir`. */
export function journalPath(dir: string): string {
  return join(dir, 'journal.bin');
}

/** Where an older lb (journal format 1) left its journal. */
export function legacyJournalPath(dir: string): string {
  return join(dir, 'journal.json');
}

/** Whether `dir` holds a journal of either format. */
export function journalExists(dir: string): boolean {
  return existsSync(journalPath(dir)) || existsSync(legacyJournalPath(dir));
}

/** The saved entries of journal items (trusted: made by this process, or checked by decodeJournal). */
export function savedEntriesOf(items: readonly SavedItem[]): SavedEntry[] {
  const saved: SavedEntry[] = [];
  for (const s of items) {
    const value = s.value !== null && s.zeros > 0 ? Buffer.concat([s.value, Buffer.alloc(s.zeros)]) : s.value;
    for (let off = 0; off < s.keys.length; off += s.keySize) saved.push({ map: s.map, key: s.keys.subarray(off, off + s.keySize), value });
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
 * A key of a hash or LPM map (lb_listeners, lb_src_routes, lb_maglev) whose `prev` is -1 is absent
 * from the generation (OpRun.prev: absent from its current column, which holds all of such a map's
 * entries): `previous` is not asked about it. An array slot always has bytes: lb_groups and
 * lb_settings ask `previous`. A key repeated right after itself (a desired generation with a key
 * twice) is saved once. The items' keys are views of the runs' key columns (no copy): write the
 * journal before anything changes the runs. Values are copied (`previous` may answer views of a
 * reused read buffer).
 *
 * The loops are over typed arrays, one stretch of absent keys (a full apply's 80,000 new routes)
 * at a time: this runs once per apply, before V8 has optimized it, where a call per key cost more
 * than the journal's write.
 */
export function savedItemsOfRuns(runs: readonly OpRun[], previous: (run: OpRun, i: number) => Buffer | null): SavedItem[] {
  const out: SavedItem[] = [];
  for (const run of runs) {
    const { keySize: ks, keys, count, prev, map } = run;
    const absentIfNew = map === 'lb_listeners' || map === 'lb_src_routes' || map === 'lb_maglev';
    // Key i is key i - 1 again: through 32-bit words when the keys allow, the last word first (in
    // sorted keys the first words are the ones neighbours share).
    const w = ks % 4 === 0 && keys.byteOffset % 4 === 0 ? new Int32Array(keys.buffer, keys.byteOffset, (count * ks) >> 2) : null;
    const kw = ks >> 2;
    const repeated = (i: number): boolean => {
      if (i === 0) return false;
      if (w !== null) {
        for (let k = kw - 1; k >= 0; k--) if (w[(i - 1) * kw + k] !== w[i * kw + k]) return false;
        return true;
      }
      for (let k = ks - 1; k >= 0; k--) if (keys[(i - 1) * ks + k] !== keys[i * ks + k]) return false;
      return true;
    };
    const item = (start: number, end: number, value: Buffer | null): void => {
      out.push(itemOf(map, ks, keys.subarray(start * ks, end * ks), value));
    };
    let i = 0;
    while (i < count) {
      if (repeated(i)) {
        i++; // saved once, with the first
        continue;
      }
      let end = i + 1;
      if (absentIfNew && prev[i]! < 0) {
        // A stretch of absent keys (a full apply's every new route): one loop, the repeat test inline.
        for (; end < count && prev[end]! < 0; end++) {
          if (w === null) {
            if (repeated(end)) break;
            continue;
          }
          let same = true;
          for (let k = kw - 1; k >= 0 && same; k--) same = w[(end - 1) * kw + k] === w[end * kw + k];
          if (same) break;
        }
        item(i, end, null);
      } else {
        const value = previous(run, i);
        for (; end < count && !repeated(end) && !(absentIfNew && prev[end]! < 0); end++) {
          const v = previous(run, end);
          if (v === null ? value !== null : value === null || !value.equals(v)) break;
        }
        item(i, end, value);
      }
      i = end;
    }
  }
  return out;
}

/** Saved entries as items (a Journal made by hand: tests, and a rollback's journalOf round trip). */
function savedItemsOf(saved: readonly SavedEntry[]): SavedItem[] {
  const out: SavedItem[] = [];
  const sameRun = (a: SavedEntry, b: SavedEntry): boolean => a.map === b.map && a.key.length === b.key.length
    && (a.value === null ? b.value === null : b.value !== null && a.value.equals(b.value));
  for (let i = 0; i < saved.length;) {
    const first = saved[i]!;
    let end = i + 1;
    while (end < saved.length && sameRun(first, saved[end]!)) end++;
    const keys = end - i === 1 ? first.key : Buffer.concat(saved.slice(i, end).map((s) => s.key));
    out.push(itemOf(first.map, first.key.length, keys, first.value));
    i = end;
  }
  return out;
}

// ---- The file (format 2) ----
//
//   magic "lbjrnl2\n" (8 bytes) | header length (u32 LE) | header (JSON, UTF-8)
//   | records | sha256 of everything before it (32 bytes)
//
// The header holds every field of the Journal but `saved`, plus `format_version` and `items` (the
// record count). A record is one saved item: map (u8, index in CONFIG_MAPS), flags (u8, 1: a value
// follows), key size (u16 LE), key count (u32 LE), value length (u32 LE), trailing zeros (u32 LE),
// then the keys (key size x key count bytes) and the value (value length bytes).

const MAGIC = Buffer.from('lbjrnl2\n', 'latin1');
const RECORD_HEAD = 16;
const SUM = 32;
/** Bounds of a record's fields (the largest config value, a Maglev table, is 16 KiB). */
const MAX_VALUE = 1 << 20;

type JournalHeader = Omit<Journal, 'saved'> & { format_version: number; items: number };

export function encodeJournal(j: Journal | JournalDraft): Buffer {
  const { savedItems, saved, ...rest } = { savedItems: undefined, saved: undefined, ...j };
  const items = savedItems ?? savedItemsOf(saved ?? []);
  const header: JournalHeader = { format_version: JOURNAL_FORMAT_VERSION, ...rest, items: items.length };
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  let size = MAGIC.length + 4 + head.length + SUM;
  for (const it of items) size += RECORD_HEAD + it.keys.length + (it.value?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  let off = MAGIC.copy(out, 0);
  off = out.writeUInt32LE(head.length, off);
  off += head.copy(out, off);
  for (const it of items) {
    out.writeUInt8(CONFIG_MAPS.indexOf(it.map), off);
    out.writeUInt8(it.value === null ? 0 : 1, off + 1);
    out.writeUInt16LE(it.keySize, off + 2);
    out.writeUInt32LE(it.keys.length / it.keySize, off + 4);
    out.writeUInt32LE(it.value?.length ?? 0, off + 8);
    out.writeUInt32LE(it.value === null ? 0 : it.zeros, off + 12);
    off += RECORD_HEAD;
    off += it.keys.copy(out, off);
    if (it.value !== null) off += it.value.copy(out, off);
  }
  createHash('sha256').update(out.subarray(0, off)).digest().copy(out, off);
  return out;
}

const isNum = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;
const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');

function badJournal(path: string, why: string): LbError {
  return new LbError('LB_APPLY_JOURNAL',
    `${path} is not a usable apply journal (${why}); inspect it, then remove it by hand (\`lb down\` removes the instance altogether)`, { path });
}

/** The header's fields but `saved`, checked (both formats hold the same ones). */
function journalFields(v: Partial<JournalHeader>, bad: (why: string) => LbError): Omit<Journal, 'saved'> {
  if (!isNum(v.targetGen) || v.targetGen > 1) throw bad('targetGen');
  if (!v.oldCtl || !isNum(v.oldCtl.activeGen) || !isNum(v.oldCtl.serial)) throw bad('oldCtl');
  if (!isNum(v.postFlipSerial)) throw bad('postFlipSerial');
  if (typeof v.desiredDigest !== 'string') throw bad('desiredDigest');
  if (!isStrings(v.attach) || !isStrings(v.detach)) throw bad('attach/detach');
  if (typeof v.inventory !== 'object' || v.inventory === null) throw bad('inventory');
  return {
    instance: String(v.instance), pid: Number(v.pid), startedAt: String(v.startedAt), netns: String(v.netns), targetGen: v.targetGen,
    oldCtl: { activeGen: v.oldCtl.activeGen, serial: v.oldCtl.serial }, postFlipSerial: v.postFlipSerial,
    desiredDigest: v.desiredDigest, attach: v.attach, detach: v.detach, inventory: v.inventory,
  };
}

/** Decodes a journal file of format 2 (checksum, header, every record's bounds); throws LB_APPLY_JOURNAL. */
export function decodeJournal(file: Buffer, path = 'journal'): Journal {
  const bad = (why: string): LbError => badJournal(path, why);
  if (!file.subarray(0, MAGIC.length).equals(MAGIC.subarray(0, Math.min(file.length, MAGIC.length)))) throw bad('not an lb journal of format 2');
  if (file.length < MAGIC.length + 4 + SUM) throw bad(`${file.length} bytes: truncated`);
  const body = file.subarray(0, file.length - SUM);
  if (!createHash('sha256').update(body).digest().equals(file.subarray(body.length))) throw bad('checksum mismatch: truncated or damaged');
  const headLength = body.readUInt32LE(MAGIC.length);
  let off = MAGIC.length + 4 + headLength;
  if (off > body.length) throw bad('header length');
  let v: Partial<JournalHeader>;
  try {
    v = JSON.parse(body.toString('utf8', MAGIC.length + 4, off)) as Partial<JournalHeader>;
  } catch (err) {
    throw bad(`header not JSON: ${(err as Error).message}`);
  }
  if (v.format_version !== JOURNAL_FORMAT_VERSION) throw bad(`format_version ${String(v.format_version)}, expected ${JOURNAL_FORMAT_VERSION}`);
  const fields = journalFields(v, bad);
  if (!isNum(v.items)) throw bad('items');
  const items: SavedItem[] = [];
  for (let i = 0; i < v.items; i++) {
    if (off + RECORD_HEAD > body.length) throw bad(`saved[${i}]: past the end`);
    const map = CONFIG_MAPS[body.readUInt8(off)];
    const flags = body.readUInt8(off + 1);
    const keySize = body.readUInt16LE(off + 2);
    const keyCount = body.readUInt32LE(off + 4);
    const valueLength = body.readUInt32LE(off + 8);
    const zeros = body.readUInt32LE(off + 12);
    if (map === undefined) throw bad(`saved[${i}].map`);
    if (flags > 1 || (flags === 0 && (valueLength > 0 || zeros > 0))) throw bad(`saved[${i}].flags`);
    if (keySize === 0 || keyCount === 0) throw bad(`saved[${i}].keySize`);
    if (valueLength + zeros > MAX_VALUE) throw bad(`saved[${i}].zeros`);
    off += RECORD_HEAD;
    const end = off + keySize * keyCount + valueLength;
    if (end > body.length) throw bad(`saved[${i}]: past the end`);
    const keys = body.subarray(off, off + keySize * keyCount);
    items.push({ map, keySize, keys, value: flags === 1 ? body.subarray(off + keys.length, end) : null, zeros });
    off = end;
  }
  if (off !== body.length) throw bad(`${body.length - off} bytes after the last saved entry`);
  return { ...fields, saved: savedEntriesOf(items) };
}

/**
 * Decodes an older lb's journal.json (format 1: the saved entries as hex inside JSON); throws
 * LB_APPLY_JOURNAL. `saved` items there: `key` holds one key or, with `keySize`, several; `zeros`
 * zero bytes follow `value`.
 */
export function decodeLegacyJournal(text: string, path = 'journal'): Journal {
  const bad = (why: string): LbError => badJournal(path, why);
  type LegacyItem = { map: ConfigMapName; key: string; keySize?: number; value: string | null; zeros?: number };
  let v: Partial<JournalHeader> & { saved?: LegacyItem[] };
  try {
    v = JSON.parse(text) as typeof v;
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  if (v.format_version !== LEGACY_JOURNAL_FORMAT_VERSION) throw bad(`format_version ${String(v.format_version)}, expected ${LEGACY_JOURNAL_FORMAT_VERSION}`);
  const fields = journalFields(v, bad);
  if (!Array.isArray(v.saved)) throw bad('saved');
  const isHex = (s: unknown): s is string => typeof s === 'string' && /^([0-9a-f]{2})*$/.test(s);
  const items = v.saved.map((s, i): SavedItem => {
    if (!CONFIG_MAPS.includes(s.map) || !isHex(s.key) || !(s.value === null || isHex(s.value))) throw bad(`saved[${i}]`);
    if (s.zeros !== undefined && (!isNum(s.zeros) || s.value === null || s.zeros > MAX_VALUE)) throw bad(`saved[${i}].zeros`);
    const keys = Buffer.from(s.key, 'hex');
    const keySize = s.keySize ?? keys.length;
    if (!isNum(keySize) || keySize === 0 || keys.length % keySize !== 0) throw bad(`saved[${i}].keySize`);
    return { map: s.map, keySize, keys, value: s.value === null ? null : Buffer.from(s.value, 'hex'), zeros: s.zeros ?? 0 };
  });
  return { ...fields, saved: savedEntriesOf(items) };
}

/**
 * Writes the journal: after this returns, a crash of any process leaves exactly this journal
 * behind. Not fsynced: it protects BPF maps, which live in the kernel, from a process that dies
 * between its writes; the page cache outlives any process crash, and whatever outlives the page
 * cache (a power loss, an OS crash) takes the maps and their bpffs pins with it, so a journal
 * written to disk would protect nothing more. A journal of an instance without pins is discarded
 * unread (recover.ts): one torn by such a crash on a host whose /run is on disk included.
 */
export function writeJournal(dir: string, journal: Journal | JournalDraft): void {
  writeFileAtomic(journalPath(dir), encodeJournal(journal), { durable: false });
}

/**
 * The journal in `dir` (format 2, or an older lb's format 1), or null. Throws LB_APPLY_JOURNAL when
 * one exists but cannot be used, or when both formats are there (which apply came last cannot be
 * told: refused rather than guessed).
 */
export function readJournal(dir: string): Journal | null {
  const path = journalPath(dir);
  const legacy = legacyJournalPath(dir);
  const [current, old] = [existsSync(path), existsSync(legacy)];
  if (current && old) {
    throw new LbError('LB_APPLY_JOURNAL',
      `${dir} holds two apply journals, ${path} and an older lb's ${legacy}: which apply came last cannot be told; inspect both, then remove the stale one by hand`, { path });
  }
  if (current) return decodeJournal(readFileSync(path), path);
  if (old) return decodeLegacyJournal(readFileSync(legacy, 'utf8'), legacy);
  return null;
}

/** Removes the journal (of either format); false when there was none. Not fsynced, as it was not written so (writeJournal). */
export function removeJournal(dir: string): boolean {
  const removed = removeIfThere(journalPath(dir));
  return removeIfThere(legacyJournalPath(dir)) || removed;
}

function removeIfThere(path: string): boolean {
  try {
    rmSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
