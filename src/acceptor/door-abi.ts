// The records of the native front door's control socket (native/lb_door_abi.h, mirrored here;
// test/integration/acceptor/door-abi.test.ts checks the two agree): encoders for what the daemon
// sends (the routing table the door decides from among them), a decoder for what the door sends.
// Pure: bytes and tables in, values out.

import { sniGroupName, type SpliceBackend, type SpliceListener } from '../core/sni/splice-table.js';
import { ipString } from '../observe/events/conn-batch.js';
import { listenerLabel } from './accounting.js';


const REC_HEADER = 16;
/** The records' version (LB_DOOR_ABI): a door of another build is replaced, not read. */
export const DOOR_ABI = 3;
/** The largest record either side sends or accepts. */
export const MAX_REC = 256 * 1024;
/** The largest routing table (LB_DOOR_MAX_TABLE), sent in parts of at most MAX_REC. */
export const MAX_TABLE = 64 << 20;

/** Record types (LB_DOOR_*). */
export const DoorRec = {
  HELLO: 1, OPENED: 2, FAILED: 3, DROPPED: 4, ENDED: 5, HELD: 6, STATS: 7, DECIDED: 8,
  CONFIG: 16, ROUTE: 17, MORE: 18, RESET: 19, TABLE: 20,
} as const;

/** A HELD's flag: its blob is the door's DECIDED record of the connection. */
export const HELD_DECIDED = 1;

/** Flags of a HELLO. */
export const HELLO_EOF = 1;
export const HELLO_FULL = 2;

/** How often the door sends its counters at most (LB_DOOR_STATS_MS). */
export const STATS_MS = 100;
/** How long a record without a question waits for its batch at most (LB_DOOR_BATCH_MS). */
export const BATCH_MS = 100;

/**
 * Each struct's size and its fields' offsets, as lb_door_abi.h lays them out: the one table the
 * encoders and the decoder read, and the one the test compiles against the header.
 */
export const Layout = {
  lb_door_rec: { size: 16, len: 0, type: 4, flags: 6, id: 8 },
  lb_door_hello: { size: 48, client_ip: 16, local_ip: 20, client_port: 24, local_port: 26, accepted_ns: 32, accepted_ms: 40 },
  lb_door_opened: { size: 24, at_ns: 16 },
  lb_door_failed: { size: 24, err: 16 },
  lb_door_ended: { size: 48, up: 16, down: 24, reason: 32, by: 33, at_ns: 40 },
  lb_door_held: { size: 40, up: 16, down: 24, blob_len: 32 },
  lb_door_stats: { size: 64, accepted: 16, over_limit: 24, hello_timeout: 32, active: 40, spliced: 48, abi: 56 },
  lb_door_config: { size: 48, hello_timeout_ms: 16, connect_timeout_ms: 20, idle_timeout_ms: 24, max_connections: 28, max_hello_stream: 32, splice_after: 36, abi: 40 },
  lb_door_route: { size: 32, backend_ip: 16, backend_port: 20, header_len: 22, blob_len: 24 },
  lb_door_decided: {
    size: 64, client_ip: 16, local_ip: 20, backend_ip: 24, client_port: 28, local_port: 30, backend_port: 32, proxy_len: 34, group_len: 36,
    listener_len: 38, accepted_ns: 40, accepted_ms: 48, replay: 56, name_len: 60, header_len: 62,
  },
  lb_door_table_part: { size: 24, total_len: 16, offset: 20 },
  lb_door_table: { size: 32, n_listeners: 0, n_sources: 4, n_snis: 8, n_groups: 12, n_backends: 16, strings_len: 20, max_hello_bytes: 24 },
  lb_door_t_listener: {
    size: 40, vip: 0, port: 4, any: 6, default_group: 8, src_first: 12, src_count: 16, sni_first: 20, sni_count: 24, proxy_off: 28, listener_off: 32,
    proxy_len: 36, listener_len: 38,
  },
  lb_door_t_source: { size: 12, network: 0, prefix_len: 4, group: 8 },
  lb_door_t_sni: { size: 12, name_off: 0, name_len: 4, wildcard: 6, group: 8 },
  lb_door_t_group: { size: 16, backend_first: 0, backend_count: 4, name_off: 8, name_len: 12, persist: 14 },
  lb_door_t_backend: { size: 12, ip: 0, port: 4, proxy_protocol: 6, weight: 8 },
} as const;

export type EndReason = 'closed' | 'reset' | 'idle';
export const END_REASONS: readonly EndReason[] = ['closed', 'reset', 'idle'];
export const BY: ReadonlyArray<'client' | 'backend' | undefined> = [undefined, 'client', 'backend'];

/** The door's counters, and its record version (0: a door from before versions, whose STATS is shorter). */
export interface DoorStats { accepted: number; overLimit: number; helloTimeout: number; active: number; spliced: number; abi: number }

/** A record from the door. Ids are the door's u64s. */
export type DoorRecord =
  | { type: 'hello'; id: bigint; eof: boolean; full: boolean; clientIp: string; clientPort: number; localIp: string; localPort: number;
    acceptedNs: bigint; acceptedMs: number; bytes: Buffer }
  | { type: 'opened'; id: bigint; atNs: bigint }
  | { type: 'failed'; id: bigint; err: number }
  | { type: 'dropped'; id: bigint }
  | { type: 'ended'; id: bigint; up: number; down: number; reason: EndReason; by?: 'client' | 'backend'; atNs: bigint }
  | { type: 'held'; id: bigint; up: number; down: number; blob: Buffer; decided?: DecidedRecord }
  | { type: 'stats'; stats: DoorStats }
  | DecidedRecord;

/** A connection the door decided from the table (LB_DOOR_DECIDED). */
export interface DecidedRecord {
  type: 'decided'; id: bigint;
  clientIp: string; clientPort: number; localIp: string; localPort: number; backendIp: string; backendPort: number;
  acceptedNs: bigint; acceptedMs: number; replay: number; headerLen: number;
  proxy: string; group: string; listener: string; serverName: string | null;
}

export interface DoorConfig {
  helloTimeoutMs: number; connectTimeoutMs: number; idleTimeoutMs: number; maxConnections: number;
  maxHelloStream: number; spliceAfter: number;
}

function writeIpv4(b: Buffer, at: number, ip: string): void {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  for (let i = 0; i < 4; i++) b[at + i] = parts[i]!;
}

function header(len: number, type: number, id: bigint): Buffer {
  const R = Layout.lb_door_rec;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(len, R.len);
  b.writeUInt16LE(type, R.type);
  b.writeBigUInt64LE(id, R.id);
  return b;
}

const u32 = (v: number): number => Math.max(0, Math.min(0xffffffff, Math.floor(v)));

export function encodeConfig(c: DoorConfig): Buffer {
  const L = Layout.lb_door_config;
  const b = header(L.size, DoorRec.CONFIG, 0n);
  b.writeUInt32LE(u32(c.helloTimeoutMs), L.hello_timeout_ms);
  b.writeUInt32LE(u32(c.connectTimeoutMs), L.connect_timeout_ms);
  b.writeUInt32LE(u32(c.idleTimeoutMs), L.idle_timeout_ms);
  b.writeUInt32LE(u32(c.maxConnections), L.max_connections);
  b.writeUInt32LE(u32(c.maxHelloStream), L.max_hello_stream);
  b.writeUInt32LE(u32(c.spliceAfter), L.splice_after);
  b.writeUInt32LE(DOOR_ABI, L.abi);
  return b;
}

/** Connect the connection `id` to backend addr:port, writing `header` (PROXY v2) before the hello; `blob` comes back in HELD. */
export function encodeRoute(id: bigint, addr: string, port: number, header_: Buffer | null, blob: Buffer): Buffer {
  const L = Layout.lb_door_route;
  const h = header_ ?? Buffer.alloc(0);
  const b = header(L.size + h.length + blob.length, DoorRec.ROUTE, id);
  writeIpv4(b, L.backend_ip, addr);
  b.writeUInt16LE(port, L.backend_port);
  b.writeUInt16LE(h.length, L.header_len);
  b.writeUInt32LE(blob.length, L.blob_len);
  h.copy(b, L.size);
  blob.copy(b, L.size + h.length);
  return b;
}

export function encodeMore(id: bigint): Buffer {
  return header(REC_HEADER, DoorRec.MORE, id);
}

export function encodeReset(id: bigint): Buffer {
  return header(REC_HEADER, DoorRec.RESET, id);
}

/**
 * Splits a stream of records: the records whole in `buf` from `at`, and where the next one starts.
 * Throws on a record the daemon cannot take (a length out of bounds): the stream is lost from there.
 * Each record is read in place (no view per record): a connection is three records, and the
 * daemon reads hundreds of them a second per hundred connections (bench sni).
 */
export function decodeRecords(buf: Buffer, at = 0): { records: DoorRecord[]; next: number } {
  const records: DoorRecord[] = [];
  while (buf.length - at >= REC_HEADER) {
    const len = buf.readUInt32LE(at);
    if (len < REC_HEADER || len > MAX_REC) throw new Error(`door record of ${len} bytes at stream offset ${at}`);
    if (buf.length - at < len) break;
    const r = decodeRecord(buf, at, len);
    if (r) records.push(r);
    at += len;
  }
  return { records, next: at };
}

/** A u64 field as a number: exact below 2^53 (byte counts, wall-clock ms). */
function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 4294967296;
}

/** An address field (network order) as a string, from the event records' bounded cache. */
function ipv4At(b: Buffer, at: number): string {
  return ipString(b.readUInt32BE(at));
}

/**
 * One record, the `len` bytes of `buf` at `at` (default: all of `buf`); null for a type this daemon
 * does not know (a newer door). HELLO's bytes and HELD's blob are views of `buf`.
 */
export function decodeRecord(buf: Buffer, at = 0, len = buf.length - at): DoorRecord | null {
  const R = Layout.lb_door_rec;
  const type = buf.readUInt16LE(at + R.type);
  const flags = buf.readUInt16LE(at + R.flags);
  const id = buf.readBigUInt64LE(at + R.id);
  const need = (size: number): void => {
    if (len < size) throw new Error(`door record type ${type} of ${len} bytes, expected at least ${size}`);
  };
  switch (type) {
    case DoorRec.HELLO: {
      const L = Layout.lb_door_hello;
      need(L.size);
      return {
        type: 'hello', id, eof: (flags & HELLO_EOF) !== 0, full: (flags & HELLO_FULL) !== 0,
        clientIp: ipv4At(buf, at + L.client_ip), localIp: ipv4At(buf, at + L.local_ip), clientPort: buf.readUInt16LE(at + L.client_port), localPort: buf.readUInt16LE(at + L.local_port),
        acceptedNs: buf.readBigUInt64LE(at + L.accepted_ns), acceptedMs: u64(buf, at + L.accepted_ms), bytes: buf.subarray(at + L.size, at + len),
      };
    }
    case DoorRec.OPENED:
      need(Layout.lb_door_opened.size);
      return { type: 'opened', id, atNs: buf.readBigUInt64LE(at + Layout.lb_door_opened.at_ns) };
    case DoorRec.DROPPED: return { type: 'dropped', id };
    case DoorRec.FAILED:
      need(Layout.lb_door_failed.size);
      return { type: 'failed', id, err: buf.readInt32LE(at + Layout.lb_door_failed.err) };
    case DoorRec.ENDED: {
      const L = Layout.lb_door_ended;
      need(L.size);
      const by = BY[buf[at + L.by]!];
      const reason = END_REASONS[buf[at + L.reason]!] ?? 'reset';
      const atNs = buf.readBigUInt64LE(at + L.at_ns);
      return by ? { type: 'ended', id, up: u64(buf, at + L.up), down: u64(buf, at + L.down), reason, by, atNs }
        : { type: 'ended', id, up: u64(buf, at + L.up), down: u64(buf, at + L.down), reason, atNs };
    }
    case DoorRec.HELD: {
      const L = Layout.lb_door_held;
      need(L.size);
      const blobLen = buf.readUInt32LE(at + L.blob_len);
      need(L.size + blobLen);
      const blob = buf.subarray(at + L.size, at + L.size + blobLen);
      if ((flags & HELD_DECIDED) === 0) return { type: 'held', id, up: u64(buf, at + L.up), down: u64(buf, at + L.down), blob };
      const decided = blob.length >= REC_HEADER && blob.readUInt32LE(0) === blob.length ? decodeRecord(blob) : null;
      if (decided?.type !== 'decided') throw new Error(`door HELD record of connection ${id}: its blob is not a DECIDED record`);
      return { type: 'held', id, up: u64(buf, at + L.up), down: u64(buf, at + L.down), blob, decided };
    }
    case DoorRec.DECIDED: {
      const L = Layout.lb_door_decided;
      need(L.size);
      const proxyLen = buf.readUInt16LE(at + L.proxy_len), groupLen = buf.readUInt16LE(at + L.group_len);
      const listenerLen = buf.readUInt16LE(at + L.listener_len), nameLen = buf.readUInt16LE(at + L.name_len);
      need(L.size + proxyLen + groupLen + listenerLen + nameLen);
      const s0 = at + L.size, s1 = s0 + proxyLen, s2 = s1 + groupLen, s3 = s2 + listenerLen;
      return {
        type: 'decided', id, clientIp: ipv4At(buf, at + L.client_ip), clientPort: buf.readUInt16LE(at + L.client_port),
        localIp: ipv4At(buf, at + L.local_ip), localPort: buf.readUInt16LE(at + L.local_port),
        backendIp: ipv4At(buf, at + L.backend_ip), backendPort: buf.readUInt16LE(at + L.backend_port),
        acceptedNs: buf.readBigUInt64LE(at + L.accepted_ns), acceptedMs: u64(buf, at + L.accepted_ms),
        replay: buf.readUInt32LE(at + L.replay), headerLen: buf.readUInt16LE(at + L.header_len),
        proxy: buf.toString('utf8', s0, s1), group: buf.toString('utf8', s1, s2), listener: buf.toString('utf8', s2, s3),
        serverName: nameLen === 0 ? null : buf.toString('utf8', s3, s3 + nameLen),
      };
    }
    case DoorRec.STATS: {
      const L = Layout.lb_door_stats;
      // The counters are where every version had them; the version only since LB_DOOR_ABI 1.
      need(L.abi);
      const abi = len >= L.abi + 4 ? buf.readUInt32LE(at + L.abi) : 0;
      return {
        type: 'stats',
        stats: { accepted: u64(buf, at + L.accepted), overLimit: u64(buf, at + L.over_limit), helloTimeout: u64(buf, at + L.hello_timeout), active: u64(buf, at + L.active), spliced: u64(buf, at + L.spliced), abi },
      };
    }
    default: return null;
  }
}

/**
 * The routing table the door decides from (LB_DOOR_TABLE): the listeners (one per address, as the
 * daemon finds them: listenersByAddress), each with its source routes (longest prefix first), SNI
 * routes (config order) and groups with their backends' effective weights: the whole table, to
 * send in parts (encodeTableParts). null when it is over MAX_TABLE: the door then decides nothing
 * and offers every hello to the daemon.
 */
export function encodeTable(listeners: readonly SpliceListener[], maxHelloBytes: number): Buffer | null {
  const strings = new Map<string, number>();
  let stringBytes = 0;
  const str = (v: string): { off: number; len: number } => {
    let off = strings.get(v);
    if (off === undefined) {
      strings.set(v, off = stringBytes);
      stringBytes += Buffer.byteLength(v, 'utf8');
    }
    return { off, len: Buffer.byteLength(v, 'utf8') };
  };
  const groups: Array<{ name: string; persist: boolean; backends: readonly SpliceBackend[]; first: number }> = [];
  let backendCount = 0;
  const group = (name: string, persist: boolean, backends: readonly SpliceBackend[]): number => {
    groups.push({ name, persist, backends, first: backendCount });
    backendCount += backends.length;
    return groups.length - 1;
  };
  const sources: Array<{ network: number; prefixLength: number; group: number }> = [];
  const snis: Array<{ name: string; wildcard: boolean; group: number }> = [];
  const ls = listeners.map((l) => {
    const srcFirst = sources.length;
    for (const r of l.sourceRoutes) sources.push({ network: r.network, prefixLength: r.prefixLength, group: group(r.prefix, r.persist, r.backends) });
    const sniFirst = snis.length;
    for (const r of l.sniRoutes) snis.push({ name: r.hostname.toLowerCase(), wildcard: r.wildcard, group: group(sniGroupName(r), r.persist, r.backends) });
    return { l, srcFirst, sniFirst, defaultGroup: group('default', l.persist, l.defaultBackends), proxy: str(l.proxy), label: str(listenerLabel(l)) };
  });
  const sniNames = snis.map((s) => str(s.name));
  const groupNames = groups.map((g) => str(g.name));
  const T = Layout.lb_door_table, TL = Layout.lb_door_t_listener, TS = Layout.lb_door_t_source, TN = Layout.lb_door_t_sni, TG = Layout.lb_door_t_group, TB = Layout.lb_door_t_backend;
  const len = T.size + ls.length * TL.size + sources.length * TS.size + snis.length * TN.size + groups.length * TG.size + backendCount * TB.size + stringBytes;
  if (len > MAX_TABLE) return null;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(ls.length, T.n_listeners);
  b.writeUInt32LE(sources.length, T.n_sources);
  b.writeUInt32LE(snis.length, T.n_snis);
  b.writeUInt32LE(groups.length, T.n_groups);
  b.writeUInt32LE(backendCount, T.n_backends);
  b.writeUInt32LE(stringBytes, T.strings_len);
  b.writeUInt32LE(u32(maxHelloBytes), T.max_hello_bytes);
  let at = T.size;
  for (const x of ls) {
    if (x.l.vip !== null) writeIpv4(b, at + TL.vip, x.l.vip);
    b.writeUInt16LE(x.l.port, at + TL.port);
    b[at + TL.any] = x.l.vip === null ? 1 : 0;
    b.writeUInt32LE(x.defaultGroup, at + TL.default_group);
    b.writeUInt32LE(x.srcFirst, at + TL.src_first);
    b.writeUInt32LE(x.l.sourceRoutes.length, at + TL.src_count);
    b.writeUInt32LE(x.sniFirst, at + TL.sni_first);
    b.writeUInt32LE(x.l.sniRoutes.length, at + TL.sni_count);
    b.writeUInt32LE(x.proxy.off, at + TL.proxy_off);
    b.writeUInt16LE(x.proxy.len, at + TL.proxy_len);
    b.writeUInt32LE(x.label.off, at + TL.listener_off);
    b.writeUInt16LE(x.label.len, at + TL.listener_len);
    at += TL.size;
  }
  for (const r of sources) {
    b.writeUInt32LE(r.network >>> 0, at + TS.network);
    b.writeUInt32LE(r.prefixLength, at + TS.prefix_len);
    b.writeUInt32LE(r.group, at + TS.group);
    at += TS.size;
  }
  snis.forEach((r, i) => {
    b.writeUInt32LE(sniNames[i]!.off, at + TN.name_off);
    b.writeUInt16LE(sniNames[i]!.len, at + TN.name_len);
    b[at + TN.wildcard] = r.wildcard ? 1 : 0;
    b.writeUInt32LE(r.group, at + TN.group);
    at += TN.size;
  });
  groups.forEach((g, i) => {
    b.writeUInt32LE(g.first, at + TG.backend_first);
    b.writeUInt32LE(g.backends.length, at + TG.backend_count);
    b.writeUInt32LE(groupNames[i]!.off, at + TG.name_off);
    b.writeUInt16LE(groupNames[i]!.len, at + TG.name_len);
    b[at + TG.persist] = g.persist ? 1 : 0;
    at += TG.size;
  });
  for (const g of groups) {
    for (const be of g.backends) {
      writeIpv4(b, at + TB.ip, be.addr);
      b.writeUInt16LE(be.port, at + TB.port);
      b[at + TB.proxy_protocol] = be.proxyProtocol ? 1 : 0;
      b.writeUInt32LE(u32(be.weight), at + TB.weight);
      at += TB.size;
    }
  }
  for (const [v, off] of strings) b.write(v, at + off, 'utf8');
  return b;
}

/** A table (encodeTable) as the TABLE records that carry it, each at most MAX_REC bytes, in order. */
export function encodeTableParts(table: Buffer): Buffer[] {
  const P = Layout.lb_door_table_part;
  const room = MAX_REC - P.size;
  const parts: Buffer[] = [];
  for (let offset = 0; offset < table.length; offset += room) {
    const chunk = table.subarray(offset, offset + room);
    const b = header(P.size + chunk.length, DoorRec.TABLE, 0n);
    b.writeUInt32LE(table.length, P.total_len);
    b.writeUInt32LE(offset, P.offset);
    chunk.copy(b, P.size);
    parts.push(b);
  }
  return parts;
}
