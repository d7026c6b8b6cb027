// A minimal Ethernet/IPv4/UDP frame builder with correct checksums, for BPF_PROG_TEST_RUN input.

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split('.').map((p) => Number(p)));
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function csum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface UdpFrameSpec {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** Total frame length without FCS; 60 is a minimum-size (64-byte on the wire) frame. */
  frameLength?: number;
  /** IPv4 TTL, default 64. */
  ttl?: number;
}

export function udpFrame(spec: UdpFrameSpec): Buffer {
  const len = Math.max(42, spec.frameLength ?? 60);
  const f = Buffer.alloc(len);
  macBytes(spec.dstMac).copy(f, 0);
  macBytes(spec.srcMac).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ipLen = len - 14;
  f.writeUInt8(0x45, 14);
  f.writeUInt16BE(ipLen, 16);
  f.writeUInt8(spec.ttl ?? 64, 22);
  f.writeUInt8(17, 23); // UDP
  ipBytes(spec.src).copy(f, 26);
  ipBytes(spec.dst).copy(f, 30);
  f.writeUInt16BE(csum(f.subarray(14, 34)), 24);
  const udpLen = ipLen - 20;
  f.writeUInt16BE(spec.sport, 34);
  f.writeUInt16BE(spec.dport, 36);
  f.writeUInt16BE(udpLen, 38);
  const pseudo = Buffer.alloc(12);
  ipBytes(spec.src).copy(pseudo, 0);
  ipBytes(spec.dst).copy(pseudo, 4);
  pseudo.writeUInt8(17, 9);
  pseudo.writeUInt16BE(udpLen, 10);
  const c = csum(Buffer.concat([pseudo, f.subarray(34, 34 + udpLen)]));
  f.writeUInt16BE(c === 0 ? 0xffff : c, 40);
  return f;
}
