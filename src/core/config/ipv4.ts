// IPv4 addresses and prefixes as the config writes them (dotted quads, CIDR). Pure.

/** The 32-bit value of a dotted quad, or undefined when it is not one (no leading zeros). */
export function parseIpv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  let value = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export interface Ipv4Prefix {
  /** The address as written. */
  address: number;
  length: number;
}

/** "10.0.0.0/8" -> {address, length: 8}; a plain address is a /32. */
export function parseIpv4Prefix(text: string): Ipv4Prefix | undefined {
  const slash = text.indexOf('/');
  const address = parseIpv4(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  if (slash < 0) return { address, length: 32 };
  const lenText = text.slice(slash + 1);
  if (!/^(0|[1-9]\d?)$/.test(lenText) || Number(lenText) > 32) return undefined;
  return { address, length: Number(lenText) };
}

export function prefixMask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** The network address of a prefix (host bits cleared). */
export function networkOf(prefix: Ipv4Prefix): number {
  return (prefix.address & prefixMask(prefix.length)) >>> 0;
}

export function formatPrefix(address: number, length: number): string {
  return `${formatIpv4(address)}/${length}`;
}

/** Why an address cannot be a backend or a VIP (unspecified, broadcast, multicast, reserved). */
/** 127.0.0.0/8: a target there is a service on the load balancer's own host, reached through lo. */
export function isLoopback(value: number): boolean {
  return value >>> 24 === 127;
}

export function nonUnicastReason(value: number): string | undefined {
  if (value === 0) return '0.0.0.0 is the unspecified address';
  if (value === 0xffffffff) return '255.255.255.255 is the broadcast address';
  const first = value >>> 24;
  if (first >= 224 && first <= 239) return `${formatIpv4(value)} is a multicast address`;
  if (first >= 240) return `${formatIpv4(value)} is in the reserved 240.0.0.0/4 range`;
  return undefined;
}
