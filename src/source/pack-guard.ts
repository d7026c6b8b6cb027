// Checks a git pack while it streams in, before isomorphic-git sees it. isomorphic-git collects the
// whole pack in memory and then inflates every object whole to index it, so a pack of 1 MB can hold
// a blob that inflates to gigabytes (a zip bomb). This reads each object's header (type and
// inflated size, and for a delta the size of its result) and refuses an object over the cap before
// a byte of it is inflated; objects under the cap are inflated here into nothing (output is counted
// and dropped), which finds where each ends and catches a header that understates the size.

import { createInflate, type Inflate } from 'node:zlib';
import { SourceError } from './disposition.js';

export interface PackLimits {
  /** Largest object (blob, tree, commit, or a delta's result), inflated. */
  maxObjectBytes: number;
  /** All objects of one pack, inflated, together. */
  maxInflatedBytes: number;
}

const TYPE_NAMES: Record<number, string> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag', 6: 'ofs-delta', 7: 'ref-delta' };

/** Reads a pack (the bytes after the upload-pack framing) chunk by chunk; throws on the first violation. */
export class PackInspector {
  private readonly limits: PackLimits;
  private readonly where: string;
  private pending: Buffer = Buffer.alloc(0);
  private state: 'head' | 'object' | 'data' | 'trailer' = 'head';
  private remaining = 0;
  private offset = 0;
  private inflated = 0;
  private current: ObjectInflater | undefined;

  constructor(limits: PackLimits, where: string) {
    this.limits = limits;
    this.where = where;
  }

  /** How many bytes the objects inflated to (so far). */
  get totals(): { inflatedBytes: number } {
    return { inflatedBytes: this.inflated };
  }

  async push(chunk: Uint8Array): Promise<void> {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (this.state === 'trailer' || this.pending.length === 0) return;
      if (this.state === 'head') {
        if (this.pending.length < 12) return;
        if (this.pending.toString('latin1', 0, 4) !== 'PACK') throw this.malformed('the pack does not start with "PACK"');
        this.remaining = this.pending.readUInt32BE(8);
        this.consume(12);
        this.state = this.remaining === 0 ? 'trailer' : 'object';
      } else if (this.state === 'object') {
        const header = parseObjectHeader(this.pending);
        if (header === undefined) return;
        if (header === 'bad') throw this.malformed(`bad object header at pack offset ${this.offset}`);
        if (header.size > this.limits.maxObjectBytes) throw this.tooLarge(TYPE_NAMES[header.type] ?? 'object', header.size);
        this.current = new ObjectInflater(header.size, header.type >= 6);
        this.consume(header.length);
        this.state = 'data';
      } else {
        const obj = this.current!;
        const used = await obj.write(this.pending);
        if (obj.error) throw this.malformed(`object at pack offset ${this.offset}: ${obj.error.message}`);
        if (obj.resultSize !== undefined && obj.resultSize > this.limits.maxObjectBytes) throw this.tooLarge('delta result', obj.resultSize);
        this.inflated += obj.produced - obj.counted;
        obj.counted = obj.produced;
        if (this.inflated > this.limits.maxInflatedBytes) {
          throw this.refuse('PackTooLarge', `the objects of the pack inflate to more than ${formatBytes(this.limits.maxInflatedBytes)} in all`);
        }
        this.consume(used);
        if (!obj.ended) return;
        if (obj.produced !== obj.size) throw this.malformed(`object at pack offset ${this.offset} inflates to ${obj.produced} bytes, its header says ${obj.size}`);
        obj.close();
        this.current = undefined;
        this.remaining -= 1;
        this.state = this.remaining === 0 ? 'trailer' : 'object';
      }
    }
  }

  /** Frees the inflater of an unfinished object (after an abort). */
  close(): void {
    this.current?.close();
    this.current = undefined;
  }

  private consume(n: number): void {
    this.pending = this.pending.subarray(n);
    this.offset += n;
  }

  private tooLarge(kind: string, size: number): SourceError {
    return this.refuse(
      'ObjectTooLarge',
      `the pack holds a ${kind} of ${formatBytes(size)} (${size} bytes), over the ${formatBytes(this.limits.maxObjectBytes)} object cap; ` +
        'the fetch was stopped before inflating it: keep large files out of the repository the daemon follows',
    );
  }

  private malformed(detail: string): SourceError {
    return new SourceError('LB_SOURCE_FETCH', `git remote ${this.where} sent a malformed pack: ${detail}`, { disposition: 'transient', reason: 'FetchFailed' }, { url: this.where });
  }

  private refuse(reason: string, detail: string): SourceError {
    return new SourceError('LB_SOURCE_CHECKOUT', `fetch from ${this.where} refused: ${detail}`, { disposition: 'stalling', reason }, { url: this.where });
  }
}

/** Type, inflated size and header length of the pack entry at the start of `b`; undefined if `b` is too short. */
export function parseObjectHeader(b: Buffer): { type: number; size: number; length: number } | 'bad' | undefined {
  if (b.length === 0) return undefined;
  let i = 0;
  let byte = b[i++]!;
  const type = (byte >> 4) & 7;
  if (type === 0 || type === 5) return 'bad';
  let size = byte & 15;
  let scale = 16;
  while (byte & 0x80) {
    if (i >= b.length) return undefined;
    if (i > 9) return 'bad';
    byte = b[i++]!;
    size += (byte & 0x7f) * scale;
    scale *= 128;
  }
  if (type === 6) {
    // The base's negative offset: a varint of its own.
    do {
      if (i >= b.length) return undefined;
      if (i > 20) return 'bad';
      byte = b[i++]!;
    } while (byte & 0x80);
  } else if (type === 7) {
    if (b.length < i + 20) return undefined;
    i += 20;
  }
  return { type, size, length: i };
}

/**
 * Inflates one object's zlib stream into nothing, counting the output, and says where the stream
 * ended. Stops (with an error) as soon as the output passes the declared size.
 */
class ObjectInflater {
  readonly size: number;
  private readonly delta: boolean;
  private readonly z: Inflate;
  produced = 0;
  counted = 0;
  ended = false;
  error: Error | undefined;
  resultSize: number | undefined;
  private head = Buffer.alloc(0);

  constructor(size: number, delta: boolean) {
    this.size = size;
    this.delta = delta;
    this.z = createInflate();
    this.z.on('data', (d: Buffer) => this.take(d));
    this.z.on('error', (err: Error) => {
      this.error ??= err;
    });
  }

  /** Feeds `input`; returns how many of its bytes belong to this object's stream. */
  async write(input: Buffer): Promise<number> {
    if (this.error) return 0;
    const before = this.z.bytesWritten;
    await new Promise<void>((resolve) => {
      this.z.write(input, () => resolve());
    });
    // 'data' of this write has been emitted once the stream's queued callbacks ran.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const used = this.z.bytesWritten - before;
    // zlib stops taking input at the end of the stream: bytes left over belong to the next object.
    if (used < input.length) this.ended = true;
    return used;
  }

  close(): void {
    this.z.removeAllListeners('data');
    this.z.on('error', () => undefined);
    this.z.destroy();
  }

  private take(d: Buffer): void {
    this.produced += d.length;
    if (this.produced > this.size) {
      this.error ??= new Error(`inflates past the ${this.size} bytes its header declares`);
      this.close();
      return;
    }
    if (this.delta && this.resultSize === undefined && this.head.length < 20) {
      this.head = Buffer.concat([this.head, d.subarray(0, 20)]);
      const sizes = deltaSizes(this.head);
      if (sizes) this.resultSize = sizes.result;
    }
  }
}

/** A delta starts with two varints: the size of its base and of its result. */
export function deltaSizes(b: Buffer): { base: number; result: number } | undefined {
  let i = 0;
  const varint = (): number | undefined => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (i >= b.length || i >= 20) return undefined;
      const byte = b[i++]!;
      v += (byte & 0x7f) * scale;
      scale *= 128;
      if (!(byte & 0x80)) return v;
    }
  };
  const base = varint();
  const result = base === undefined ? undefined : varint();
  return base === undefined || result === undefined ? undefined : { base, result };
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
