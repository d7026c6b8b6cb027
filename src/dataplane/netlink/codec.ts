// Netlink framing, pure: encoding and decoding struct nlmsghdr, struct rtattr/nlattr and struct
// nlmsgerr in Buffers. No sockets here (those are in socket.ts), so every function can be unit
// tested against recorded bytes.
//
// Constants and layouts are the kernel UAPI's (linux/netlink.h). Netlink is in host byte order;
// lb runs on little-endian hosts only (x86-64, arm64), so LE reads and writes are used throughout.

import { LbError } from '../../core/errors.js';

// ---- constants (linux/netlink.h) ----

export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300; // NLM_F_ROOT | NLM_F_MATCH
/** On NLMSG_ERROR: extended-ack TLVs follow (NETLINK_EXT_ACK). */
export const NLM_F_ACK_TLVS = 0x200;
/** On NLMSG_ERROR: the request was not echoed back (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NLMSGERR_ATTR_MSG = 1;

/** NLMSG_ALIGN / NLA_ALIGN: both are 4 bytes. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

function malformed(what: string, data: Record<string, unknown> = {}): LbError {
  return new LbError('LB_NET_IFACE', `malformed netlink reply: ${what}`, data);
}

// ---- messages ----

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The bytes after the 16-byte header, nlmsg_len - 16 of them (a view into the datagram). */
  payload: Buffer;
}

/** One netlink message: header + payload, padded to 4 bytes (nlmsg_len counts the unpadded size). */
export function encodeMessage(m: { type: number; flags: number; seq: number; pid?: number; payload: Buffer }): Buffer {
  const len = NLMSG_HDRLEN + m.payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(m.type, 4);
  out.writeUInt16LE(m.flags, 6);
  out.writeUInt32LE(m.seq >>> 0, 8);
  out.writeUInt32LE((m.pid ?? 0) >>> 0, 12);
  m.payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/**
 * Splits a received datagram into its messages (NLMSG_OK/NLMSG_NEXT). A length that runs past the
 * datagram or is shorter than the header is an error, not a silent stop: a truncated dump would
 * otherwise look complete.
 */
export function parseMessages(datagram: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  // Each message is at least 16 bytes, so this loop runs at most datagram.length / 16 times.
  while (off + NLMSG_HDRLEN <= datagram.length) {
    const len = datagram.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > datagram.length) {
      throw malformed(`message length ${len} at offset ${off} of a ${datagram.length}-byte datagram`, { offset: off, len });
    }
    out.push({
      type: datagram.readUInt16LE(off + 4),
      flags: datagram.readUInt16LE(off + 6),
      seq: datagram.readUInt32LE(off + 8),
      pid: datagram.readUInt32LE(off + 12),
      payload: datagram.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  if (off < datagram.length) throw malformed(`${datagram.length - off} trailing bytes`, { offset: off });
  return out;
}

// ---- attributes ----

/** One attribute: 4-byte header + data, padded to 4 bytes. */
export function encodeAttr(type: number, data: Buffer): Buffer {
  const len = NLA_HDRLEN + data.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  data.copy(out, NLA_HDRLEN);
  return out;
}

export function attrU16(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return encodeAttr(type, b);
}

export function attrU32(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return encodeAttr(type, b);
}

/** A NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING both accept the NUL). */
export function attrString(type: number, s: string): Buffer {
  return encodeAttr(type, Buffer.from(`${s}\0`, 'utf8'));
}

export function attrNested(type: number, attrs: Buffer[]): Buffer {
  return encodeAttr(type | NLA_F_NESTED, Buffer.concat(attrs));
}

/**
 * Attributes of a block, by type (the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits masked off). A type
 * repeated keeps its first occurrence: the attributes read here appear once per message.
 */
export function parseAttrs(block: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  // Each attribute is at least 4 bytes: at most block.length / 4 iterations.
  while (off + NLA_HDRLEN <= block.length) {
    const len = block.readUInt16LE(off);
    const type = block.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > block.length) {
      throw malformed(`attribute ${type} length ${len} at offset ${off} of ${block.length}`, { offset: off, type, len });
    }
    if (!out.has(type)) out.set(type, block.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/** Typed reads of an attribute's data; undefined when absent or too short. */
export const attr = {
  u8: (a: Buffer | undefined): number | undefined => (a && a.length >= 1 ? a.readUInt8(0) : undefined),
  u16: (a: Buffer | undefined): number | undefined => (a && a.length >= 2 ? a.readUInt16LE(0) : undefined),
  u32: (a: Buffer | undefined): number | undefined => (a && a.length >= 4 ? a.readUInt32LE(0) : undefined),
  s32: (a: Buffer | undefined): number | undefined => (a && a.length >= 4 ? a.readInt32LE(0) : undefined),
  /** NLA_UINT-style: 4 or 8 bytes (the netdev family sends u64 as 8, padded by NETDEV_A_DEV_PAD). */
  u64: (a: Buffer | undefined): bigint | undefined =>
    a && a.length >= 8 ? a.readBigUInt64LE(0) : a && a.length >= 4 ? BigInt(a.readUInt32LE(0)) : undefined,
  string: (a: Buffer | undefined): string | undefined => {
    if (!a) return undefined;
    const end = a.indexOf(0);
    return a.subarray(0, end === -1 ? a.length : end).toString('utf8');
  },
};

// ---- errors and acks ----

export interface NlError {
  /** Positive errno; 0 for an ACK. */
  errno: number;
  /** The kernel's extended-ack text (NLMSGERR_ATTR_MSG), when it sent one. */
  message?: string;
}

/**
 * Decodes an NLMSG_ERROR payload: struct nlmsgerr (int error, then the request's header and, unless
 * capped, its payload), then extended-ack TLVs when NLM_F_ACK_TLVS is set.
 */
export function decodeError(m: NlMessage): NlError {
  const p = m.payload;
  if (p.length < 4) throw malformed('NLMSG_ERROR shorter than its error code');
  const errno = 0 - p.readInt32LE(0); // not -x: that would make -0 of an ACK
  const result: NlError = { errno };
  if ((m.flags & NLM_F_ACK_TLVS) !== 0 && p.length >= 4 + NLMSG_HDRLEN) {
    // The echoed request: only its header when capped (or on success), else all of it.
    const echoedLen = (m.flags & NLM_F_CAPPED) !== 0 || errno === 0 ? NLMSG_HDRLEN : p.readUInt32LE(4);
    const tlvs = p.subarray(Math.min(p.length, 4 + align4(echoedLen)));
    const text = attr.string(parseAttrs(tlvs).get(NLMSGERR_ATTR_MSG));
    if (text) result.message = text;
  }
  return result;
}

/** NLMSG_DONE of a dump carries an int: a negative errno when the dump failed part-way. */
export function decodeDone(m: NlMessage): number {
  return m.payload.length >= 4 ? 0 - m.payload.readInt32LE(0) : 0;
}
