// The TLS ClientHello, read from the first bytes of a TCP connection to find the server name the
// client asked for (SNI, RFC 6066). Pure: bytes in, a verdict out. The acceptor feeds it the bytes
// read so far and asks again when more arrive, so the parser must say "not yet" cheaply: it walks
// only the 5-byte record headers until the whole handshake message is there, then parses it once.
//
// What it accepts, and why:
// - TLS 1.0 to 1.3: every version sends the same ClientHello layout (1.3 keeps the 1.2 framing and
//   says its real version in supported_versions), so the record version is only checked for
//   major 3; SSL 2 compatible hellos (first byte 0x80) are not TLS 1.x and are refused.
// - The hello split over several records, and records split over TCP segments at any byte.
// - GREASE values (RFC 8701) in any list are ignored like every other unknown extension.
// - Encrypted Client Hello: the outer hello's server_name is what this returns (the public name),
//   as sent; the inner hello is encrypted to the backend and cannot be read here.
// - A bound on the hello's size, so a client cannot make the acceptor buffer without limit.

/** Largest handshake message body accepted; real hellos, post-quantum key shares included, are < 4 KiB. */
export const DEFAULT_MAX_HELLO_BYTES = 16384;

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_SUPPORTED_VERSIONS = 43;
const EXT_ECH = 0xfe0d;
const NAME_TYPE_HOST = 0;
/** RFC 8446 5.1: a plaintext record carries at most 2^14 bytes. */
const MAX_RECORD = 16384;
/**
 * Records one hello may span. Clients send one (two for a post-quantum share over 16 KiB); the
 * bound keeps each call linear in a small number, since the acceptor asks again per segment.
 */
export const MAX_HELLO_RECORDS = 256;

export type ClientHelloVerdict =
  | { kind: 'incomplete' }
  | { kind: 'hello'; hello: ClientHello }
  | { kind: 'invalid'; reason: string; oversize?: true };

export interface ClientHello {
  /** The host_name of server_name, lower case; null when the client sent none (or an unusable one). */
  serverName: string | null;
  /** The hello's legacy_version (0x0301 TLS 1.0 .. 0x0303). */
  legacyVersion: number;
  /** supported_versions, GREASE removed; empty when the client did not send the extension (TLS <= 1.2). */
  supportedVersions: number[];
  /** True when an encrypted_client_hello extension was present: serverName is then the outer (public) name. */
  ech: boolean;
  /** The stream offset just past the hello's last byte (its records' headers included). */
  helloEnd: number;
}

/** True for the 16 GREASE code points 0x0a0a, 0x1a1a, ... 0xfafa (RFC 8701). */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && (value >> 8) === (value & 0xff);
}

/**
 * Reads the ClientHello from the first bytes of a stream. 'incomplete' asks for more bytes,
 * 'invalid' says the stream is not a TLS client hello this parser can read (the caller routes it
 * as a connection without a name, or closes it).
 */
export function parseClientHello(data: Uint8Array, maxHelloBytes = DEFAULT_MAX_HELLO_BYTES): ClientHelloVerdict {
  const gathered = gatherHandshake(data, maxHelloBytes);
  if (gathered.kind !== 'complete') return gathered;
  return parseHandshakeBody(gathered.body, gathered.helloEnd);
}

type Gathered = { kind: 'incomplete' } | { kind: 'invalid'; reason: string; oversize?: true } | { kind: 'complete'; body: Uint8Array; helloEnd: number };

/** Walks the record headers, joining their payloads until the handshake message header says it is whole. */
function gatherHandshake(data: Uint8Array, maxHelloBytes: number): Gathered {
  const payloads: Uint8Array[] = [];
  let payloadBytes = 0;
  let offset = 0;
  let needed = -1; // the whole handshake message (4-byte header + body), once its header is read
  for (let record = 0; ; record++) {
    if (record === MAX_HELLO_RECORDS) return { kind: 'invalid', reason: `client hello over more than ${MAX_HELLO_RECORDS} records`, oversize: true };
    if (data.length - offset < RECORD_HEADER) return partial(data, offset);
    const type = data[offset]!;
    const major = data[offset + 1]!;
    const length = (data[offset + 3]! << 8) | data[offset + 4]!;
    if (type !== CONTENT_HANDSHAKE) return { kind: 'invalid', reason: `record type ${type}, not handshake` };
    if (major !== 3) return { kind: 'invalid', reason: `record version major ${major}` };
    if (length === 0 || length > MAX_RECORD) return { kind: 'invalid', reason: `record length ${length}` };
    const available = Math.min(length, data.length - offset - RECORD_HEADER);
    if (available > 0) payloads.push(data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + available));
    payloadBytes += available;
    if (needed < 0 && payloadBytes >= 4) {
      const head = concat(payloads, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: 'invalid', reason: `handshake type ${head[0]}, not client_hello` };
      const bodyLength = (head[1]! << 16) | (head[2]! << 8) | head[3]!;
      if (bodyLength > maxHelloBytes) return { kind: 'invalid', reason: `client hello of ${bodyLength} bytes, over the ${maxHelloBytes} bound`, oversize: true };
      needed = 4 + bodyLength;
    }
    if (needed >= 0 && payloadBytes >= needed) {
      // The record that ends the hello may carry more handshake bytes: they are the backend's concern.
      const helloEnd = offset + RECORD_HEADER + available - (payloadBytes - needed);
      return { kind: 'complete', body: concat(payloads, needed).subarray(4), helloEnd };
    }
    if (available < length) return { kind: 'incomplete' };
    offset += RECORD_HEADER + length;
  }
}

/** An incomplete stream is still refused early when its first bytes already cannot be a TLS hello. */
function partial(data: Uint8Array, offset: number): Gathered {
  const rest = data.length - offset;
  if (rest >= 1 && data[offset] !== CONTENT_HANDSHAKE) return { kind: 'invalid', reason: `record type ${data[offset]}, not handshake` };
  if (rest >= 2 && data[offset + 1] !== 3) return { kind: 'invalid', reason: `record version major ${data[offset + 1]}` };
  return { kind: 'incomplete' };
}

/** The first n bytes of the payloads, copied only when they span more than one. */
function concat(parts: Uint8Array[], n: number): Uint8Array {
  if (parts[0] && parts[0].length >= n) return parts[0].subarray(0, n);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    if (at >= n) break;
    const take = Math.min(p.length, n - at);
    out.set(p.subarray(0, take), at);
    at += take;
  }
  return out;
}

/** A bounds-checked reader: every read past the end throws Short, caught once in parseHandshakeBody. */
class Short extends Error {}

class Cursor {
  constructor(private readonly buf: Uint8Array, public at = 0, private readonly end = buf.length) {}
  remaining(): number { return this.end - this.at; }
  u8(): number {
    if (this.at + 1 > this.end) throw new Short('u8');
    return this.buf[this.at++]!;
  }
  u16(): number {
    if (this.at + 2 > this.end) throw new Short('u16');
    const v = (this.buf[this.at]! << 8) | this.buf[this.at + 1]!;
    this.at += 2;
    return v;
  }
  /** A sub-cursor over the next n bytes, which this cursor skips. */
  take(n: number): Cursor {
    if (this.at + n > this.end) throw new Short(`${n} bytes`);
    const sub = new Cursor(this.buf, this.at, this.at + n);
    this.at += n;
    return sub;
  }
  bytes(): Uint8Array { return this.buf.subarray(this.at, this.end); }
}

function parseHandshakeBody(body: Uint8Array, helloEnd: number): ClientHelloVerdict {
  try {
    const c = new Cursor(body);
    const legacyVersion = c.u16();
    if (legacyVersion >> 8 !== 3 || legacyVersion < 0x0301) return { kind: 'invalid', reason: `client version 0x${legacyVersion.toString(16)}` };
    c.take(32); // random
    const sessionId = c.u8();
    if (sessionId > 32) return { kind: 'invalid', reason: `session id of ${sessionId} bytes` };
    c.take(sessionId);
    const suites = c.u16();
    if (suites < 2 || suites % 2 !== 0) return { kind: 'invalid', reason: `cipher suites of ${suites} bytes` };
    c.take(suites);
    const compression = c.u8();
    if (compression < 1) return { kind: 'invalid', reason: 'no compression method' };
    c.take(compression);
    const hello: ClientHello = { serverName: null, legacyVersion, supportedVersions: [], ech: false, helloEnd };
    // TLS 1.0/1.1 may end the hello here: no extensions, hence no name.
    if (c.remaining() === 0) return { kind: 'hello', hello };
    const extensions = c.take(c.u16());
    if (c.remaining() !== 0) return { kind: 'invalid', reason: 'bytes after the extensions' };
    const seen = new Set<number>();
    while (extensions.remaining() > 0) {
      const type = extensions.u16();
      const ext = extensions.take(extensions.u16());
      // RFC 8446 4.2: at most one extension of a type; a second server_name could steer two ways.
      if (seen.has(type)) return { kind: 'invalid', reason: `extension ${type} twice` };
      seen.add(type);
      if (type === EXT_SERVER_NAME) hello.serverName = readServerName(ext);
      else if (type === EXT_SUPPORTED_VERSIONS) hello.supportedVersions = readVersions(ext);
      else if (type === EXT_ECH) hello.ech = true;
    }
    return { kind: 'hello', hello };
  } catch (e) {
    if (e instanceof Short) return { kind: 'invalid', reason: `truncated (${e.message})` };
    throw e;
  }
}

function readServerName(ext: Cursor): string | null {
  const list = ext.take(ext.u16());
  let name: string | null = null;
  while (list.remaining() > 0) {
    const type = list.u8();
    const value = list.take(list.u16());
    // RFC 6066 3: one name per type; host_name is the only type defined.
    if (type === NAME_TYPE_HOST && name === null) name = hostName(value.bytes());
  }
  return name;
}

function readVersions(ext: Cursor): number[] {
  const list = ext.take(ext.u8());
  const out: number[] = [];
  while (list.remaining() >= 2) {
    const v = list.u16();
    if (!isGrease(v)) out.push(v);
  }
  return out;
}

/**
 * The name as a lower-case string, or null when it is not a DNS host name in ASCII (letters,
 * digits, '-', '_', '.', 1-253 bytes): such a name can match no route, and must not reach logs raw.
 */
function hostName(bytes: Uint8Array): string | null {
  if (bytes.length === 0 || bytes.length > 253) return null;
  let out = '';
  for (const b of bytes) {
    const lower = b >= 0x41 && b <= 0x5a ? b + 32 : b;
    const ok = (lower >= 0x61 && lower <= 0x7a) || (lower >= 0x30 && lower <= 0x39) || lower === 0x2d || lower === 0x2e || lower === 0x5f;
    if (!ok) return null;
    out += String.fromCharCode(lower);
  }
  return out;
}
