// The records of the native front door's control socket (native/lb_door_abi.h, mirrored here;
// test/unit/acceptor/door-abi.test.ts checks the two agree): encoders for what the daemon sends,
// a decoder for what the door sends. Pure: bytes in, values out.


const REC_HEADER = 16;
/** The records' version (LB_DOOR_ABI): a door of another build is replaced, not read. */
export const DOOR_ABI = 1;
/** The largest record either side sends or accepts. */
export const MAX_REC = 256 * 1024;

/** Record types (LB_DOOR_*). */
export const DoorRec = {
  HELLO: 1, OPENED: 2, FAILED: 3, DROPPED: 4, ENDED: 5, HELD: 6, STATS: 7,
  CONFIG: 16, ROUTE: 17, MORE: 18, RESET: 19,
} as const;

/** Flags of a HELLO. */
export const HELLO_EOF = 1;
export const HELLO_FULL = 2;

/** How often the door sends its counters at most (LB_DOOR_STATS_MS). */
export const STATS_MS = 25;
/** How long a record without a question waits for its batch at most (LB_DOOR_BATCH_MS). */
export const BATCH_MS = 10;

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
} as const;

export type EndReason = 'closed' | 'reset' | 'idle';
export const END_REASONS: readonly EndReason[] = ['closed', 'reset', 'idle'];
export const BY: ReadonlyArray<'client' | 'backend' | undefined> = [undefined, 'client', 'backend'];

/** The door's counters, and its record version (0: a door from before versions, whose STATS is shorter). */
export interface DoorStats { accepted: number; overLimit: number; helloTimeout: number; active: number; spliced: number; abi: number }

/** A record from the door. Ids are decimal strings (u64). */
export type DoorRecord =
  | { type: 'hello'; id: string; eof: boolean; full: boolean; clientIp: string; clientPort: number; localIp: string; localPort: number;
    acceptedNs: bigint; acceptedMs: number; bytes: Buffer }
  | { type: 'opened'; id: string; atNs: bigint }
  | { type: 'failed'; id: string; err: number }
  | { type: 'dropped'; id: string }
  | { type: 'ended'; id: string; up: number; down: number; reason: EndReason; by?: 'client' | 'backend'; atNs: bigint }
  | { type: 'held'; id: string; up: number; down: number; blob: Buffer }
  | { type: 'stats'; stats: DoorStats };

export interface DoorConfig {
  helloTimeoutMs: number; connectTimeoutMs: number; idleTimeoutMs: number; maxConnections: number;
  maxHelloStream: number; spliceAfter: number;
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function writeIpv4(b: Buffer, at: number, ip: string): void {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  for (let i = 0; i < 4; i++) b[at + i] = parts[i]!;
}

function header(len: number, type: number, id: string | bigint): Buffer {
  const R = Layout.lb_door_rec;
  const b = Buffer.alloc(len);
  b.writeUInt32LE(len, R.len);
  b.writeUInt16LE(type, R.type);
  b.writeBigUInt64LE(BigInt(id), R.id);
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
export function encodeRoute(id: string, addr: string, port: number, header_: Buffer | null, blob: Buffer): Buffer {
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

export function encodeMore(id: string): Buffer {
  return header(REC_HEADER, DoorRec.MORE, id);
}

export function encodeReset(id: string): Buffer {
  return header(REC_HEADER, DoorRec.RESET, id);
}

/**
 * Splits a stream of records: the records whole in `buf` from `at`, and where the next one starts.
 * Throws on a record the daemon cannot take (a length out of bounds): the stream is lost from there.
 */
export function decodeRecords(buf: Buffer, at = 0): { records: DoorRecord[]; next: number } {
  const records: DoorRecord[] = [];
  while (buf.length - at >= REC_HEADER) {
    const len = buf.readUInt32LE(at);
    if (len < REC_HEADER || len > MAX_REC) throw new Error(`door record of ${len} bytes at stream offset ${at}`);
    if (buf.length - at < len) break;
    const r = decodeRecord(buf.subarray(at, at + len));
    if (r) records.push(r);
    at += len;
  }
  return { records, next: at };
}

/** One record (`b` is exactly it); null for a type this daemon does not know (a newer door). */
export function decodeRecord(b: Buffer): DoorRecord | null {
  const R = Layout.lb_door_rec;
  const type = b.readUInt16LE(R.type);
  const flags = b.readUInt16LE(R.flags);
  const id = b.readBigUInt64LE(R.id).toString();
  const need = (size: number): void => {
    if (b.length < size) throw new Error(`door record type ${type} of ${b.length} bytes, expected at least ${size}`);
  };
  const u64 = (at: number): number => Number(b.readBigUInt64LE(at));
  switch (type) {
    case DoorRec.HELLO: {
      const L = Layout.lb_door_hello;
      need(L.size);
      return {
        type: 'hello', id, eof: (flags & HELLO_EOF) !== 0, full: (flags & HELLO_FULL) !== 0,
        clientIp: ipv4(b, L.client_ip), localIp: ipv4(b, L.local_ip), clientPort: b.readUInt16LE(L.client_port), localPort: b.readUInt16LE(L.local_port),
        acceptedNs: b.readBigUInt64LE(L.accepted_ns), acceptedMs: u64(L.accepted_ms), bytes: b.subarray(L.size),
      };
    }
    case DoorRec.OPENED:
      need(Layout.lb_door_opened.size);
      return { type: 'opened', id, atNs: b.readBigUInt64LE(Layout.lb_door_opened.at_ns) };
    case DoorRec.DROPPED: return { type: 'dropped', id };
    case DoorRec.FAILED:
      need(Layout.lb_door_failed.size);
      return { type: 'failed', id, err: b.readInt32LE(Layout.lb_door_failed.err) };
    case DoorRec.ENDED: {
      const L = Layout.lb_door_ended;
      need(L.size);
      const by = BY[b[L.by]!];
      return { type: 'ended', id, up: u64(L.up), down: u64(L.down), reason: END_REASONS[b[L.reason]!] ?? 'reset', ...(by ? { by } : {}), atNs: b.readBigUInt64LE(L.at_ns) };
    }
    case DoorRec.HELD: {
      const L = Layout.lb_door_held;
      need(L.size);
      const blobLen = b.readUInt32LE(L.blob_len);
      need(L.size + blobLen);
      return { type: 'held', id, up: u64(L.up), down: u64(L.down), blob: b.subarray(L.size, L.size + blobLen) };
    }
    case DoorRec.STATS: {
      const L = Layout.lb_door_stats;
      // The counters are where every version had them; the version only since LB_DOOR_ABI 1.
      need(L.abi);
      const abi = b.length >= L.abi + 4 ? b.readUInt32LE(L.abi) : 0;
      return { type: 'stats', stats: { accepted: u64(L.accepted), overLimit: u64(L.over_limit), helloTimeout: u64(L.hello_timeout), active: u64(L.active), spliced: u64(L.spliced), abi } };
    }
    default: return null;
  }
}
