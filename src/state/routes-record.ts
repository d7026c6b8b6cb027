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
//
// The file: a header line (JSON), then the payload as raw bytes: every key one after the other,
// then every value (format 2; format 1 interleaved key and value byte by byte and wrote them as
// base64: 80,000 routes were a 1.3 million step loop and a 1.7 MB text to encode on every apply).
// A record of another format reads as none (the next apply reads the map, and records it anew).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Column } from '../core/columns.js';
import { writeFileAtomic } from './run-dir.js';

export const ROUTES_RECORD_FORMAT = 2;

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
  /** Keys, then values (a copy: the columns it was made of may change afterwards). */
  payload: Buffer;
  sha256: string;
  keySize: number;
  valueSize: number;
  count: number;
}

export function recordBody(entries: RoutesRecord['entries']): RecordBody {
  const { payload, keySize, valueSize, count } = Array.isArray(entries) ? pairsPayload(entries) : columnPayload(entries);
  return { payload, sha256: createHash('sha256').update(payload).digest('hex'), keySize, valueSize, count };
}

/**
 * Writes the record atomically: a header line (JSON), then the payload. `body`, when given, is
 * recordBody(rec.entries) made before (the same routes, an apply that changed none).
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
  writeFileAtomic(routesRecordPath(dir, rec.gen), Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), body.payload]), { durable: false });
  return body;
}

interface Payload { payload: Buffer; keySize: number; valueSize: number; count: number }

function pairsPayload(entries: Array<[Buffer, Buffer]>): Payload {
  const keySize = entries[0]?.[0].length ?? 0;
  const valueSize = entries[0]?.[1].length ?? 0;
  const payload = Buffer.allocUnsafe(entries.length * (keySize + valueSize));
  let k = 0;
  let v = entries.length * keySize;
  for (const [key, value] of entries) {
    if (key.length !== keySize || value.length !== valueSize) throw new RangeError('routes record: entries of different sizes');
    k += key.copy(payload, k);
    v += value.copy(payload, v);
  }
  return { payload, keySize, valueSize, count: entries.length };
}

/** The key column, then the value column: two copies. */
function columnPayload(c: Column): Payload {
  const { keySize, valueSize, count } = c.count === 0 ? { keySize: 0, valueSize: 0, count: 0 } : c;
  const payload = Buffer.allocUnsafe(count * (keySize + valueSize));
  c.keys.copy(payload, 0, 0, count * keySize);
  c.values.copy(payload, count * keySize, 0, count * valueSize);
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
    const file = readFileSync(path);
    const nl = file.indexOf(0x0a);
    if (nl < 0) return null;
    const h = JSON.parse(file.toString('utf8', 0, nl)) as Record<string, unknown>;
    const payload = file.subarray(nl + 1);
    const { count, keySize, valueSize } = h as { count: number; keySize: number; valueSize: number };
    if (h.format !== ROUTES_RECORD_FORMAT || h.gen !== gen || typeof h.serial !== 'number' || typeof h.ctlMapId !== 'number'
      || typeof h.routesMapId !== 'number' || typeof h.digest !== 'string' || !Number.isInteger(count) || !Number.isInteger(keySize)
      || !Number.isInteger(valueSize) || payload.length !== count * (keySize + valueSize)
      || createHash('sha256').update(payload).digest('hex') !== h.sha256) return null;
    const keys = payload.subarray(0, count * keySize);
    const values = payload.subarray(count * keySize);
    let entries: Array<[Buffer, Buffer]> | undefined;
    const split = (): Array<[Buffer, Buffer]> => {
      if (entries !== undefined) return entries;
      entries = [];
      for (let i = 0; i < count; i++) {
        entries.push([keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * valueSize, (i + 1) * valueSize)]);
      }
      return entries;
    };
    // Copies: a caller may patch its columns in place, and the pairs are views of the payload.
    const column = (): Column => ({ keySize, valueSize, count, keys: Buffer.from(keys), values: Buffer.from(values) });
    return { gen, serial: h.serial, ctlMapId: h.ctlMapId, routesMapId: h.routesMapId, digest: h.digest as string, count, entries: split, column };
  } catch {
    return null;
  }
}

/** Removes the record of generation `gen` (before anything writes that generation). */
export function removeRoutesRecord(dir: string, gen: number): void {
  rmSync(routesRecordPath(dir, gen), { force: true });
}
