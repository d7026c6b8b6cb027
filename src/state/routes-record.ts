// The record of one generation's source routes, /run/lb/<instance>/routes.<gen>.rec: the exact
// lb_src_routes entries of that generation as the last completed apply left them, and the digest
// of the whole generation (every config map).
//
// lb_src_routes is an LPM trie: the kernel has no batch lookup for it, so reading a generation
// from the map costs two syscalls per route (get_next_key, lookup), and the walk visits both
// generations' routes. With this record an apply knows what the inactive generation holds without
// that walk, and its cost follows the size of the change instead of the size of the table; with
// the digest it knows whether the active generation already holds the desired configuration
// without reading it (only when the digests are equal is the active generation read: a no-op, or
// a drift heal re-applying the configuration that drifted).
//
// It is trusted only while nothing but lb's apply can have written that generation since:
// - the apply removes a generation's record before it writes anything into that generation, and
//   writes it again only once the apply has completed (a crash or a rollback in between leaves no
//   record, and the next apply reads the map);
// - it names the kernel ids of lb_ctl and lb_src_routes (a re-loaded instance has other maps);
// - the record of the active generation must carry lb_ctl's current serial: a flip made by anything
//   else (an older lb, a hand-written lb_ctl) makes the records stale.
// A payload digest refuses a damaged file. See docs/apply.md (the transaction, step 2).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Column } from '../core/columns.js';
import { writeFileAtomic } from './run-dir.js';

export const ROUTES_RECORD_FORMAT = 1;

export interface RoutesRecord {
  gen: number;
  /** lb_ctl.serial from which on the generation has held these routes. */
  serial: number;
  /** Kernel ids of lb_ctl and lb_src_routes when written. */
  ctlMapId: number;
  routesMapId: number;
  /** generationDigest of the whole generation (every config map) as written. */
  digest: string;
  /** The generation's lb_src_routes entries, exact bytes: pairs, or columns (src/core/columns.ts). */
  entries: Array<[Buffer, Buffer]> | Column;
}

export function routesRecordPath(dir: string, gen: number): string {
  return join(dir, `routes.${gen}.rec`);
}

/** The encoded entries of a record, reusable while the generation's routes do not change. */
export interface RecordBody {
  base64: string;
  sha256: string;
  keySize: number;
  valueSize: number;
  count: number;
}

export function recordBody(entries: RoutesRecord['entries']): RecordBody {
  const { payload, keySize, valueSize, count } = Array.isArray(entries) ? pairsPayload(entries) : columnPayload(entries);
  return { base64: payload.toString('base64'), sha256: createHash('sha256').update(payload).digest('hex'), keySize, valueSize, count };
}

/**
 * Writes the record atomically: a header line (JSON), then the entries as one base64 line. `body`,
 * when given, is recordBody(rec.entries) made before (the same routes, an apply that changed none).
 */
export function writeRoutesRecord(dir: string, rec: RoutesRecord, body: RecordBody = recordBody(rec.entries)): RecordBody {
  const { keySize, valueSize, count, sha256 } = body;
  const header = {
    format: ROUTES_RECORD_FORMAT, gen: rec.gen, serial: rec.serial, ctlMapId: rec.ctlMapId, routesMapId: rec.routesMapId, digest: rec.digest,
    count, keySize, valueSize, sha256,
  };
  // Not fsynced: a record outlives neither the process's page cache nor the maps it describes (a
  // host crash loses the BPF maps too), and a damaged one is refused by its payload digest. Still
  // renamed into place, so that a reader never sees half of one.
  writeFileAtomic(routesRecordPath(dir, rec.gen), `${JSON.stringify(header)}\n${body.base64}\n`, { durable: false });
  return body;
}

interface Payload { payload: Buffer; keySize: number; valueSize: number; count: number }

function pairsPayload(entries: Array<[Buffer, Buffer]>): Payload {
  const keySize = entries[0]?.[0].length ?? 0;
  const valueSize = entries[0]?.[1].length ?? 0;
  const payload = Buffer.allocUnsafe(entries.length * (keySize + valueSize));
  let off = 0;
  for (const [k, v] of entries) {
    if (k.length !== keySize || v.length !== valueSize) throw new RangeError('routes record: entries of different sizes');
    off += k.copy(payload, off);
    off += v.copy(payload, off);
  }
  return { payload, keySize, valueSize, count: entries.length };
}

/** Key and value of each entry side by side, as the pairs give them: byte by byte (12 + 4 bytes a route). */
function columnPayload(c: Column): Payload {
  const { keySize, valueSize, count } = c.count === 0 ? { keySize: 0, valueSize: 0, count: 0 } : c;
  const stride = keySize + valueSize;
  const payload = Buffer.allocUnsafe(count * stride);
  for (let i = 0; i < count; i++) {
    const off = i * stride;
    for (let b = 0; b < keySize; b++) payload[off + b] = c.keys[i * keySize + b]!;
    for (let b = 0; b < valueSize; b++) payload[off + keySize + b] = c.values[i * valueSize + b]!;
  }
  return { payload, keySize, valueSize, count };
}

/** A record as read: its entries are split out of the checked payload only when asked for. */
export interface ReadRoutesRecord extends Omit<RoutesRecord, 'entries'> {
  count: number;
  entries(): Array<[Buffer, Buffer]>;
  /** The entries as columns, split out of the payload (keys apart from values). */
  column(): Column;
}

/** The record of generation `gen`, or null when there is none or it is not whole. */
export function readRoutesRecord(dir: string, gen: number): ReadRoutesRecord | null {
  const path = routesRecordPath(dir, gen);
  if (!existsSync(path)) return null;
  try {
    const text = readFileSync(path, 'latin1');
    const nl = text.indexOf('\n');
    const h = JSON.parse(text.slice(0, nl)) as Record<string, unknown>;
    const payload = Buffer.from(text.slice(nl + 1).trimEnd(), 'base64');
    const { count, keySize, valueSize } = h as { count: number; keySize: number; valueSize: number };
    if (h.format !== ROUTES_RECORD_FORMAT || h.gen !== gen || typeof h.serial !== 'number' || typeof h.ctlMapId !== 'number'
      || typeof h.routesMapId !== 'number' || typeof h.digest !== 'string' || !Number.isInteger(count) || payload.length !== count * (keySize + valueSize)
      || createHash('sha256').update(payload).digest('hex') !== h.sha256) return null;
    let entries: Array<[Buffer, Buffer]> | undefined;
    const split = (): Array<[Buffer, Buffer]> => {
      if (entries !== undefined) return entries;
      entries = [];
      for (let i = 0, off = 0; i < count; i++, off += keySize + valueSize) {
        entries.push([payload.subarray(off, off + keySize), payload.subarray(off + keySize, off + keySize + valueSize)]);
      }
      return entries;
    };
    const column = (): Column => {
      const keys = Buffer.allocUnsafe(count * keySize);
      const values = Buffer.allocUnsafe(count * valueSize);
      const stride = keySize + valueSize;
      for (let i = 0; i < count; i++) {
        for (let b = 0; b < keySize; b++) keys[i * keySize + b] = payload[i * stride + b]!;
        for (let b = 0; b < valueSize; b++) values[i * valueSize + b] = payload[i * stride + keySize + b]!;
      }
      return { keySize, valueSize, count, keys, values };
    };
    return { gen, serial: h.serial, ctlMapId: h.ctlMapId, routesMapId: h.routesMapId, digest: h.digest as string, count, entries: split, column };
  } catch {
    return null;
  }
}

/** Removes the record of generation `gen` (before anything writes that generation). */
export function removeRoutesRecord(dir: string, gen: number): void {
  rmSync(routesRecordPath(dir, gen), { force: true });
}
