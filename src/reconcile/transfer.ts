// Large values between the daemon's thread and its prepare worker, in slices.
//
// postMessage deserializes a message on the receiving thread in one go, and Node delivers every
// queued message in one turn of the event loop: a 10,000-proxy config (about 9 MB serialized) then
// blocks the daemon's thread for hundreds of milliseconds however it is split into messages. So a
// value travels as serialized bytes (transferred, not copied) and the daemon's thread deserializes
// them itself, one slice at a time, yielding to the event loop between slices: /healthz, webhooks
// and the control socket are served in between.
//
// Arrays (and Maps) longer than the slice size are cut out of the value, anywhere in it, and sent
// as slices of at most that many elements; the rest of the value is one slice. Elements of a cut
// array are not searched further (the values sent hold big arrays of small objects).
//
// v8.serialize keeps Maps, Sets, Dates, typed arrays and Buffers; class instances arrive as plain
// objects, and functions cannot be sent (the caller sends data only).

import { deserialize, serialize } from 'node:v8';

/** Elements per slice: a slice of small objects deserializes in a few milliseconds. */
export const DEFAULT_SLICE = 200;

const CUT = '__lbTransferCut';

interface CutMark { [CUT]: number; kind: 'array' | 'map'; length: number }

/** A value as serialized slices: the skeleton first, then each cut array's elements in order. */
export interface Transfer {
  parts: ArrayBuffer[];
}

function isCut(v: unknown): v is CutMark {
  return typeof v === 'object' && v !== null && CUT in v;
}

/**
 * A value's serialized bytes and one more: 1 when it holds a Uint8Array (a Buffer, which arrives
 * as a plain Uint8Array and is made a Buffer again), 0 when the receiver has nothing to revive.
 * The walk for Buffers cost the daemon's thread as much as deserializing a slice of a config;
 * the sender (the worker, mostly) now walks instead.
 */
function bytesOf(value: unknown): ArrayBuffer {
  const b = serialize(value);
  // A fresh ArrayBuffer of exactly these bytes: it can be transferred without dragging a pool along.
  const out = new ArrayBuffer(b.byteLength + 1);
  const bytes = new Uint8Array(out);
  bytes.set(b);
  bytes[b.byteLength] = holdsBytes(value) ? 1 : 0;
  return out;
}

/** A part's value, its Buffers revived when the sender said it holds any. */
function valueOf(part: ArrayBuffer): unknown {
  const bytes = new Uint8Array(part);
  if (bytes.byteLength === 0) throw new Error('transfer: an empty part');
  const value = deserialize(bytes.subarray(0, bytes.byteLength - 1));
  return bytes[bytes.byteLength - 1] === 1 ? reviveBuffers(value) : value;
}

/** Whether reviveBuffers could find a Uint8Array in `v` (any object is searched: a class instance arrives as a plain one). */
function holdsBytes(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (v instanceof Uint8Array) return true;
  if (ArrayBuffer.isView(v) || v instanceof Date || v instanceof ArrayBuffer) return false;
  if (Array.isArray(v)) return v.some(holdsBytes);
  if (v instanceof Map) {
    for (const x of v.values()) if (holdsBytes(x)) return true;
    return false;
  }
  if (v instanceof Set) return false;
  for (const x of Object.values(v)) if (holdsBytes(x)) return true;
  return false;
}

/**
 * Serializes `value` as slices. A generator, so a caller on the daemon's thread can yield to the
 * event loop between slices (sendSliced); the worker takes them all at once.
 */
export function* serializeSliced(value: unknown, slice = DEFAULT_SLICE): Generator<ArrayBuffer> {
  const cuts: Array<unknown[]> = [];
  const skeleton = cutLarge(value, slice, cuts);
  yield bytesOf(skeleton);
  for (const items of cuts) {
    for (let i = 0; i < items.length; i += slice) yield bytesOf(items.slice(i, i + slice));
  }
}

function cutLarge(v: unknown, slice: number, cuts: Array<unknown[]>): unknown {
  if (Array.isArray(v)) {
    if (v.length > slice) {
      cuts.push(v);
      return { [CUT]: cuts.length - 1, kind: 'array', length: v.length } satisfies CutMark;
    }
    return v.map((x) => cutLarge(x, slice, cuts));
  }
  if (v instanceof Map) {
    if (v.size > slice) {
      cuts.push([...v.entries()]);
      return { [CUT]: cuts.length - 1, kind: 'map', length: v.size } satisfies CutMark;
    }
    return new Map([...v.entries()].map(([k, x]) => [k, cutLarge(x, slice, cuts)]));
  }
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = cutLarge(x, slice, cuts);
    return out;
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Rebuilds a value from its slices. `pause` runs between slices: the daemon's thread passes a
 * yield to the event loop, the worker none.
 */
export async function deserializeSliced<T>(parts: readonly ArrayBuffer[], pause: () => Promise<void> = async () => {}): Promise<T> {
  const first = parts[0];
  if (first === undefined) throw new Error('transfer: no parts');
  let root = valueOf(first);
  const marks: Array<{ mark: CutMark; set: (v: unknown) => void }> = [];
  collectMarks(root, marks, (v) => { root = v; });
  marks.sort((a, b) => a.mark[CUT] - b.mark[CUT]);
  let next = 1;
  for (const { mark, set } of marks) {
    const items: unknown[] = [];
    while (items.length < mark.length) {
      await pause();
      const part = parts[next++];
      if (part === undefined) throw new Error(`transfer: ${parts.length} parts end before cut ${mark[CUT]} is complete`);
      for (const x of valueOf(part) as unknown[]) items.push(x);
    }
    set(mark.kind === 'map' ? new Map(items as Array<[unknown, unknown]>) : items);
  }
  if (next !== parts.length) throw new Error(`transfer: ${parts.length - next} parts left over`);
  return root as T;
}

function collectMarks(v: unknown, marks: Array<{ mark: CutMark; set: (v: unknown) => void }>, set: (v: unknown) => void): void {
  if (isCut(v)) {
    marks.push({ mark: v, set });
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => collectMarks(x, marks, (y) => { v[i] = y; }));
  } else if (v instanceof Map) {
    for (const [k, x] of v) collectMarks(x, marks, (y) => { v.set(k, y); });
  } else if (isPlainObject(v)) {
    for (const [k, x] of Object.entries(v)) collectMarks(x, marks, (y) => { v[k] = y; });
  }
}

/** A Uint8Array that crossed as such is a Buffer again (the data plane code expects Buffers). */
function reviveBuffers(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null) v[i] = reviveBuffers(x);
    }
  } else if (v instanceof Map) {
    for (const [k, x] of v) if (typeof x === 'object' && x !== null) v.set(k, reviveBuffers(x));
  } else if (isPlainObject(v)) {
    for (const [k, x] of Object.entries(v)) if (typeof x === 'object' && x !== null) v[k] = reviveBuffers(x);
  }
  return v;
}

/** One turn of the event loop: I/O callbacks (an HTTP request, a socket) run before this resolves. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** A value's slices, serialized on the daemon's thread with a turn of the event loop between slices. */
export async function sliced(value: unknown): Promise<ArrayBuffer[]> {
  const parts: ArrayBuffer[] = [];
  for (const part of serializeSliced(value)) {
    parts.push(part);
    await yieldToEventLoop();
  }
  return parts;
}
