// RTM_GETROUTE for one IPv4 destination (what `ip route get ADDR` asks) and the RTM_NEWROUTE
// answer, pure. Constants: linux/rtnetlink.h (struct rtmsg, RTA_*, RTN_*).

import { attr, encodeAttr, encodeMessage, NLM_F_REQUEST, parseAttrs, type NlMessage } from './codec.js';
import { LbError } from '../../core/errors.js';

export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;
const RTMSG_LEN = 12; // struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
const AF_INET = 2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PREFSRC = 7;

/** rtm_type values (RTN_*) by name. */
const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'] as const;
export type RouteType = (typeof ROUTE_TYPES)[number] | 'unknown';

function ipv4Bytes(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new LbError('LB_NET_IFACE', `not an IPv4 address: ${JSON.stringify(addr)}`, { addr });
  }
  return Buffer.from(parts);
}

const ipv4Text = (b: Buffer | undefined): string | null => (b && b.length >= 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : null);

export function getRouteRequest(seq: number, dst: string): Buffer {
  const rtm = Buffer.alloc(RTMSG_LEN);
  rtm.writeUInt8(AF_INET, 0);
  rtm.writeUInt8(32, 1); // dst_len: this one address
  return encodeMessage({ type: RTM_GETROUTE, flags: NLM_F_REQUEST, seq, payload: Buffer.concat([rtm, encodeAttr(RTA_DST, ipv4Bytes(dst))]) });
}

export interface RouteAnswer {
  type: RouteType;
  /** Output interface index; null for a route without one (blackhole, unreachable). */
  oif: number | null;
  /** The next hop, when the destination is not on a directly connected network. */
  gateway: string | null;
  prefsrc: string | null;
}

export function decodeRoute(m: NlMessage): RouteAnswer {
  if (m.type !== RTM_NEWROUTE || m.payload.length < RTMSG_LEN) {
    throw new LbError('LB_NET_IFACE', `malformed netlink reply: expected RTM_NEWROUTE, got type ${m.type} of ${m.payload.length} bytes`, { type: m.type });
  }
  const a = parseAttrs(m.payload.subarray(RTMSG_LEN));
  return {
    type: ROUTE_TYPES[m.payload.readUInt8(7)] ?? 'unknown',
    oif: attr.u32(a.get(RTA_OIF)) ?? null,
    gateway: ipv4Text(a.get(RTA_GATEWAY)),
    prefsrc: ipv4Text(a.get(RTA_PREFSRC)),
  };
}
