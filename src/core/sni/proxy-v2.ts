// The PROXY protocol v2 header (haproxy's proxy-protocol.txt, section 2.2) the acceptor sends a
// backend before the client's bytes: the client's and the VIP's address and port, and the TLS
// server name as PP2_TYPE_AUTHORITY. Pure: numbers in, bytes out; decodeProxyV2 is the reading
// side, used by the tests' backends.

import { ipv4ToU32 } from '../abi.js';

export const PP2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const VERSION_PROXY = 0x21; // version 2, command PROXY
const AF_INET_STREAM = 0x11;
export const PP2_TYPE_AUTHORITY = 0x02;

export interface ProxyV2Addresses {
  clientIp: string;
  clientPort: number;
  localIp: string;
  localPort: number;
}

export function encodeProxyV2(a: ProxyV2Addresses, authority: string | null): Buffer {
  const tlv = authority ? Buffer.concat([Buffer.from([PP2_TYPE_AUTHORITY, 0, 0]), Buffer.from(authority, 'ascii')]) : Buffer.alloc(0);
  if (authority) tlv.writeUInt16BE(tlv.length - 3, 1);
  const out = Buffer.alloc(16 + 12 + tlv.length);
  PP2_SIGNATURE.copy(out, 0);
  out[12] = VERSION_PROXY;
  out[13] = AF_INET_STREAM;
  out.writeUInt16BE(12 + tlv.length, 14);
  out.writeUInt32BE(ipv4ToU32(a.clientIp), 16);
  out.writeUInt32BE(ipv4ToU32(a.localIp), 20);
  out.writeUInt16BE(a.clientPort, 24);
  out.writeUInt16BE(a.localPort, 26);
  tlv.copy(out, 28);
  return out;
}

export interface DecodedProxyV2 extends ProxyV2Addresses {
  authority: string | null;
  /** Bytes of the header: what follows is the client's stream. */
  length: number;
}

/** Reads a v2 PROXY/TCP4 header; null when the bytes do not start with a whole one. */
export function decodeProxyV2(b: Buffer): DecodedProxyV2 | null {
  if (b.length < 16 || !b.subarray(0, 12).equals(PP2_SIGNATURE) || b[12] !== VERSION_PROXY || b[13] !== AF_INET_STREAM) return null;
  const length = 16 + b.readUInt16BE(14);
  if (b.length < length || length < 28) return null;
  const ip = (at: number): string => [0, 1, 2, 3].map((i) => b[at + i]).join('.');
  let authority: string | null = null;
  for (let at = 28; at + 3 <= length;) {
    const type = b[at]!;
    const len = b.readUInt16BE(at + 1);
    if (at + 3 + len > length) return null;
    if (type === PP2_TYPE_AUTHORITY) authority = b.subarray(at + 3, at + 3 + len).toString('ascii');
    at += 3 + len;
  }
  return { clientIp: ip(16), localIp: ip(20), clientPort: b.readUInt16BE(24), localPort: b.readUInt16BE(26), authority, length };
}
