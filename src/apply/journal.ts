// The apply journal, /run/lb/<instance>/journal.json: written (fsync'ed, atomic rename) before an
// apply changes anything, removed when the apply has finished or been rolled back. If it is found
// later, an apply was interrupted, and it holds everything recovery needs to decide which side of
// the flip the apply died on and to finish it or undo it exactly (src/apply/recover.ts).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import type { Inventory } from '../state/inventory.js';
import { removeFileDurably, writeFileAtomic } from '../state/run-dir.js';
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
  saved: Array<{ map: ConfigMapName; key: string; value: string | null }>;
}

export function journalPath(dir: string): string {
  return join(dir, 'journal.json');
}

export function encodeJournal(j: Journal): string {
  const json: JournalJson = {
    format_version: JOURNAL_FORMAT_VERSION,
    ...j,
    saved: j.saved.map((s) => ({ map: s.map, key: s.key.toString('hex'), value: s.value === null ? null : s.value.toString('hex') })),
  };
  return `${JSON.stringify(json)}\n`;
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
  const saved: SavedEntry[] = v.saved.map((s, i) => {
    if (!CONFIG_MAPS.includes(s.map) || !isHex(s.key) || !(s.value === null || isHex(s.value))) throw bad(`saved[${i}]`);
    return { map: s.map, key: Buffer.from(s.key, 'hex'), value: s.value === null ? null : Buffer.from(s.value, 'hex') };
  });
  return {
    instance: String(v.instance), pid: Number(v.pid), startedAt: String(v.startedAt), netns: String(v.netns), targetGen: v.targetGen,
    oldCtl: { activeGen: v.oldCtl.activeGen, serial: v.oldCtl.serial }, postFlipSerial: v.postFlipSerial,
    desiredDigest: v.desiredDigest, saved, attach: v.attach, detach: v.detach, inventory: v.inventory,
  };
}

/** Writes the journal durably: after this returns, a crash leaves exactly this journal behind. */
export function writeJournal(dir: string, journal: Journal): void {
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
