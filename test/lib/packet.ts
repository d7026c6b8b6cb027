// Packet builder and parser for BPF_PROG_TEST_RUN fixtures (Katran style: input frame, expected
// output frame). Builds Ethernet / VLAN / IPv4 / TCP / UDP / ICMP with correct checksums, lets a
// fixture override any computed field to craft malformed packets, parses frames back into fields,
// and recomputes every checksum from scratch so the data plane's incremental updates are checked
// by independent code.

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PORT_UNREACH = 3; // code of ICMP_DEST_UNREACH
export const ICMP_FRAG_NEEDED = 4; // code of ICMP_DEST_UNREACH

const ETH_HLEN = 14;
const VLAN_HLEN = 4;
const TCP_FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [TCP_FIN, 'FIN'], [TCP_SYN, 'SYN'], [TCP_RST, 'RST'], [TCP_PSH, 'PSH'],
  [TCP_ACK, 'ACK'], [TCP_URG, 'URG'], [TCP_ECE, 'ECE'], [TCP_CWR, 'CWR'],
];

// ---------------------------------------------------------------------------------------------
// Addresses and hex
// ---------------------------------------------------------------------------------------------

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`not a MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(b: Uint8Array, off = 0): string {
  return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ipToBytes(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  }
  return Buffer.from(parts.map(Number));
}

export function bytesToIp(b: Uint8Array, off = 0): string {
  return Array.from(b.subarray(off, off + 4)).join('.');
}

/** Bytes from hex text; whitespace, newlines and `:` separators are ignored. */
export function fromHex(hex: string): Buffer {
  const clean = hex.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new RangeError('invalid hex string');
  return Buffer.from(clean, 'hex');
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// Checksums (RFC 1071)
// ---------------------------------------------------------------------------------------------

/**
 * One's complement sum of `data` as big-endian 16-bit words (a trailing odd byte is padded with
 * zero), added to `initial`, folded to 16 bits. Not complemented.
 */
export function onesComplementSum(data: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = data.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (data.length & 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of the concatenation of `parts`: the complement of their one's complement sum. */
export function internetChecksum(...parts: Uint8Array[]): number {
  return ~onesComplementSum(Buffer.concat(parts)) & 0xffff;
}

/** The IPv4 pseudo-header used by the TCP and UDP checksums. */
export function pseudoHeader(src: string | Uint8Array, dst: string | Uint8Array, protocol: number, length: number): Buffer {
  const b = Buffer.alloc(12);
  (typeof src === 'string' ? ipToBytes(src) : Buffer.from(src)).copy(b, 0);
  (typeof dst === 'string' ? ipToBytes(dst) : Buffer.from(dst)).copy(b, 4);
  b[9] = protocol;
  b.writeUInt16BE(length & 0xffff, 10);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------

export interface EthernetSpec {
  dst?: string; // default 02:00:00:00:00:02
  src?: string; // default 02:00:00:00:00:01
  /** Ethertype of the payload (after any VLAN tags). Default: IPv4 when `ipv4` is given. */
  type?: number;
}

export interface VlanTag {
  tpid?: number; // ETH_P_8021Q (default) or ETH_P_8021AD
  vid: number;
  pcp?: number;
  dei?: boolean;
}

export interface Ipv4Spec {
  src: string;
  dst: string;
  ttl?: number; // default 64
  id?: number; // default 0
  tos?: number; // default 0
  df?: boolean;
  mf?: boolean;
  /** The reserved ("evil") flag bit. */
  reservedFlag?: boolean;
  /** Fragment offset in 8-byte units (the raw 13-bit field). */
  fragOffset?: number;
  /** Option bytes; padded with zeros (EOL) to a multiple of 4. IHL follows from their length. */
  options?: Uint8Array;
  /** Default: from the L4 spec (tcp 6, udp 17, icmp 1), else 0. */
  protocol?: number;
  // Overrides for crafting malformed headers; the checksum is still computed over the
  // overridden fields unless `checksum` is given too.
  version?: number;
  ihl?: number;
  totalLength?: number;
  checksum?: number;
}

export type TcpFlagSet = Partial<Record<'fin' | 'syn' | 'rst' | 'psh' | 'ack' | 'urg' | 'ece' | 'cwr', boolean>>;

export interface TcpSpec {
  kind: 'tcp';
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** A set like `{ syn: true }` or a bit mask of TCP_* constants. */
  flags?: TcpFlagSet | number;
  window?: number; // default 65535
  urgent?: number;
  /** Option bytes; padded with zeros (EOL) to a multiple of 4. doff follows from their length. */
  options?: Uint8Array;
  payload?: Uint8Array;
  doff?: number; // override
  checksum?: number; // override
}

export interface UdpSpec {
  kind: 'udp';
  sport: number;
  dport: number;
  payload?: Uint8Array;
  /** A fixed value, or 'zero' for "no checksum" (valid in IPv4). Default: computed. */
  checksum?: number | 'zero';
  length?: number; // override of the UDP length field
}

export interface IcmpSpec {
  kind: 'icmp';
  type: number;
  code?: number;
  /** Echo request/reply identifier and sequence (the second word). */
  id?: number;
  seq?: number;
  /** Next-hop MTU of a fragmentation-needed error (low 16 bits of the second word). */
  mtu?: number;
  /** The whole second 32-bit word, overriding id/seq/mtu. */
  rest?: number;
  /** Data after the 8-byte header (echo data). Ignored when `inner` is given. */
  payload?: Uint8Array;
  /** The offending datagram quoted by an error message. */
  inner?: InnerPacketSpec;
  checksum?: number; // override
}

export interface InnerPacketSpec {
  ipv4: Ipv4Spec;
  l4?: L4Spec;
  /** How many bytes of the built inner datagram to quote. Default: its IP header + 8 (RFC 792). */
  quoteBytes?: number;
}

export interface RawL4Spec {
  kind: 'raw';
  /** Protocol number for the IPv4 header when `ipv4.protocol` is not given. */
  protocol?: number;
  data: Uint8Array;
}

export type L4Spec = TcpSpec | UdpSpec | IcmpSpec | RawL4Spec;

export interface FrameSpec {
  eth?: EthernetSpec;
  /** 0-2 tags, outermost first. */
  vlans?: VlanTag[];
  ipv4?: Ipv4Spec;
  l4?: L4Spec;
  /** Bytes after the Ethernet/VLAN headers when there is no IPv4 header (ARP, IPv6, junk). */
  payload?: Uint8Array;
}

export function tcpFlagBits(flags: TcpFlagSet | number | undefined): number {
  if (flags === undefined) return 0;
  if (typeof flags === 'number') return flags & 0xff;
  return (flags.fin ? TCP_FIN : 0) | (flags.syn ? TCP_SYN : 0) | (flags.rst ? TCP_RST : 0)
    | (flags.psh ? TCP_PSH : 0) | (flags.ack ? TCP_ACK : 0) | (flags.urg ? TCP_URG : 0)
    | (flags.ece ? TCP_ECE : 0) | (flags.cwr ? TCP_CWR : 0);
}

function pad4(b: Uint8Array | undefined): Buffer {
  const src = b ?? new Uint8Array(0);
  const out = Buffer.alloc(Math.ceil(src.length / 4) * 4);
  out.set(src);
  return out;
}

function l4Protocol(l4: L4Spec | undefined): number {
  switch (l4?.kind) {
    case 'tcp': return IPPROTO_TCP;
    case 'udp': return IPPROTO_UDP;
    case 'icmp': return IPPROTO_ICMP;
    case 'raw': return l4.protocol ?? 0;
    default: return 0;
  }
}

/** TCP segment (header + payload) with its checksum over the pseudo-header of src/dst. */
export function buildTcp(spec: TcpSpec, src: string, dst: string): Buffer {
  const options = pad4(spec.options);
  const payload = Buffer.from(spec.payload ?? new Uint8Array(0));
  const hlen = 20 + options.length;
  if (hlen > 60) throw new RangeError(`TCP options too long: ${options.length} bytes (max 40)`);
  const b = Buffer.alloc(hlen + payload.length);
  b.writeUInt16BE(spec.sport, 0);
  b.writeUInt16BE(spec.dport, 2);
  b.writeUInt32BE((spec.seq ?? 0) >>> 0, 4);
  b.writeUInt32BE((spec.ack ?? 0) >>> 0, 8);
  b[12] = ((spec.doff ?? hlen / 4) & 0xf) << 4;
  b[13] = tcpFlagBits(spec.flags);
  b.writeUInt16BE(spec.window ?? 65535, 14);
  b.writeUInt16BE(spec.urgent ?? 0, 18);
  options.copy(b, 20);
  payload.copy(b, hlen);
  const sum = spec.checksum ?? internetChecksum(pseudoHeader(src, dst, IPPROTO_TCP, b.length), b);
  b.writeUInt16BE(sum, 16);
  return b;
}

/** UDP datagram with its checksum (0 computed is sent as 0xffff; 'zero' means no checksum). */
export function buildUdp(spec: UdpSpec, src: string, dst: string): Buffer {
  const payload = Buffer.from(spec.payload ?? new Uint8Array(0));
  const b = Buffer.alloc(8 + payload.length);
  b.writeUInt16BE(spec.sport, 0);
  b.writeUInt16BE(spec.dport, 2);
  b.writeUInt16BE(spec.length ?? b.length, 4);
  payload.copy(b, 8);
  let sum: number;
  if (spec.checksum === 'zero') sum = 0;
  else if (spec.checksum !== undefined) sum = spec.checksum;
  else {
    sum = internetChecksum(pseudoHeader(src, dst, IPPROTO_UDP, b.length), b);
    if (sum === 0) sum = 0xffff; // RFC 768: a computed zero is transmitted as all ones
  }
  b.writeUInt16BE(sum, 6);
  return b;
}

/** ICMP message; error types quote `inner` (its IP header + 8 bytes unless told otherwise). */
export function buildIcmp(spec: IcmpSpec): Buffer {
  let body: Buffer;
  if (spec.inner) {
    const full = buildIpv4Packet(spec.inner.ipv4, spec.inner.l4);
    const ihl = (full[0]! & 0xf) * 4;
    body = full.subarray(0, Math.min(full.length, spec.inner.quoteBytes ?? ihl + 8));
  } else {
    body = Buffer.from(spec.payload ?? new Uint8Array(0));
  }
  const b = Buffer.alloc(8 + body.length);
  b[0] = spec.type;
  b[1] = spec.code ?? 0;
  let rest: number;
  if (spec.rest !== undefined) rest = spec.rest;
  else if (spec.mtu !== undefined) rest = spec.mtu & 0xffff;
  else rest = (((spec.id ?? 0) & 0xffff) << 16 | ((spec.seq ?? 0) & 0xffff)) >>> 0;
  b.writeUInt32BE(rest >>> 0, 4);
  body.copy(b, 8);
  b.writeUInt16BE(spec.checksum ?? internetChecksum(b), 2);
  return b;
}

function buildL4(l4: L4Spec | undefined, src: string, dst: string): Buffer {
  switch (l4?.kind) {
    case 'tcp': return buildTcp(l4, src, dst);
    case 'udp': return buildUdp(l4, src, dst);
    case 'icmp': return buildIcmp(l4);
    case 'raw': return Buffer.from(l4.data);
    default: return Buffer.alloc(0);
  }
}

/** IPv4 header with options and a correct header checksum (unless overridden), followed by `payload`. */
export function buildIpv4Header(ip: Ipv4Spec, payloadLength: number, protocol: number): Buffer {
  const options = pad4(ip.options);
  const hlen = 20 + options.length;
  if (hlen > 60) throw new RangeError(`IPv4 options too long: ${options.length} bytes (max 40)`);
  const h = Buffer.alloc(hlen);
  h[0] = ((ip.version ?? 4) << 4) | ((ip.ihl ?? hlen / 4) & 0xf);
  h[1] = ip.tos ?? 0;
  h.writeUInt16BE(ip.totalLength ?? hlen + payloadLength, 2);
  h.writeUInt16BE(ip.id ?? 0, 4);
  const frag = (ip.reservedFlag ? 0x8000 : 0) | (ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | ((ip.fragOffset ?? 0) & 0x1fff);
  h.writeUInt16BE(frag, 6);
  h[8] = ip.ttl ?? 64;
  h[9] = ip.protocol ?? protocol;
  ipToBytes(ip.src).copy(h, 12);
  ipToBytes(ip.dst).copy(h, 16);
  options.copy(h, 20);
  h.writeUInt16BE(ip.checksum ?? internetChecksum(h), 10);
  return h;
}

/** An IPv4 datagram: header plus the built L4 message. */
export function buildIpv4Packet(ip: Ipv4Spec, l4?: L4Spec): Buffer {
  const body = buildL4(l4, ip.src, ip.dst);
  return Buffer.concat([buildIpv4Header(ip, body.length, l4Protocol(l4)), body]);
}

/** A whole Ethernet frame. */
export function buildFrame(spec: FrameSpec): Buffer {
  const vlans = spec.vlans ?? [];
  if (vlans.length > 2) throw new RangeError(`at most 2 VLAN tags, got ${vlans.length}`);
  const innerType = spec.eth?.type ?? (spec.ipv4 ? ETH_P_IP : undefined);
  if (innerType === undefined) throw new RangeError('eth.type is required when the frame has no ipv4 header');
  const l2 = Buffer.alloc(ETH_HLEN + VLAN_HLEN * vlans.length);
  macToBytes(spec.eth?.dst ?? '02:00:00:00:00:02').copy(l2, 0);
  macToBytes(spec.eth?.src ?? '02:00:00:00:00:01').copy(l2, 6);
  let off = 12;
  for (const tag of vlans) {
    l2.writeUInt16BE(tag.tpid ?? ETH_P_8021Q, off);
    l2.writeUInt16BE(((tag.pcp ?? 0) & 7) << 13 | (tag.dei ? 0x1000 : 0) | (tag.vid & 0xfff), off + 2);
    off += VLAN_HLEN;
  }
  l2.writeUInt16BE(innerType, off);
  const l3 = spec.ipv4 ? buildIpv4Packet(spec.ipv4, spec.l4) : Buffer.from(spec.payload ?? new Uint8Array(0));
  return Buffer.concat([l2, l3]);
}

/** The first `n` bytes of `buf`, copied (a frame cut short, for truncation fixtures). */
export function truncate(buf: Uint8Array, n: number): Buffer {
  return Buffer.from(buf.subarray(0, Math.max(0, Math.min(n, buf.length))));
}

/** Builders for common TCP options (concatenate them into `TcpSpec.options`). */
export const tcpOption = {
  eol: (): Buffer => Buffer.from([0]),
  nop: (): Buffer => Buffer.from([1]),
  mss: (mss: number): Buffer => Buffer.from([2, 4, mss >>> 8, mss & 0xff]),
  windowScale: (shift: number): Buffer => Buffer.from([3, 3, shift]),
  sackPermitted: (): Buffer => Buffer.from([4, 2]),
  timestamps: (value: number, echo: number): Buffer => {
    const b = Buffer.alloc(10);
    b[0] = 8;
    b[1] = 10;
    b.writeUInt32BE(value >>> 0, 2);
    b.writeUInt32BE(echo >>> 0, 6);
    return b;
  },
};

// ---------------------------------------------------------------------------------------------
// Parse
// ---------------------------------------------------------------------------------------------

export interface ParsedVlan { tpid: number; vid: number; pcp: number; dei: boolean }

export interface ParsedIpv4 {
  /** Offset of the header in the buffer that was parsed. */
  offset: number;
  version: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  reservedFlag: boolean;
  df: boolean;
  mf: boolean;
  /** In 8-byte units. */
  fragOffset: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
  options: Buffer;
}

export interface ParsedTcp {
  offset: number;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  doff: number;
  flags: number;
  flagNames: string[];
  window: number;
  checksum: number;
  urgent: number;
  options: Buffer;
  payload: Buffer;
}

export interface ParsedUdp {
  offset: number;
  sport: number;
  dport: number;
  length: number;
  checksum: number;
  payload: Buffer;
}

export interface ParsedIcmp {
  offset: number;
  type: number;
  code: number;
  checksum: number;
  /** The second 32-bit word. */
  rest: number;
  /** Echo identifier / sequence (meaningful for echo messages). */
  id: number;
  seq: number;
  /** Next-hop MTU (meaningful for fragmentation-needed). */
  mtu: number;
  /** Everything after the 8-byte header. */
  payload: Buffer;
  /** The quoted datagram of an error message (dest-unreachable, time-exceeded, ...). */
  inner?: ParsedIpv4Datagram;
}

/** An IPv4 datagram, possibly cut short (ICMP quotes hold only the IP header + 8 bytes). */
export interface ParsedIpv4Datagram {
  ipv4: ParsedIpv4;
  /** Ports of TCP or UDP when at least 4 bytes of L4 header are present. */
  sport?: number;
  dport?: number;
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  icmp?: ParsedIcmp;
  /** The L4 bytes present (bounded by the total length and the buffer). */
  l4: Buffer;
  /** L4 payload, or the L3 payload when the L4 header was not parsed. */
  payload: Buffer;
  issues: string[];
}

export interface ParsedFrame {
  length: number;
  eth: { dst: string; src: string; /** The first ethertype field on the wire (a TPID with VLANs). */ type: number };
  vlans: ParsedVlan[];
  /** The ethertype after all VLAN tags. */
  etherType: number;
  ipv4?: ParsedIpv4;
  tcp?: ParsedTcp;
  udp?: ParsedUdp;
  icmp?: ParsedIcmp;
  /** The L4 payload, or whatever follows the last header that was parsed. */
  payload: Buffer;
  /** Bytes after the IPv4 total length (Ethernet padding). */
  trailer: Buffer;
  /** Truncation and inconsistencies found while parsing; empty for a well-formed frame. */
  issues: string[];
}

function flagNames(flags: number): string[] {
  return TCP_FLAG_NAMES.filter(([bit]) => flags & bit).map(([, name]) => name);
}

function parseIpv4Header(b: Buffer, off: number): ParsedIpv4 {
  const ihl = b[off]! & 0xf;
  const frag = b.readUInt16BE(off + 6);
  const hlen = Math.max(20, Math.min(ihl * 4, b.length - off));
  return {
    offset: off,
    version: b[off]! >> 4,
    ihl,
    tos: b[off + 1]!,
    totalLength: b.readUInt16BE(off + 2),
    id: b.readUInt16BE(off + 4),
    reservedFlag: (frag & 0x8000) !== 0,
    df: (frag & 0x4000) !== 0,
    mf: (frag & 0x2000) !== 0,
    fragOffset: frag & 0x1fff,
    ttl: b[off + 8]!,
    protocol: b[off + 9]!,
    checksum: b.readUInt16BE(off + 10),
    src: bytesToIp(b, off + 12),
    dst: bytesToIp(b, off + 16),
    options: Buffer.from(b.subarray(off + 20, off + hlen)),
  };
}

function parseTcp(l4: Buffer, base: number): ParsedTcp {
  const doff = l4[12]! >> 4;
  const hlen = Math.min(Math.max(doff * 4, 20), l4.length);
  return {
    offset: base,
    sport: l4.readUInt16BE(0),
    dport: l4.readUInt16BE(2),
    seq: l4.readUInt32BE(4),
    ack: l4.readUInt32BE(8),
    doff,
    flags: l4[13]!,
    flagNames: flagNames(l4[13]!),
    window: l4.readUInt16BE(14),
    checksum: l4.readUInt16BE(16),
    urgent: l4.readUInt16BE(18),
    options: Buffer.from(l4.subarray(20, hlen)),
    payload: Buffer.from(l4.subarray(hlen)),
  };
}

function parseIcmp(l4: Buffer, base: number, issues: string[]): ParsedIcmp {
  const rest = l4.readUInt32BE(4);
  const type = l4[0]!;
  const icmp: ParsedIcmp = {
    offset: base,
    type,
    code: l4[1]!,
    checksum: l4.readUInt16BE(2),
    rest,
    id: rest >>> 16,
    seq: rest & 0xffff,
    mtu: rest & 0xffff,
    payload: Buffer.from(l4.subarray(8)),
  };
  // Error messages quote the offending datagram.
  if ([ICMP_DEST_UNREACH, 4, 5, ICMP_TIME_EXCEEDED, 12].includes(type)) {
    if (icmp.payload.length >= 20) icmp.inner = parseIpv4Datagram(icmp.payload, 0, base + 8);
    else issues.push(`icmp error quotes only ${icmp.payload.length} bytes (< 20)`);
  }
  return icmp;
}

/**
 * Parses an IPv4 datagram starting at `off` in `b`. `base` is added to every reported offset
 * (so offsets stay relative to the outer frame). Never throws on truncation; it records issues.
 */
export function parseIpv4Datagram(b: Buffer, off = 0, base = off): ParsedIpv4Datagram {
  const issues: string[] = [];
  const avail = b.length - off;
  if (avail < 20) throw new RangeError(`IPv4 header needs 20 bytes, ${avail} available`);
  const ipv4 = parseIpv4Header(b, off);
  ipv4.offset = base;
  if (ipv4.version !== 4) issues.push(`ipv4 version ${ipv4.version}`);
  const hlen = ipv4.ihl * 4;
  if (ipv4.ihl < 5) issues.push(`ipv4 ihl ${ipv4.ihl} < 5`);
  if (hlen > avail) issues.push(`ipv4 header truncated: ihl says ${hlen} bytes, ${avail} available`);
  if (ipv4.totalLength < hlen) issues.push(`ipv4 total length ${ipv4.totalLength} < header length ${hlen}`);
  if (ipv4.totalLength > avail) issues.push(`ipv4 truncated: total length ${ipv4.totalLength}, ${avail} bytes available`);
  const l4Start = off + Math.max(hlen, 20);
  const l4End = off + Math.min(Math.max(ipv4.totalLength, 0), avail);
  const l4 = Buffer.from(b.subarray(l4Start, Math.max(l4Start, l4End)));
  const d: ParsedIpv4Datagram = { ipv4, l4, payload: l4, issues };
  if (ipv4.ihl < 5 || hlen > avail) return d;
  if (ipv4.fragOffset !== 0) {
    issues.push('non-first fragment: no L4 header');
    return d;
  }
  const l4Base = base + hlen;
  if ((ipv4.protocol === IPPROTO_TCP || ipv4.protocol === IPPROTO_UDP) && l4.length >= 4) {
    d.sport = l4.readUInt16BE(0);
    d.dport = l4.readUInt16BE(2);
  }
  switch (ipv4.protocol) {
    case IPPROTO_TCP:
      if (l4.length < 20) { issues.push(`tcp header truncated: ${l4.length} bytes`); break; }
      d.tcp = parseTcp(l4, l4Base);
      if (d.tcp.doff < 5) issues.push(`tcp doff ${d.tcp.doff} < 5`);
      else if (d.tcp.doff * 4 > l4.length) issues.push(`tcp options truncated: doff says ${d.tcp.doff * 4} bytes, ${l4.length} present`);
      d.payload = d.tcp.payload;
      break;
    case IPPROTO_UDP:
      if (l4.length < 8) { issues.push(`udp header truncated: ${l4.length} bytes`); break; }
      d.udp = {
        offset: l4Base,
        sport: l4.readUInt16BE(0),
        dport: l4.readUInt16BE(2),
        length: l4.readUInt16BE(4),
        checksum: l4.readUInt16BE(6),
        payload: Buffer.from(l4.subarray(8)),
      };
      if (d.udp.length !== l4.length) issues.push(`udp length ${d.udp.length} != ${l4.length} bytes of IP payload`);
      d.payload = d.udp.payload;
      break;
    case IPPROTO_ICMP:
      if (l4.length < 8) { issues.push(`icmp header truncated: ${l4.length} bytes`); break; }
      d.icmp = parseIcmp(l4, l4Base, issues);
      d.payload = d.icmp.payload;
      break;
    default:
      break;
  }
  return d;
}

/** Decodes an Ethernet frame into its headers. Never throws; truncation is reported in `issues`. */
export function parseFrame(frame: Uint8Array): ParsedFrame {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const issues: string[] = [];
  const empty = Buffer.alloc(0);
  if (b.length < ETH_HLEN) {
    issues.push(`ethernet header truncated: ${b.length} bytes`);
    return { length: b.length, eth: { dst: '', src: '', type: 0 }, vlans: [], etherType: 0, payload: Buffer.from(b), trailer: empty, issues };
  }
  const eth = { dst: bytesToMac(b, 0), src: bytesToMac(b, 6), type: b.readUInt16BE(12) };
  const vlans: ParsedVlan[] = [];
  let type = eth.type;
  let off = ETH_HLEN;
  while ((type === ETH_P_8021Q || type === ETH_P_8021AD) && vlans.length < 8) {
    if (b.length < off + VLAN_HLEN) {
      issues.push('vlan tag truncated');
      return { length: b.length, eth, vlans, etherType: type, payload: Buffer.from(b.subarray(off)), trailer: empty, issues };
    }
    const tci = b.readUInt16BE(off);
    vlans.push({ tpid: type, vid: tci & 0xfff, pcp: tci >> 13, dei: (tci & 0x1000) !== 0 });
    type = b.readUInt16BE(off + 2);
    off += VLAN_HLEN;
  }
  const out: ParsedFrame = { length: b.length, eth, vlans, etherType: type, payload: Buffer.from(b.subarray(off)), trailer: empty, issues };
  if (type !== ETH_P_IP) return out;
  if (b.length - off < 20) {
    issues.push(`ipv4 header truncated: ${b.length - off} bytes`);
    return out;
  }
  const d = parseIpv4Datagram(b, off, off);
  issues.push(...d.issues);
  out.ipv4 = d.ipv4;
  if (d.tcp) out.tcp = d.tcp;
  if (d.udp) out.udp = d.udp;
  if (d.icmp) out.icmp = d.icmp;
  out.payload = d.payload;
  const end = off + d.ipv4.totalLength;
  out.trailer = end < b.length && d.ipv4.totalLength >= d.ipv4.ihl * 4 ? Buffer.from(b.subarray(end)) : empty;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checksum verification (full recomputation, independent of how the frame was produced)
// ---------------------------------------------------------------------------------------------

export type ChecksumLayer = 'ipv4' | 'tcp' | 'udp' | 'icmp' | 'inner-ipv4';

export interface ChecksumResult {
  layer: ChecksumLayer;
  /** ok; bad; none = UDP zero checksum ("not computed", valid); skipped = cannot be verified. */
  status: 'ok' | 'bad' | 'none' | 'skipped';
  found?: number;
  expected?: number;
  reason?: string;
}

export interface ChecksumReport {
  ok: boolean;
  /** Layers whose checksum is wrong. */
  wrong: ChecksumLayer[];
  results: ChecksumResult[];
}

function headerChecksum(hdr: Buffer): number {
  const copy = Buffer.from(hdr);
  copy.writeUInt16BE(0, 10);
  return internetChecksum(copy);
}

function checkIpv4Header(b: Buffer, off: number, layer: 'ipv4' | 'inner-ipv4'): ChecksumResult {
  const ihl = b[off]! & 0xf;
  const hlen = ihl * 4;
  if (ihl < 5 || off + hlen > b.length) return { layer, status: 'skipped', reason: 'header incomplete or ihl < 5' };
  const found = b.readUInt16BE(off + 10);
  const expected = headerChecksum(b.subarray(off, off + hlen));
  return { layer, status: found === expected ? 'ok' : 'bad', found, expected };
}

/**
 * Recomputes the IPv4 header checksum and the TCP/UDP/ICMP checksum of `frame` from scratch and
 * reports which are wrong. A UDP checksum of 0 means "no checksum" and is valid. Fragments and
 * truncated datagrams are reported as skipped for L4. For ICMP errors the quoted IPv4 header's
 * checksum is checked too (a NAT must translate it consistently).
 */
export function verifyChecksums(frame: Uint8Array): ChecksumReport {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  const p = parseFrame(b);
  const results: ChecksumResult[] = [];
  if (p.etherType === ETH_P_IP && !p.ipv4) results.push({ layer: 'ipv4', status: 'skipped', reason: 'header truncated' });
  if (p.ipv4) {
    const off = p.ipv4.offset;
    results.push(checkIpv4Header(b, off, 'ipv4'));
    const hlen = p.ipv4.ihl * 4;
    const proto = p.ipv4.protocol;
    const layer: ChecksumLayer | undefined = proto === IPPROTO_TCP ? 'tcp' : proto === IPPROTO_UDP ? 'udp' : proto === IPPROTO_ICMP ? 'icmp' : undefined;
    if (layer) {
      const complete = p.ipv4.ihl >= 5 && p.ipv4.totalLength >= hlen && off + p.ipv4.totalLength <= b.length;
      const checksumOffset = layer === 'tcp' ? 16 : layer === 'udp' ? 6 : 2;
      if (p.ipv4.mf || p.ipv4.fragOffset !== 0) {
        results.push({ layer, status: 'skipped', reason: 'fragment' });
      } else if (!complete || p.ipv4.totalLength - hlen < checksumOffset + 2) {
        results.push({ layer, status: 'skipped', reason: 'datagram truncated' });
      } else {
        const seg = Buffer.from(b.subarray(off + hlen, off + p.ipv4.totalLength));
        const found = seg.readUInt16BE(checksumOffset);
        seg.writeUInt16BE(0, checksumOffset);
        if (layer === 'udp' && found === 0) {
          results.push({ layer, status: 'none', found });
        } else {
          let expected = layer === 'icmp'
            ? internetChecksum(seg)
            : internetChecksum(pseudoHeader(p.ipv4.src, p.ipv4.dst, proto, seg.length), seg);
          if (layer === 'udp' && expected === 0) expected = 0xffff;
          results.push({ layer, status: found === expected ? 'ok' : 'bad', found, expected });
        }
      }
    }
    if (p.icmp?.inner) results.push(checkIpv4Header(b, p.icmp.offset + 8, 'inner-ipv4'));
  }
  const wrong = results.filter((r) => r.status === 'bad').map((r) => r.layer);
  return { ok: wrong.length === 0, wrong, results };
}

// ---------------------------------------------------------------------------------------------
// Describing frames (for readable test failures)
// ---------------------------------------------------------------------------------------------

/** One line summarising a frame, e.g. `02:..:01 > 02:..:02 vlan 10 10.0.0.1:1234 > 10.0.0.2:80 tcp [SYN] ttl 64 len 0`. */
export function describeFrame(frame: Uint8Array): string {
  const p = parseFrame(frame);
  const parts = [`${p.eth.src} > ${p.eth.dst}`];
  for (const v of p.vlans) parts.push(`vlan ${v.vid}${v.tpid === ETH_P_8021AD ? ' (ad)' : ''}`);
  if (!p.ipv4) {
    parts.push(`type 0x${p.etherType.toString(16).padStart(4, '0')} len ${p.payload.length}`);
  } else {
    const ip = p.ipv4;
    const frag = ip.mf || ip.fragOffset ? ` frag off ${ip.fragOffset * 8}${ip.mf ? ' MF' : ''}` : '';
    if (p.tcp) {
      parts.push(`${ip.src}:${p.tcp.sport} > ${ip.dst}:${p.tcp.dport} tcp [${p.tcp.flagNames.join(',')}] seq ${p.tcp.seq} ack ${p.tcp.ack} len ${p.tcp.payload.length}`);
    } else if (p.udp) {
      parts.push(`${ip.src}:${p.udp.sport} > ${ip.dst}:${p.udp.dport} udp len ${p.udp.payload.length}`);
    } else if (p.icmp) {
      const inner = p.icmp.inner ? ` quoting ${p.icmp.inner.ipv4.src}:${p.icmp.inner.sport ?? '-'} > ${p.icmp.inner.ipv4.dst}:${p.icmp.inner.dport ?? '-'}` : '';
      parts.push(`${ip.src} > ${ip.dst} icmp type ${p.icmp.type} code ${p.icmp.code}${inner}`);
    } else {
      parts.push(`${ip.src} > ${ip.dst} proto ${ip.protocol}`);
    }
    parts.push(`ttl ${ip.ttl}${frag}`);
  }
  if (p.issues.length > 0) parts.push(`(${p.issues.join('; ')})`);
  return parts.join(' ');
}

/**
 * The first byte offset where two frames differ, with both frames described, or null when they
 * are equal. Meant for assertion messages: `expect(diffFrames(out, want)).toBeNull()`.
 */
export function diffFrames(actual: Uint8Array, expected: Uint8Array): string | null {
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.equals(e)) return null;
  let i = 0;
  while (i < a.length && i < e.length && a[i] === e[i]) i++;
  const at = i < a.length && i < e.length
    ? `byte ${i}: 0x${a[i]!.toString(16).padStart(2, '0')} != 0x${e[i]!.toString(16).padStart(2, '0')}`
    : `lengths ${a.length} != ${e.length}`;
  return `frames differ at ${at}\n  actual:   ${describeFrame(a)}\n  expected: ${describeFrame(e)}`;
}
