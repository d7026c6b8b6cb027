// The netlink messages link-facts.ts exchanges, pure: RTM_GETLINK requests and RTM_NEWLINK
// decoding (rtnetlink), CTRL_CMD_GETFAMILY (generic netlink controller), and NETDEV_CMD_DEV_GET
// of the 'netdev' generic netlink family with its xdp_features bits.
//
// Constants: linux/rtnetlink.h, linux/if_link.h, linux/if.h, linux/genetlink.h (checked with a C
// program against Debian 12's headers). linux/netdev.h is absent there (the netdev family came in
// 6.3); its values are from the kernel's YNL-generated uapi/linux/netdev.h.

import { attr, attrString, attrU32, encodeMessage, NLM_F_DUMP, NLM_F_REQUEST, parseAttrs, type NlMessage } from './codec.js';
import { LbError } from '../../core/errors.js';

// ---- rtnetlink (linux/rtnetlink.h, linux/if_link.h, linux/if.h) ----

export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
const IFINFOMSG_LEN = 16; // struct ifinfomsg { u8 family, pad; u16 type; s32 index; u32 flags, change; }

const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_EXT_MASK = 29;
const IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_VLAN_ID = 1;
/** Leaves out per-VF statistics (large on SR-IOV NICs, unused here); the link's own stats still come. */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

export const IFF_UP = 1 << 0;
export const IFF_LOWER_UP = 1 << 16;

/** IF_OPER_* (RFC 2863), as `ip link` names them in lower case. */
export const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;
export type OperState = (typeof OPER_STATES)[number];

/** RTM_GETLINK: a dump of every link, or one link by ifindex or by name. */
export function getLinkRequest(seq: number, which: { dump: true } | { ifindex: number } | { name: string }): Buffer {
  const ifi = Buffer.alloc(IFINFOMSG_LEN); // family AF_UNSPEC
  if ('ifindex' in which) ifi.writeInt32LE(which.ifindex, 4);
  const attrs = [ifi, attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)];
  if ('name' in which) attrs.push(attrString(IFLA_IFNAME, which.name));
  const flags = NLM_F_REQUEST | ('dump' in which ? NLM_F_DUMP : 0);
  return encodeMessage({ type: RTM_GETLINK, flags, seq, payload: Buffer.concat(attrs) });
}

/** What one RTM_NEWLINK message says, before the master's kind and the XDP features are joined in. */
export interface RawLink {
  ifindex: number;
  name: string;
  /** ifi_flags (IFF_*). */
  flags: number;
  mtu: number;
  operState: OperState;
  kind: string | null;
  /** IFLA_INFO_SLAVE_KIND: the kind of port this link is (e.g. 'bridge', 'bond'), or null. */
  slaveKind: string | null;
  master: number | null;
  link: number | null;
  linkNetnsId: number | null;
  vlanId: number | null;
}

export function decodeLink(m: NlMessage): RawLink {
  if (m.type !== RTM_NEWLINK || m.payload.length < IFINFOMSG_LEN) {
    throw new LbError('LB_NET_IFACE', `malformed netlink reply: expected RTM_NEWLINK, got type ${m.type} of ${m.payload.length} bytes`, { type: m.type });
  }
  const ifindex = m.payload.readInt32LE(4);
  const a = parseAttrs(m.payload.subarray(IFINFOMSG_LEN));
  const info = a.has(IFLA_LINKINFO) ? parseAttrs(a.get(IFLA_LINKINFO)!) : new Map<number, Buffer>();
  const kind = attr.string(info.get(IFLA_INFO_KIND)) ?? null;
  let vlanId: number | null = null;
  if (kind === 'vlan' && info.has(IFLA_INFO_DATA)) vlanId = attr.u16(parseAttrs(info.get(IFLA_INFO_DATA)!).get(IFLA_VLAN_ID)) ?? null;
  const oper = attr.u8(a.get(IFLA_OPERSTATE)) ?? 0;
  return {
    ifindex,
    name: attr.string(a.get(IFLA_IFNAME)) ?? '',
    flags: m.payload.readUInt32LE(8),
    mtu: attr.u32(a.get(IFLA_MTU)) ?? 0,
    operState: OPER_STATES[oper] ?? 'unknown',
    kind,
    slaveKind: attr.string(info.get(IFLA_INFO_SLAVE_KIND)) ?? null,
    master: attr.u32(a.get(IFLA_MASTER)) || null, // 0 would mean "no master"
    link: attr.s32(a.get(IFLA_LINK)) ?? null,
    linkNetnsId: attr.s32(a.get(IFLA_LINK_NETNSID)) ?? null,
    vlanId,
  };
}

// ---- generic netlink controller (linux/genetlink.h) ----

export const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const GENL_HDRLEN = 4; // struct genlmsghdr { u8 cmd; u8 version; u16 reserved; }

function genlHeader(cmd: number, version: number): Buffer {
  return Buffer.from([cmd, version, 0, 0]);
}

/** The attributes of a generic netlink message (after struct genlmsghdr). */
export function genlAttrs(m: NlMessage): Map<number, Buffer> {
  if (m.payload.length < GENL_HDRLEN) throw new LbError('LB_NET_IFACE', 'malformed netlink reply: generic netlink message without its header', { type: m.type });
  return parseAttrs(m.payload.subarray(GENL_HDRLEN));
}

export function getFamilyRequest(seq: number, name: string): Buffer {
  return encodeMessage({
    type: GENL_ID_CTRL, flags: NLM_F_REQUEST, seq,
    payload: Buffer.concat([genlHeader(CTRL_CMD_GETFAMILY, 1), attrString(CTRL_ATTR_FAMILY_NAME, name)]),
  });
}

/** CTRL_CMD_NEWFAMILY (the answer to GETFAMILY): the family's id and name. */
export function decodeFamily(m: NlMessage): { id: number; name: string } {
  const a = genlAttrs(m);
  const id = attr.u16(a.get(CTRL_ATTR_FAMILY_ID));
  if (id === undefined) throw new LbError('LB_NET_IFACE', 'malformed netlink reply: CTRL_CMD_NEWFAMILY without CTRL_ATTR_FAMILY_ID', {});
  return { id, name: attr.string(a.get(CTRL_ATTR_FAMILY_NAME)) ?? '' };
}

// ---- the 'netdev' family (uapi/linux/netdev.h, kernel >= 6.3) ----

export const NETDEV_FAMILY_NAME = 'netdev';
const NETDEV_FAMILY_VERSION = 1;
const NETDEV_CMD_DEV_GET = 1;
const NETDEV_A_DEV_IFINDEX = 1;
const NETDEV_A_DEV_XDP_FEATURES = 3;

/** enum netdev_xdp_act. */
export const NETDEV_XDP_ACT = {
  BASIC: 1n, REDIRECT: 2n, NDO_XMIT: 4n, XSK_ZEROCOPY: 8n, HW_OFFLOAD: 16n, RX_SG: 32n, NDO_XMIT_SG: 64n,
} as const;

/** NETDEV_CMD_DEV_GET for one ifindex, or a dump of every device of the namespace. */
export function devGetRequest(seq: number, familyId: number, which: { dump: true } | { ifindex: number }): Buffer {
  const parts = [genlHeader(NETDEV_CMD_DEV_GET, NETDEV_FAMILY_VERSION)];
  if ('ifindex' in which) parts.push(attrU32(NETDEV_A_DEV_IFINDEX, which.ifindex));
  const flags = NLM_F_REQUEST | ('dump' in which ? NLM_F_DUMP : 0);
  return encodeMessage({ type: familyId, flags, seq, payload: Buffer.concat(parts) });
}

/** A NETDEV_CMD_DEV_GET answer: the device and its raw xdp_features (0n when the attribute is absent). */
export function decodeDev(m: NlMessage): { ifindex: number; xdpFeatures: bigint } {
  const a = genlAttrs(m);
  const ifindex = attr.u32(a.get(NETDEV_A_DEV_IFINDEX));
  if (ifindex === undefined) throw new LbError('LB_NET_IFACE', 'malformed netlink reply: netdev device without NETDEV_A_DEV_IFINDEX', {});
  return { ifindex, xdpFeatures: attr.u64(a.get(NETDEV_A_DEV_XDP_FEATURES)) ?? 0n };
}

export interface XdpFeatures { basic: boolean; redirect: boolean; ndoXmit: boolean; ndoXmitSg: boolean; raw: bigint }

/**
 * The bits the balancer decides on: basic (a native XDP program runs at all), redirect (it may
 * return XDP_REDIRECT), ndoXmit / ndoXmitSg (the device accepts redirected frames, i.e. can be a
 * redirect target). raw keeps every bit, including ones newer than this code.
 */
export function decodeXdpFeatures(raw: bigint): XdpFeatures {
  const has = (bit: bigint): boolean => (raw & bit) !== 0n;
  return {
    basic: has(NETDEV_XDP_ACT.BASIC), redirect: has(NETDEV_XDP_ACT.REDIRECT),
    ndoXmit: has(NETDEV_XDP_ACT.NDO_XMIT), ndoXmitSg: has(NETDEV_XDP_ACT.NDO_XMIT_SG), raw,
  };
}

/** The names of the set bits, for reports (`xdp_features: basic redirect rx-sg`). */
export function xdpFeatureNames(raw: bigint): string[] {
  const names: string[] = [];
  for (const [name, bit] of Object.entries(NETDEV_XDP_ACT)) if ((raw & bit) !== 0n) names.push(name.toLowerCase().replaceAll('_', '-'));
  const unknown = raw & ~127n;
  if (unknown !== 0n) names.push(`0x${unknown.toString(16)}`);
  return names;
}
