// A batch of lb_event records as the ring worker posts them (records back to back, 80 bytes each),
// read in place: the consumer's sinks (access log, statistics, metrics) take fields by index
// instead of one object per record. A record's decode into a ConnEvent (six BigInts, three
// formatted addresses, a 17-field object) cost more than everything the access log then did with
// it; here a u64 is two u32 reads, an address string comes from a cache, and only the rare
// consumers (the sweep, `lb top`'s recent closes, tests) build objects (record(), records()).
//
// `keep` marks the records to deliver (FlowTracker clears duplicate closes); `names` and the clock
// offset are set by the event hub before the sinks see the batch.

import { CLOSE_REASONS, IPPROTO_TCP, LAYOUTS, LB_EV_CLOSE, LB_EV_OPEN, decodeEvent, encodeEvent, ipv4ToU32, u32ToIpv4, type CloseReason, type ConnEvent } from '../../core/abi.js';

export const RECORD_SIZE = LAYOUTS.lb_event.size;
const F = LAYOUTS.lb_event.fields;
const TWO32 = 4294967296;

/** A record with the operator's names and wall-clock times (what record(i) builds). */
export interface ConnRecord extends ConnEvent {
  /** Proxy of the flow's listener (null: not known to the active configuration). */
  proxy: string | null;
  /** "iface vip:port/proto" of the listener, or null. */
  listener: string | null;
  /** Wall-clock ms of the event and of the flow's start. */
  timeMs: number;
  openMs: number;
  /** Close only: ts - open, in seconds. */
  durationSec: number;
  /**
   * A connection of the SNI acceptor (src/acceptor/conn-events.ts), not of the data plane: the
   * group that routed it (`sni:NAME`, a source prefix, `default`) and the name the client sent.
   * Its listenerId and targetId are 0, its packet counts 0 (user space counts bytes only).
   */
  acceptor?: AcceptorRoute;
}

export interface AcceptorRoute {
  route: string;
  serverName: string | null;
}

/** What an acceptor record carries beyond the ring's fields: its names (listener id 0 names nothing) and route. */
interface AcceptorExtra extends AcceptorRoute {
  names: ListenerNames;
}

export interface ListenerNames {
  proxy: string | null;
  label: string;
}

/*
 * Address strings by value. Backends and VIPs are few; clients are many, so the cache is bounded
 * and starts over when full (a miss formats the address, as decodeEvent did every time).
 */
const ipCache = new Map<number, string>();
const IP_CACHE_MAX = 65_536;
export function ipString(v: number): string {
  let s = ipCache.get(v);
  if (s === undefined) {
    if (ipCache.size >= IP_CACHE_MAX) ipCache.clear();
    s = u32ToIpv4(v);
    ipCache.set(v, s);
  }
  return s;
}

export class ConnBatch {
  /** 1: deliver record i. All set at construction. */
  readonly keep: Uint8Array;
  /** Kept records (count minus those cleared in keep). */
  kept: number;
  /** Listener id -> names (the hub's current map). */
  names: ReadonlyMap<number, ListenerNames> = new Map();
  /** CLOCK_MONOTONIC ms + offsetMs = wall-clock ms. */
  offsetMs = 0;
  private built: ConnRecord[] | undefined;
  /** Per record, the SNI acceptor's extras (ofAcceptor: AcceptorRecords); undefined for the ring's batches. */
  private acceptorExtras: (AcceptorExtra | undefined)[] | undefined;
  /** The records as u32 words (records are 80 bytes: every field's offset is a multiple of its size). */
  private readonly words: Uint32Array;
  readonly data: Buffer;

  constructor(data: Buffer, readonly count: number) {
    // The worker's buffers start at offset 0; a pooled Buffer may not be 4-aligned: copy it once.
    this.data = data.byteOffset % 4 === 0 ? data : Buffer.from(new Uint8Array(data).buffer);
    this.words = new Uint32Array(this.data.buffer, this.data.byteOffset, (count * RECORD_SIZE) >> 2);
    this.keep = new Uint8Array(count).fill(1);
    this.kept = count;
  }

  /** A batch of records given as objects (the sweep's closes, tests): encoded, then read like the ring's. */
  static of(events: readonly ConnEvent[]): ConnBatch {
    const data = Buffer.allocUnsafe(events.length * RECORD_SIZE);
    for (let i = 0; i < events.length; i++) encodeEvent(events[i]!).copy(data, i * RECORD_SIZE);
    return new ConnBatch(data, events.length);
  }

  /** Records written by an AcceptorRecords, with each one's names and route beside them. */
  static ofAcceptor(data: Buffer, count: number, extras: AcceptorExtra[]): ConnBatch {
    const b = new ConnBatch(data, count);
    b.acceptorExtras = extras;
    return b;
  }

  /** The SNI acceptor's route of record i (undefined: a data-plane flow). */
  acceptor(i: number): AcceptorRoute | undefined {
    return this.acceptorExtras?.[i];
  }

  drop(i: number): void {
    if (this.keep[i] === 1) {
      this.keep[i] = 0;
      this.kept--;
    }
  }

  // Host order is little-endian (abi.ts writes host-order fields LE): words[] reads them as stored.
  private u64(i: number, field: number): number {
    const w = (i * RECORD_SIZE + field) >> 2;
    return this.words[w]! + this.words[w + 1]! * TWO32;
  }
  private u32(i: number, field: number): number {
    return this.words[(i * RECORD_SIZE + field) >> 2]!;
  }
  private be32(i: number, field: number): number {
    const x = this.words[(i * RECORD_SIZE + field) >> 2]!;
    return ((x << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
  }
  private be16(i: number, field: number): number {
    const o = i * RECORD_SIZE + field;
    return (this.data[o]! << 8) | this.data[o + 1]!;
  }

  isClose(i: number): boolean {
    return this.data[i * RECORD_SIZE + F.type] === LB_EV_CLOSE;
  }
  /** Nanoseconds as a number: exact below 2^53 ns (104 days of uptime), within a microsecond after. */
  tsNs(i: number): number {
    return this.u64(i, F.ts_ns);
  }
  openNs(i: number): number {
    return this.u64(i, F.open_ns);
  }
  packetsIn(i: number): number {
    return this.u64(i, F.packets_in);
  }
  bytesIn(i: number): number {
    return this.u64(i, F.bytes_in);
  }
  packetsOut(i: number): number {
    return this.u64(i, F.packets_out);
  }
  bytesOut(i: number): number {
    return this.u64(i, F.bytes_out);
  }
  clientAddr(i: number): number {
    return this.be32(i, F.client_addr);
  }
  vipAddr(i: number): number {
    return this.be32(i, F.vip_addr);
  }
  backendAddr(i: number): number {
    return this.be32(i, F.backend_addr);
  }
  listenerId(i: number): number {
    return this.u32(i, F.listener_id);
  }
  targetId(i: number): number {
    return this.u32(i, F.target_id);
  }
  clientPort(i: number): number {
    return this.be16(i, F.client_port);
  }
  vipPort(i: number): number {
    return this.be16(i, F.vip_port);
  }
  backendPort(i: number): number {
    return this.be16(i, F.backend_port);
  }
  proto(i: number): number {
    return this.data[i * RECORD_SIZE + F.proto]!;
  }
  reason(i: number): string {
    return CLOSE_REASONS[this.data[i * RECORD_SIZE + F.reason]!] ?? '';
  }
  /** Close only: ts - open in seconds (0 for an open). */
  durationSec(i: number): number {
    if (!this.isClose(i)) return 0;
    const d = this.tsNs(i) - this.openNs(i);
    return d > 0 ? d / 1e9 : 0;
  }
  timeMs(i: number): number {
    return this.tsNs(i) / 1e6 + this.offsetMs;
  }
  openMs(i: number): number {
    return this.openNs(i) / 1e6 + this.offsetMs;
  }
  listener(i: number): ListenerNames | undefined {
    const extra = this.acceptorExtras?.[i];
    return extra ? extra.names : this.names.get(this.listenerId(i));
  }

  /** Record i as an object (every field, BigInt counters as ConnEvent has them). */
  record(i: number): ConnRecord {
    const e = decodeEvent(this.data, i * RECORD_SIZE);
    const names = this.listener(i);
    const extra = this.acceptorExtras?.[i];
    return {
      ...e, proxy: names?.proxy ?? null, listener: names?.label ?? null, timeMs: this.timeMs(i), openMs: this.openMs(i),
      durationSec: e.type === 'close' && e.tsNs > e.openNs ? Number(e.tsNs - e.openNs) / 1e9 : 0,
      ...(extra ? { acceptor: { route: extra.route, serverName: extra.serverName } } : {}),
    };
  }

  /** The kept records as objects, built once per batch (for consumers that want objects). */
  records(): ConnRecord[] {
    if (this.built) return this.built;
    const out: ConnRecord[] = [];
    for (let i = 0; i < this.count; i++) if (this.keep[i] === 1) out.push(this.record(i));
    this.built = out;
    return out;
  }
}

/** A connection of the SNI acceptor as its records name it (src/acceptor's AcceptorConn is one). */
export interface AcceptorConnNames {
  proxy: string;
  /** "iface vip:port/tcp" ("*" for a listener without address), as the data plane's listeners are labelled. */
  listener: string;
  /** The group that chose the backend: `sni:NAME`, a source prefix or `default`. */
  route: string;
  serverName: string | null;
  client: string; clientPort: number;
  vip: string; vipPort: number;
  backend: string; backendPort: number;
}

/** Records a batch starts with room for; it doubles as it fills. */
const ACCEPTOR_BATCH_START = 32;

/**
 * The SNI acceptor's records as they are made (an open, a close), written in place in the ring's
 * layout, for the hub to deliver as one ConnBatch (take()). No object per record and no BigInt:
 * a connection costs two 80-byte writes, where a record object, its BigInt fields and its
 * encoding each cost more than every sink's use of it (bench sni, the daemon's share).
 */
export class AcceptorRecords {
  private data = Buffer.alloc(ACCEPTOR_BATCH_START * RECORD_SIZE);
  private words = new Uint32Array(this.data.buffer, this.data.byteOffset, this.data.length >> 2);
  private extras: AcceptorExtra[] = [];
  count = 0;

  /**
   * One record: `tsNs` when it happened and `openNs` when the connection was accepted
   * (CLOCK_MONOTONIC ns, as numbers); a close with its bytes each way and its reason.
   */
  add(c: AcceptorConnNames, tsNs: number, openNs: number, close?: { bytesIn: number; bytesOut: number; reason: CloseReason }): void {
    if ((this.count + 1) * RECORD_SIZE > this.data.length) this.grow();
    const o = this.count * RECORD_SIZE;
    const w = o >> 2;
    const words = this.words;
    setU64(words, w + (F.ts_ns >> 2), tsNs);
    setU64(words, w + (F.open_ns >> 2), openNs);
    if (close) {
      setU64(words, w + (F.bytes_in >> 2), close.bytesIn);
      setU64(words, w + (F.bytes_out >> 2), close.bytesOut);
    }
    // Addresses and ports in network order, as the kernel writes them.
    words[w + (F.client_addr >> 2)] = bswap32(ipv4ToU32(c.client));
    words[w + (F.vip_addr >> 2)] = bswap32(ipv4ToU32(c.vip));
    words[w + (F.backend_addr >> 2)] = bswap32(ipv4ToU32(c.backend));
    const d = this.data;
    d.writeUInt16BE(c.clientPort, o + F.client_port);
    d.writeUInt16BE(c.vipPort, o + F.vip_port);
    d.writeUInt16BE(c.backendPort, o + F.backend_port);
    d[o + F.proto] = IPPROTO_TCP;
    d[o + F.type] = close ? LB_EV_CLOSE : LB_EV_OPEN;
    d[o + F.reason] = close ? CLOSE_REASONS.indexOf(close.reason) : 0;
    this.extras.push({ route: c.route, serverName: c.serverName, names: { proxy: c.proxy, label: c.listener } });
    this.count++;
  }

  /** The records written since the last take, as one batch (undefined: none). */
  take(): ConnBatch | undefined {
    if (this.count === 0) return undefined;
    const batch = ConnBatch.ofAcceptor(this.data.subarray(0, this.count * RECORD_SIZE), this.count, this.extras);
    this.data = Buffer.alloc(ACCEPTOR_BATCH_START * RECORD_SIZE);
    this.words = new Uint32Array(this.data.buffer, this.data.byteOffset, this.data.length >> 2);
    this.extras = [];
    this.count = 0;
    return batch;
  }

  private grow(): void {
    const next = Buffer.alloc(this.data.length * 2);
    this.data.copy(next);
    this.data = next;
    this.words = new Uint32Array(next.buffer, next.byteOffset, next.length >> 2);
  }
}

/** A u64 field from a number (exact below 2^53) as two host-order (little-endian) words. */
function setU64(words: Uint32Array, w: number, v: number): void {
  const lo = v % TWO32;
  words[w] = lo;
  words[w + 1] = (v - lo) / TWO32;
}

function bswap32(x: number): number {
  return ((x << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}
