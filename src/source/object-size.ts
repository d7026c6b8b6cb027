// The type and inflated size of a git object, read from its header without inflating it: the first
// bytes of a loose object, or the entry header in a pack (found through the pack's .idx). isomorphic-git
// inflates an object whole (and reads the whole pack file it sits in) before anyone can look at its
// size; this lets the checkout refuse an oversize object first. For a delta in a pack, the size of its
// result and of every base along the chain is checked too (isomorphic-git inflates the bases to
// rebuild it), and so is the size of the pack file.

import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { constants, inflateSync } from 'node:zlib';
import { deltaSizes, parseObjectHeader } from './pack-guard.js';

export interface ObjectHeader {
  type: 'commit' | 'tree' | 'blob' | 'tag';
  /** Inflated size of the object. */
  size: number;
  /** The largest size met along a delta chain (the object itself, or a base), and the pack file's size. */
  largestBase: number;
  packBytes: number;
}

const TYPES = ['', 'commit', 'tree', 'blob', 'tag'] as const;
const MAX_CHAIN = 10_000;

interface PackIndex {
  idx: Buffer;
  count: number;
  packPath: string;
  packBytes: number;
}

export class ObjectSizer {
  private readonly gitdir: string;
  private packs: PackIndex[] | undefined;

  constructor(gitdir: string) {
    this.gitdir = gitdir;
  }

  /**
   * The object's header; undefined when the object is not there (or in a pack whose index is not
   * version 2). Throws when the object is there but its header cannot be read.
   */
  async header(oid: string): Promise<ObjectHeader | undefined> {
    const loose = await this.looseHeader(oid);
    if (loose) return loose;
    for (const p of await this.loadPacks()) {
      const offset = packOffset(p, oid);
      if (offset !== undefined) return this.packedHeader(p, offset);
    }
    return undefined;
  }

  private async looseHeader(oid: string): Promise<ObjectHeader | undefined> {
    const fh = await open(join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2))).catch(() => undefined);
    if (!fh) return undefined;
    try {
      for (const want of [512, 2048]) {
        const buf = Buffer.alloc(want);
        const { bytesRead } = await fh.read(buf, 0, want, 0);
        const head = inflateStart(buf.subarray(0, bytesRead));
        const nul = head.indexOf(0);
        if (nul >= 0) {
          const m = /^(commit|tree|blob|tag) (\d+)$/.exec(head.toString('latin1', 0, nul));
          if (!m) throw new Error(`loose object ${oid} has no valid header`);
          const size = Number(m[2]);
          return { type: m[1] as ObjectHeader['type'], size, largestBase: size, packBytes: 0 };
        }
        if (bytesRead < want) break;
      }
      throw new Error(`cannot read the header of loose object ${oid}`);
    } finally {
      await fh.close();
    }
  }

  private async packedHeader(start: PackIndex, startOffset: number): Promise<ObjectHeader | undefined> {
    let p = start;
    let offset = startOffset;
    let size: number | undefined;
    let largest = 0;
    let packBytes = start.packBytes;
    for (let step = 0; step < MAX_CHAIN; step++) {
      const entry = await readEntry(p.packPath, offset);
      if (!entry) throw new Error(`cannot read the pack entry at offset ${offset} of ${p.packPath}`);
      if (entry.type >= 1 && entry.type <= 4) {
        largest = Math.max(largest, entry.size);
        return { type: TYPES[entry.type] as ObjectHeader['type'], size: size ?? entry.size, largestBase: largest, packBytes };
      }
      // A delta: its result is the object we want (first step) or a base of it.
      const sizes = deltaSizes(inflateStart(entry.data));
      if (!sizes) throw new Error(`cannot read the delta at offset ${offset} of ${p.packPath}`);
      size ??= sizes.result;
      largest = Math.max(largest, sizes.result, sizes.base, entry.size);
      if (entry.type === 6 && entry.baseOffset !== undefined) {
        offset -= entry.baseOffset;
      } else if (entry.type === 7 && entry.baseOid !== undefined) {
        const found = await this.locate(entry.baseOid);
        if (!found) {
          // The base of a thin pack's delta may be a loose object.
          const base = await this.looseHeader(entry.baseOid);
          if (!base) throw new Error(`the delta base ${entry.baseOid} is missing`);
          return { type: base.type, size, largestBase: Math.max(largest, base.size), packBytes };
        }
        [p, offset] = found;
        packBytes = Math.max(packBytes, p.packBytes);
      } else {
        throw new Error(`bad delta entry at offset ${offset} of ${p.packPath}`);
      }
    }
    throw new Error(`delta chain longer than ${MAX_CHAIN} in ${p.packPath}`);
  }

  private async locate(oid: string): Promise<[PackIndex, number] | undefined> {
    for (const p of await this.loadPacks()) {
      const offset = packOffset(p, oid);
      if (offset !== undefined) return [p, offset];
    }
    return undefined;
  }

  private async loadPacks(): Promise<PackIndex[]> {
    if (this.packs) return this.packs;
    const dir = join(this.gitdir, 'objects', 'pack');
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.idx'));
    const packs: PackIndex[] = [];
    for (const name of names) {
      const idx = await readFile(join(dir, name)).catch(() => undefined);
      // Only version 2 indexes (what git has written since 1.5.2, and what isomorphic-git writes).
      if (!idx || idx.length < 8 + 1024 || idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) continue;
      const packPath = join(dir, name.replace(/\.idx$/, '.pack'));
      const st = await stat(packPath).catch(() => undefined);
      if (!st) continue;
      packs.push({ idx, count: idx.readUInt32BE(8 + 255 * 4), packPath, packBytes: st.size });
    }
    this.packs = packs;
    return packs;
  }
}

/** The pack offset of `oid` per a v2 index: fanout, sorted names, CRCs, 31-bit offsets, 64-bit offsets. */
function packOffset(p: PackIndex, oid: string): number | undefined {
  const want = Buffer.from(oid, 'hex');
  if (want.length !== 20) return undefined;
  const first = want[0]!;
  let lo = first === 0 ? 0 : p.idx.readUInt32BE(8 + (first - 1) * 4);
  let hi = p.idx.readUInt32BE(8 + first * 4);
  const names = 8 + 1024;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const cmp = p.idx.compare(want, 0, 20, names + mid * 20, names + mid * 20 + 20);
    if (cmp === 0) {
      const offsets = names + p.count * 24;
      const small = p.idx.readUInt32BE(offsets + mid * 4);
      if (!(small & 0x80000000)) return small;
      const large = offsets + p.count * 4 + (small & 0x7fffffff) * 8;
      return Number(p.idx.readBigUInt64BE(large));
    }
    if (cmp < 0) hi = mid;
    else lo = mid + 1;
  }
  return undefined;
}

interface Entry {
  type: number;
  size: number;
  baseOffset?: number;
  baseOid?: string;
  /** The start of the entry's zlib data (enough to read a delta's two sizes). */
  data: Buffer;
}

async function readEntry(packPath: string, offset: number): Promise<Entry | undefined> {
  const fh = await open(packPath);
  try {
    const buf = Buffer.alloc(1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    const b = buf.subarray(0, bytesRead);
    const h = parseObjectHeader(b);
    if (h === undefined || h === 'bad') return undefined;
    const entry: Entry = { type: h.type, size: h.size, data: b.subarray(h.length) };
    if (h.type === 6) {
      // git's offset encoding: big-endian base-128, each continuation byte adding one.
      let j = sizeVarintEnd(b);
      let byte = b[j++]!;
      let ofs = byte & 0x7f;
      while (byte & 0x80) {
        byte = b[j++]!;
        ofs = (ofs + 1) * 128 + (byte & 0x7f);
      }
      entry.baseOffset = ofs;
    } else if (h.type === 7) {
      entry.baseOid = b.toString('hex', h.length - 20, h.length);
    }
    return entry;
  } finally {
    await fh.close();
  }
}

function sizeVarintEnd(b: Buffer): number {
  let i = 0;
  while (b[i]! & 0x80) i++;
  return i + 1;
}

/** The first bytes a zlib stream inflates to, from a prefix of it (bounded: at most 4 MiB out). */
function inflateStart(prefix: Buffer): Buffer {
  try {
    return inflateSync(prefix, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: 4 * 1024 * 1024 });
  } catch {
    return Buffer.alloc(0);
  }
}
