// A BPF map held by fd: typed metadata and byte-level operations (keys and values are Buffers; the
// codecs of abi.ts give them meaning). Per-CPU maps read and write one value slot per possible CPU.

import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { LbError } from '../core/errors.js';
import {
  BPF_ANY, ENOTSUPP, MAP_BATCH_OPTS, MAP_TYPE_NAMES, PERCPU_MAP_TYPES, bpfError, closeFd, mapInfo, native,
  type MapInfo,
} from './libbpf.js';

const { ENOENT, EOPNOTSUPP, ENOSPC } = constants.errno;

/**
 * Counts the CPUs in a kernel CPU list such as "0-3,5\n" (the format of
 * /sys/devices/system/cpu/possible). The kernel copies one per-CPU value per possible CPU.
 */
export function parseCpuList(text: string): number {
  let count = 0;
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new RangeError(`malformed CPU list ${JSON.stringify(text)}`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) throw new RangeError(`malformed CPU list ${JSON.stringify(text)}`);
    count += last - first + 1;
  }
  return count;
}

let possible: number | undefined;

/** Number of possible CPUs (the per-CPU value count), from /sys/devices/system/cpu/possible. */
export function possibleCpus(): number {
  possible ??= parseCpuList(readFileSync('/sys/devices/system/cpu/possible', 'utf8'));
  return possible;
}

/** Per-CPU values are laid out in 8-byte aligned slots. */
export function perCpuStride(valueSize: number): number {
  return Math.ceil(valueSize / 8) * 8;
}

type BatchOp = 'lookup' | 'update' | 'delete';

export class BpfMap {
  readonly name: string;
  readonly id: number;
  readonly type: number;
  /** Kernel map type name (hash, array, percpu_array, lpm_trie, ...). */
  readonly typeName: string;
  readonly keySize: number;
  /** Size of one value (of one CPU's value, for per-CPU maps). */
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly perCpu: boolean;
  /** Value slots per lookup: the possible CPUs for per-CPU maps, else 1. */
  readonly cpus: number;
  /** Bytes from one CPU's slot to the next (valueSize rounded up to 8). */
  readonly valueStride: number;
  private fdValue: number;
  private readonly noBatch = new Set<BatchOp>();

  /** Wraps an fd the map now owns (closed by close()). */
  constructor(fd: number, info: MapInfo, name = info.name) {
    this.fdValue = fd;
    this.name = name;
    this.id = info.id;
    this.type = info.type;
    this.typeName = MAP_TYPE_NAMES[info.type] ?? `type ${info.type}`;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.flags = info.flags;
    this.perCpu = PERCPU_MAP_TYPES.has(info.type);
    this.cpus = this.perCpu ? possibleCpus() : 1;
    this.valueStride = this.perCpu ? perCpuStride(info.valueSize) : info.valueSize;
  }

  /** Wraps an fd, reading the map's metadata from the kernel. */
  static fromFd(fd: number, name?: string): BpfMap {
    return new BpfMap(fd, mapInfo(fd, { map: name }), name);
  }

  get fd(): number {
    if (this.fdValue < 0) throw new LbError('LB_BPF_MAP', `map ${this.name} is closed`, { map: this.name });
    return this.fdValue;
  }

  /** Bytes of a whole value as the syscall sees it (all CPUs' slots for per-CPU maps). */
  get valueBufferSize(): number {
    return this.valueStride * this.cpus;
  }

  /** The value for key (all CPUs' slots concatenated for per-CPU maps), or undefined. */
  lookup(key: Buffer): Buffer | undefined {
    this.checkKey(key, 'lookup');
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = native().bpf_map_lookup_elem(this.fd, key, value);
    if (ret === -ENOENT) return undefined;
    if (ret < 0) throw this.error('bpf_map_lookup_elem', -ret, key);
    return value;
  }

  /**
   * Reads the value for key into `out` (valueBufferSize bytes, reused by the caller across many
   * reads: a read-back of 80,000 keys then allocates nothing per key). False when the key is absent.
   */
  lookupInto(key: Buffer, out: Buffer): boolean {
    const ret = native().bpf_map_lookup_elem(this.fd, key, out);
    if (ret === -ENOENT) return false;
    if (ret < 0) {
      this.checkKey(key, 'lookup');
      throw this.error('bpf_map_lookup_elem', -ret, key);
    }
    return true;
  }

  /** One Buffer per possible CPU (valueSize bytes each), or undefined when the key is absent. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    const all = this.lookup(key);
    return all === undefined ? undefined : this.splitPerCpu(all);
  }

  /** Splits a per-CPU value buffer into one Buffer per CPU. */
  splitPerCpu(all: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let cpu = 0; cpu < this.cpus; cpu++) {
      out.push(all.subarray(cpu * this.valueStride, cpu * this.valueStride + this.valueSize));
    }
    return out;
  }

  /**
   * Writes key -> value (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST). For per-CPU maps the value is
   * either every CPU's slot (valueBufferSize bytes) or one value (valueSize bytes) written to all CPUs.
   */
  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    this.checkKey(key, 'update');
    const full = this.fullValue(value);
    const ret = native().bpf_map_update_elem(this.fd, key, full, flags);
    if (ret < 0) throw this.error('bpf_map_update_elem', -ret, key, { flags });
  }

  /** Deletes key; false when it was absent. (Array maps cannot delete: that throws EINVAL.) */
  delete(key: Buffer): boolean {
    this.checkKey(key, 'delete');
    const ret = native().bpf_map_delete_elem(this.fd, key);
    if (ret === -ENOENT) return false;
    if (ret < 0) throw this.error('bpf_map_delete_elem', -ret, key);
    return true;
  }

  /** Iterates the keys (bpf_map_get_next_key). Keys deleted meanwhile may restart a hash walk. */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (let i = 0; i <= this.maxEntries * 2 + 16; i++) {
      const next = Buffer.alloc(this.keySize);
      const ret = native().bpf_map_get_next_key(this.fd, prev, next);
      if (ret === -ENOENT) return;
      if (ret < 0) throw this.error('bpf_map_get_next_key', -ret, prev ?? undefined);
      yield next;
      prev = next;
    }
    throw new LbError('LB_BPF_MAP', `iterating map ${this.name} did not end after ${this.maxEntries * 2 + 16} keys`, { map: this.name });
  }

  /** Iterates [key, value] pairs; keys that vanish between the walk and the lookup are skipped. */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /**
   * Writes many entries with BPF_MAP_UPDATE_BATCH (one syscall per chunk), or one by one where the
   * map type has no batch support. Values as in update(). Returns the number written.
   */
  updateBatch(entries: Iterable<readonly [Buffer, Buffer]>, flags = BPF_ANY, chunk = 1024): number {
    const list = [...entries];
    for (const [key] of list) this.checkKey(key, 'updateBatch');
    const values = list.map(([, v]) => this.fullValue(v));
    let done = 0;
    while (done < list.length) {
      const n = Math.min(chunk, list.length - done);
      if (this.noBatch.has('update')) {
        this.update(list[done]![0], values[done]!, flags);
        done += 1;
        continue;
      }
      const keys = Buffer.concat(list.slice(done, done + n).map(([k]) => k));
      const vals = Buffer.concat(values.slice(done, done + n));
      const count = [n];
      const ret = native().bpf_map_update_batch(this.fd, keys, vals, count, batchOpts(flags));
      if (ret < 0 && isUnsupported(-ret) && count[0] === 0) {
        this.noBatch.add('update');
        continue;
      }
      if (ret < 0) throw this.error('bpf_map_update_batch', -ret, list[done + (count[0] ?? 0)]?.[0], { written: done + (count[0] ?? 0) });
      done += n;
    }
    return done;
  }

  /**
   * updateBatch for entries already laid out as the syscall takes them: `count` keys one after the
   * other in `keys`, their values likewise in `values` (valueBufferSize bytes each). Chunks are
   * views into them: nothing is copied or concatenated.
   */
  updateColumns(keys: Buffer, values: Buffer, count: number, flags = BPF_ANY, chunk = 1024): number {
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    if (keys.length < count * ks || values.length < count * vs) {
      throw new LbError('LB_BPF_MAP', `updateColumns on map ${this.name}: ${count} entries need ${count * ks}/${count * vs} bytes of keys/values`,
        { map: this.name, count, keyBytes: keys.length, valueBytes: values.length });
    }
    let done = 0;
    while (done < count) {
      const n = Math.min(chunk, count - done);
      if (this.noBatch.has('update')) {
        this.update(keys.subarray(done * ks, (done + 1) * ks), values.subarray(done * vs, (done + 1) * vs), flags);
        done += 1;
        continue;
      }
      const c = [n];
      const ret = native().bpf_map_update_batch(this.fd, keys.subarray(done * ks, (done + n) * ks), values.subarray(done * vs, (done + n) * vs), c, batchOpts(flags));
      if (ret < 0 && isUnsupported(-ret) && c[0] === 0) {
        this.noBatch.add('update');
        continue;
      }
      const at = done + (c[0] ?? 0);
      if (ret < 0) throw this.error('bpf_map_update_batch', -ret, keys.subarray(at * ks, (at + 1) * ks), { written: at });
      done += n;
    }
    return done;
  }

  /** deleteBatch for `count` keys laid out one after the other in `keys`. Absent keys are skipped. */
  deleteColumns(keys: Buffer, count: number): number {
    const ks = this.keySize;
    const list = new Array<Buffer>(count);
    for (let i = 0; i < count; i++) list[i] = keys.subarray(i * ks, (i + 1) * ks);
    return this.deleteBatch(list);
  }

  /**
   * lookupBatch into columns: every key one after the other in `keys`, every value (whole, per-CPU
   * maps included) likewise in `values`; no Buffer per entry. `atMost`: stop once that many were
   * read (an array map walks its keys from 0: its first `atMost` slots).
   */
  lookupBatchColumns(chunk = 1024, atMost = Infinity): { keySize: number; valueSize: number; count: number; keys: Buffer; values: Buffer } {
    const ks = this.keySize;
    const vs = this.valueBufferSize;
    if (this.noBatch.has('lookup')) {
      const all = [...this.entries()];
      return { keySize: ks, valueSize: vs, count: all.length, keys: Buffer.concat(all.map(([k]) => k)), values: Buffer.concat(all.map(([, v]) => v)) };
    }
    const keyParts: Buffer[] = [];
    const valueParts: Buffer[] = [];
    let count = 0;
    const tokenSize = Math.max(ks, 8);
    let inBatch: Buffer | null = null;
    let size = Math.max(1, Math.min(chunk, this.maxEntries, atMost));
    for (let round = 0; round < this.maxEntries + 16; round++) {
      const outBatch = Buffer.alloc(tokenSize);
      const keys = Buffer.allocUnsafe(ks * size);
      const values = Buffer.allocUnsafe(vs * size);
      const n = [size];
      const ret = native().bpf_map_lookup_batch(this.fd, inBatch, outBatch, keys, values, n, batchOpts(0));
      if (ret < 0 && -ret === ENOSPC && (n[0] ?? 0) === 0) {
        size *= 2; // a hash bucket holds more entries than fit: retry the same position, bigger
        continue;
      }
      if (ret < 0 && isUnsupported(-ret) && count === 0) {
        this.noBatch.add('lookup');
        return this.lookupBatchColumns(chunk, atMost);
      }
      if (ret < 0 && -ret !== ENOENT) throw this.error('bpf_map_lookup_batch', -ret, undefined, { read: count });
      const got = n[0] ?? 0;
      keyParts.push(keys.subarray(0, got * ks));
      valueParts.push(values.subarray(0, got * vs));
      count += got;
      if (ret < 0 || count >= atMost) return { keySize: ks, valueSize: vs, count, keys: Buffer.concat(keyParts), values: Buffer.concat(valueParts) };
      inBatch = outBatch;
    }
    throw new LbError('LB_BPF_MAP', `batch lookup of map ${this.name} did not end`, { map: this.name });
  }

  /**
   * Reads every entry with BPF_MAP_LOOKUP_BATCH, or by iteration where the map type has no batch
   * support. Per-CPU values come back whole (use splitPerCpu).
   */
  lookupBatch(chunk = 256): Array<[Buffer, Buffer]> {
    if (this.noBatch.has('lookup')) return [...this.entries()];
    const out: Array<[Buffer, Buffer]> = [];
    const tokenSize = Math.max(this.keySize, 8);
    let inBatch: Buffer | null = null;
    let size = Math.max(1, Math.min(chunk, this.maxEntries));
    for (let round = 0; round < this.maxEntries + 16; round++) {
      const outBatch = Buffer.alloc(tokenSize);
      const keys = Buffer.alloc(this.keySize * size);
      const values = Buffer.alloc(this.valueBufferSize * size);
      const count = [size];
      const ret = native().bpf_map_lookup_batch(this.fd, inBatch, outBatch, keys, values, count, batchOpts(0));
      if (ret < 0 && -ret === ENOSPC && (count[0] ?? 0) === 0) {
        size *= 2; // a hash bucket holds more entries than fit: retry the same position, bigger
        continue;
      }
      if (ret < 0 && isUnsupported(-ret) && out.length === 0) {
        this.noBatch.add('lookup');
        return [...this.entries()];
      }
      if (ret < 0 && -ret !== ENOENT) throw this.error('bpf_map_lookup_batch', -ret, undefined, { read: out.length });
      const got = count[0] ?? 0;
      for (let i = 0; i < got; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * this.valueBufferSize, (i + 1) * this.valueBufferSize)),
        ]);
      }
      if (ret < 0) return out; // ENOENT: the walk is complete
      inBatch = outBatch;
    }
    throw new LbError('LB_BPF_MAP', `batch lookup of map ${this.name} did not end`, { map: this.name });
  }

  /**
   * Deletes many keys with BPF_MAP_DELETE_BATCH, or one by one where the map type has no batch
   * support. Absent keys are skipped. Returns the number deleted.
   */
  deleteBatch(keys: Iterable<Buffer>, chunk = 1024): number {
    const list = [...keys];
    for (const key of list) this.checkKey(key, 'deleteBatch');
    let pos = 0;
    let deleted = 0;
    while (pos < list.length) {
      if (this.noBatch.has('delete')) {
        if (this.delete(list[pos]!)) deleted += 1;
        pos += 1;
        continue;
      }
      const n = Math.min(chunk, list.length - pos);
      const count = [n];
      const ret = native().bpf_map_delete_batch(this.fd, Buffer.concat(list.slice(pos, pos + n)), count, batchOpts(0));
      const processed = count[0] ?? 0;
      if (ret < 0 && isUnsupported(-ret) && processed === 0) {
        this.noBatch.add('delete');
        continue;
      }
      deleted += processed;
      if (ret === 0) {
        pos += n;
      } else if (-ret === ENOENT) {
        pos += processed + 1; // the key at `processed` was absent: skip it
      } else {
        throw this.error('bpf_map_delete_batch', -ret, list[pos + processed], { deleted });
      }
    }
    return deleted;
  }

  /** Closes the fd (the map lives on while pinned or used by a program). */
  close(): void {
    if (this.fdValue >= 0) closeFd(this.fdValue);
    this.fdValue = -1;
  }

  private fullValue(value: Buffer): Buffer {
    if (value.length === this.valueBufferSize) return value;
    if (this.perCpu && value.length === this.valueSize) {
      const full = Buffer.alloc(this.valueBufferSize);
      for (let cpu = 0; cpu < this.cpus; cpu++) value.copy(full, cpu * this.valueStride);
      return full;
    }
    const expected = this.perCpu ? `${this.valueSize} or ${this.valueBufferSize}` : `${this.valueSize}`;
    throw new LbError('LB_BPF_MAP', `value for map ${this.name} has ${value.length} bytes, expected ${expected}`,
      { map: this.name, valueLength: value.length, valueSize: this.valueSize });
  }

  private checkKey(key: Buffer, op: string): void {
    if (key.length !== this.keySize) {
      throw new LbError('LB_BPF_MAP', `${op} on map ${this.name}: key has ${key.length} bytes, expected ${this.keySize}`,
        { map: this.name, op, keyLength: key.length, keySize: this.keySize });
    }
  }

  private error(op: string, errno: number, key?: Buffer, extra: Record<string, unknown> = {}): LbError {
    return bpfError('LB_BPF_MAP', `${op} on map ${this.name}`, errno, {
      map: this.name, op, ...(key ? { key: key.toString('hex') } : {}), ...extra,
    });
  }
}

function batchOpts(elemFlags: number): Buffer {
  const opts = Buffer.alloc(MAP_BATCH_OPTS.size);
  opts.writeBigUInt64LE(BigInt(MAP_BATCH_OPTS.size), 0);
  opts.writeBigUInt64LE(BigInt(elemFlags), MAP_BATCH_OPTS.elem_flags);
  return opts;
}

function isUnsupported(errno: number): boolean {
  return errno === ENOTSUPP || errno === EOPNOTSUPP;
}
