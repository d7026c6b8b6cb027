// Facts about the network interfaces of the calling thread's network namespace, read from the
// kernel over netlink: kind (veth, bridge, vlan, ...), master, up/carrier, MTU, VLAN lower device
// and id, and the driver's XDP features. The balancer chooses native XDP or the TC (skb) path per
// interface from these.
//
// Netlink rather than /sys/class/net: sysfs shows the namespace it was mounted in, so a process
// started with `nsenter --net=...` (or a thread inside withNetns) would read the host's links.
// Links come from an RTM_GETLINK dump (rtnetlink); XDP features from NETDEV_CMD_DEV_GET of the
// 'netdev' generic netlink family (kernel >= 6.3; null on older kernels such as Debian 12's 6.1).
// Framing and decoding: netlink/codec.ts and netlink/messages.ts (pure); sockets: netlink/socket.ts.

import { LbError } from '../core/errors.js';
import { NETLINK_GENERIC, NETLINK_ROUTE, type NlMessage } from './netlink/codec.js';
import {
  decodeDev, decodeFamily, decodeLink, decodeXdpFeatures, devGetRequest, getFamilyRequest, getLinkRequest,
  IFF_LOWER_UP, IFF_UP, NETDEV_FAMILY_NAME, type OperState, type RawLink, type XdpFeatures,
} from './netlink/messages.js';
import { NetlinkError, withNetlink, type NetlinkSocket } from './netlink/socket.js';

export type { XdpFeatures, OperState };

export interface LinkFacts {
  name: string;
  ifindex: number;
  /** IFLA_LINKINFO/IFLA_INFO_KIND: 'veth', 'bridge', 'vlan', 'bond', 'tun', 'macvlan', 'dummy', ...; null for a physical NIC (no kind), and for lo. */
  kind: string | null;
  /** IFLA_MASTER's ifindex and that master's kind (bridge/bond port), or null. */
  master: { ifindex: number; kind: string | null } | null;
  /** up: IFF_UP (administratively up); carrier: IFF_LOWER_UP (the driver reports L1 up). */
  up: boolean;
  carrier: boolean;
  /** IFLA_OPERSTATE (RFC 2863): 'up', 'down', 'lowerlayerdown', 'unknown' (lo, dummy), ... */
  operState: OperState;
  mtu: number;
  /**
   * IFLA_LINK whenever the kernel reports it: for a VLAN the lower device; for a veth the peer,
   * whose ifindex is in another namespace when linkNetnsId is set. null when there is none.
   */
  link: number | null;
  /** IFLA_LINK_NETNSID: the namespace (an id local to this one) that `link` is in, or null for this one. */
  linkNetnsId: number | null;
  /** For VLAN: the VLAN id (IFLA_INFO_DATA/IFLA_VLAN_ID); null otherwise. */
  vlanId: number | null;
  /**
   * xdp_features from the generic-netlink 'netdev' family (NETDEV_A_DEV_XDP_FEATURES), decoded;
   * null when the family does not exist (kernel < 6.3).
   */
  xdp: XdpFeatures | null;
}

/** How often an inconsistent dump (NLM_F_DUMP_INTR: links changed meanwhile) is asked again. */
const DUMP_ATTEMPTS = 5;
const IFNAMSIZ = 16;

function dump(sock: NetlinkSocket, build: (seq: number) => Buffer, what: string): NlMessage[] {
  for (let attempt = 1; attempt <= DUMP_ATTEMPTS; attempt++) {
    const seq = sock.nextSeq();
    const { messages, interrupted } = sock.request(build(seq), seq, what, true);
    if (!interrupted) return messages;
  }
  throw new LbError('LB_NET_IFACE', `${what}: the interfaces kept changing during ${DUMP_ATTEMPTS} dumps`, { attempts: DUMP_ATTEMPTS });
}

/** One answer to a single (non-dump) request, or undefined when the kernel says errno `missing`. */
function getOne(sock: NetlinkSocket, build: (seq: number) => Buffer, what: string, missing: number): NlMessage | undefined {
  const seq = sock.nextSeq();
  try {
    return sock.request(build(seq), seq, what, false).messages[0];
  } catch (err) {
    if (err instanceof NetlinkError && err.errno === missing) return undefined;
    throw err;
  }
}

const ENOENT = 2;
const ENODEV = 19;

/** The 'netdev' family's id, or undefined when this kernel has none (ENOENT). */
function netdevFamily(genl: NetlinkSocket): number | undefined {
  const m = getOne(genl, (seq) => getFamilyRequest(seq, NETDEV_FAMILY_NAME), `CTRL_CMD_GETFAMILY ${NETDEV_FAMILY_NAME}`, ENOENT);
  return m ? decodeFamily(m).id : undefined;
}

/** xdp_features of every device of the namespace, or null without the netdev family. */
function allXdpFeatures(): Map<number, bigint> | null {
  return withNetlink(NETLINK_GENERIC, (genl) => {
    const family = netdevFamily(genl);
    if (family === undefined) return null;
    const devs = dump(genl, (seq) => devGetRequest(seq, family, { dump: true }), 'NETDEV_CMD_DEV_GET dump').map(decodeDev);
    return new Map(devs.map((d) => [d.ifindex, d.xdpFeatures]));
  });
}

function toFacts(l: RawLink, masterKind: string | null, xdp: bigint | null | undefined): LinkFacts {
  return {
    name: l.name,
    ifindex: l.ifindex,
    kind: l.kind,
    master: l.master === null ? null : { ifindex: l.master, kind: masterKind },
    up: (l.flags & IFF_UP) !== 0,
    carrier: (l.flags & IFF_LOWER_UP) !== 0,
    operState: l.operState,
    mtu: l.mtu,
    link: l.link,
    linkNetnsId: l.linkNetnsId,
    vlanId: l.vlanId,
    // undefined: the family exists but did not list the device (it appeared after the link dump).
    xdp: xdp === null || xdp === undefined ? null : decodeXdpFeatures(xdp),
  };
}

/** Every link of the calling thread's network namespace, by ifindex. */
export function linkFacts(): LinkFacts[] {
  const links = withNetlink(NETLINK_ROUTE, (rt) => dump(rt, (seq) => getLinkRequest(seq, { dump: true }), 'RTM_GETLINK dump')).map(decodeLink);
  const xdp = allXdpFeatures();
  const kinds = new Map(links.map((l) => [l.ifindex, l.kind]));
  return links
    .map((l) => toFacts(l, l.master === null ? null : kinds.has(l.master) ? kinds.get(l.master)! : l.slaveKind, xdp === null ? null : xdp.get(l.ifindex)))
    .sort((a, b) => a.ifindex - b.ifindex);
}

/** The link named `name` in the calling thread's network namespace, or undefined when there is none. */
export function linkFactsByName(name: string): LinkFacts | undefined {
  // The kernel's dev_valid_name(): such a name cannot exist, and saying so beats "not found".
  if (name.length === 0 || name.length >= IFNAMSIZ || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new LbError('LB_NET_IFACE', `invalid interface name ${JSON.stringify(name)}`, { ifname: name });
  }
  const found = withNetlink(NETLINK_ROUTE, (rt) => {
    const m = getOne(rt, (seq) => getLinkRequest(seq, { name }), `RTM_GETLINK ${name}`, ENODEV);
    if (!m) return undefined;
    const link = decodeLink(m);
    let masterKind: string | null = null;
    if (link.master !== null) {
      const mm = getOne(rt, (seq) => getLinkRequest(seq, { ifindex: link.master! }), `RTM_GETLINK ifindex ${link.master}`, ENODEV);
      masterKind = mm ? decodeLink(mm).kind : link.slaveKind; // the master went away meanwhile: its port kind says what it was
    }
    return { link, masterKind };
  });
  if (!found) return undefined;
  const xdp = withNetlink(NETLINK_GENERIC, (genl) => {
    const family = netdevFamily(genl);
    if (family === undefined) return null;
    const m = getOne(genl, (seq) => devGetRequest(seq, family, { ifindex: found.link.ifindex }), `NETDEV_CMD_DEV_GET ${name}`, ENODEV);
    return m ? decodeDev(m).xdpFeatures : undefined;
  });
  return toFacts(found.link, found.masterKind, xdp);
}
