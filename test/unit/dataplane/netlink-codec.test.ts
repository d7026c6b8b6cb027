// The pure netlink codec (src/dataplane/netlink/codec.ts) and message decoders (messages.ts) against
// byte sequences recorded from kernel 6.18 in a throwaway network namespace (veth xa/xb with GRO on
// xb, bridge br0 with veth port pa/pb), plus a VLAN message laid out by hand as the kernel's
// vlan_fill_info writes it (this VM's kernel has no 8021q to record one from).
import { describe, expect, it } from 'vitest';
import {
  align4, attr, attrString, attrU32, decodeDone, decodeError, encodeAttr, encodeMessage, NLA_F_NESTED, NLM_F_ACK_TLVS,
  NLM_F_CAPPED, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, parseAttrs, parseMessages,
} from '../../../src/dataplane/netlink/codec.js';
import {
  decodeDev, decodeFamily, decodeLink, decodeXdpFeatures, devGetRequest, GENL_ID_CTRL, getFamilyRequest, getLinkRequest,
  IFF_LOWER_UP, IFF_UP, RTM_NEWLINK, xdpFeatureNames,
} from '../../../src/dataplane/netlink/messages.js';

const hex = (...lines: string[]): Buffer => Buffer.from(lines.join(''), 'hex');

/** RTM_NEWLINK for `pa` (ifindex 6): a veth (peer pb, ifindex 5) that is a port of bridge br0 (ifindex 4), up, carrier, MTU 1500. Answer to REQ_GETLINK_PA. */
const NEWLINK_PA = hex(
  'c805000010000000e8030000403b000000000100060000004310010000000000070003007061000008000d00e80300000500100006000000',
  '0500110000000000050043000000000008000400dc050000080032004400000008003300ffff000008001b000000000008001e0001000000',
  '08003d000100000008001f000200000008002800ffff0000080029000000010008003a000000010008003f00000001000800400000000100',
  '08003b00f8ff070008003c00ffff00000800420000000000080020000200000008000a000400000005002100010000000800230002000000',
  '08002f000100000008003000010000000600440000000000060045000000000005002700000000000a0001004e4964ec505400000a000200',
  'ffffffffffff0000cc00170002000000000000000400000000000000b4000000000000006c01000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000640007000200000004000000',
  'b40000006c010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '00000000000000000000000000000000000000000000000000000000000000000c002b0005000200000000006c0112000900010076657468',
  '000000000b000400627269646765000050010500050001000300000006000200200000000800030002000000050004000000000005000500',
  '000000000500060000000000050007000000000005001c00000000000500080001000000050009000100000005001b000100000005001e00',
  '0100000005000a000000000005000c00000000000c000d0080004e4964ec50540c000e0080004e4964ec505406000f000180000006001000',
  '00000000060011000180000006001200010000000500130000000000050014000000000005001d000000000006001f000000000005002000',
  '000000000500230000000000050024000000000005002100000000000500270000000000050028000000000005002b00000000000c001500',
  '00000000000000000c001600d0050000000000000c0017000000000000000000050019000100000008002500000200000800260000000000',
  '080029000100000008002a000000000008000500050000000c0006006e6f717565756500c0011a008c000200880001000000000000000000',
  '0000000001000000010000000100000001000000000000000100000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000000000000000000010270000e80300000000000000000000',
  '00000000000000000100000030010a00080001000000008014000500ffff00005642330080a20000e8030000f40002000000000040000000',
  'dc05000001000000010000000100000001000000ffffffffa00f0000e803000000000000803a090080510100030000005802000010000000',
  '0000000001000000010000000100000060ea0000000000000000000000000000000000000000000000000000010000000000000000000000',
  '10270000e8030000010000000000000000000000010000000000000000000000010000000000000000000000000000000000000080ee3600',
  '00000000000000000100000000000000000000000000000000000000000000000004000000000000ffff0000ffffffff0100000000000000',
  '00000000000000001400070000000000000000000000000000000000050008000000000024000e0000000000000000000000000000000000',
  '0000000000000000000000000000000004003e8004004180',
);

/** Our RTM_GETLINK request for `pa`, seq 1000, as sent. */
const REQ_GETLINK_PA = hex(
  '3000000012000100e8030000000000000000000000000000000000000000000008001d00080000000700030070610000',
);

/** NLMSG_ERROR -ENODEV (capped) for RTM_GETLINK of a name that does not exist, seq 1001. */
const ERR_NODEV = hex(
  '2400000002000001e9030000403b0000edffffff3400000012000100e903000000000000',
);

/** NLMSG_ERROR -ERANGE with extended ack, for RTM_GETLINK with a 20-character IFLA_IFNAME, seq 1002. */
const ERR_EXTACK = hex(
  '6800000002000003ea030000403b0000deffffff4400000012000100ea0300000000000027000100417474726962757465206661696c6564',
  '20706f6c6963792076616c69646174696f6e0000080002002800000014000480080007000f000000080001000b000000',
);

/** NLMSG_DONE ending an RTM_GETLINK dump (its own datagram), seq 1003. */
const DONE = hex(
  '1400000003000200eb030000403b000000000000',
);

/** CTRL_CMD_NEWFAMILY answering CTRL_CMD_GETFAMILY 'netdev' (family id 20 on this boot), seq 2000. */
const NEWFAMILY_NETDEV = hex(
  '1c01000010000000d0070000403b0000010200000b0002006e65746465760000060001001400000008000300010000000800040000000000',
  '0800050000000000a4000600140001000800010001000000080002000e000000140002000800010005000000080002000e00000014000300',
  '080001000a000000080002000e00000014000400080001000b000000080002000e00000014000500080001000c000000080002000c000000',
  '14000600080001000d000000080002000b00000014000700080001000e000000080002000b00000014000800080001000f00000008000200',
  '0a00000038000700180001000800020004000000090001006d676d74000000001c00020008000200050000000e000100706167652d706f6f',
  '6c000000',
);

/** NLMSG_ERROR -ENOENT for CTRL_CMD_GETFAMILY of a family that does not exist, seq 2001. */
const ERR_NOFAMILY = hex(
  '2400000002000001d1070000403b0000feffffff2800000010000100d107000000000000',
);

/** Our NETDEV_CMD_DEV_GET request for ifindex 3 (veth xa), family 20, seq 2002, as sent. */
const REQ_DEVGET_XA = hex(
  '1c00000014000100d207000000000000010100000800010003000000',
);

/** NETDEV_CMD_DEV_GET answer for xa whose peer has GRO on: xdp_features 0x67 (basic, redirect, ndo-xmit, rx-sg, ndo-xmit-sg). */
const DEV_XA = hex(
  '4000000014000000d2070000403b00000101000008000100030000000c00030067000000000000000c00050007000000000000000c000600',
  '0000000000000000',
);

/** A datagram holding one message whose payload is `payload` (for hand-made cases). */
function one(type: number, payload: Buffer, flags = 0, seq = 7) {
  const [m] = parseMessages(encodeMessage({ type, flags, seq, payload }));
  return m!;
}

describe('netlink framing', () => {
  it('splits a recorded datagram into its message and reads the header', () => {
    const msgs = parseMessages(NEWLINK_PA);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]).toMatchObject({ type: RTM_NEWLINK, flags: 0, seq: 1000 });
    expect(msgs[0]!.payload.length).toBe(NEWLINK_PA.readUInt32LE(0) - 16);
  });

  it('encodes messages and attributes with 4-byte padding, lengths unpadded', () => {
    const a = encodeAttr(3, Buffer.from('pa\0'));
    expect(a.toString('hex')).toBe('0700030070610000');
    expect(attrString(3, 'pa').equals(a)).toBe(true);
    expect(attrU32(29, 8).toString('hex')).toBe('08001d0008000000');
    const m = encodeMessage({ type: 18, flags: 1, seq: 5, payload: Buffer.from([1, 2, 3]) });
    expect(m.length).toBe(20);
    expect(m.readUInt32LE(0)).toBe(19);
    expect(parseMessages(m)[0]!.payload).toEqual(Buffer.from([1, 2, 3]));
    expect([0, 1, 4, 5, 8].map(align4)).toEqual([0, 4, 4, 8, 8]);
  });

  it('masks NLA_F_NESTED off attribute types and keeps the first of a repeated type', () => {
    const block = Buffer.concat([encodeAttr(18 | NLA_F_NESTED, attrU32(1, 9)), attrU32(4, 1), attrU32(4, 2)]);
    const attrs = parseAttrs(block);
    expect([...attrs.keys()]).toEqual([18, 4]);
    expect(attr.u32(attrs.get(4))).toBe(1);
    expect(attr.u32(parseAttrs(attrs.get(18)!).get(1))).toBe(9);
  });

  it('refuses truncated datagrams and attributes that run past their block', () => {
    expect(() => parseMessages(NEWLINK_PA.subarray(0, 100))).toThrow(expect.objectContaining({ code: 'LB_NET_IFACE' }));
    expect(() => parseMessages(Buffer.concat([DONE, Buffer.alloc(4)]))).toThrow(/trailing/);
    const bad = Buffer.from('0800030070', 'hex'); // says 8 bytes, has 5
    expect(() => parseAttrs(bad)).toThrow(expect.objectContaining({ code: 'LB_NET_IFACE' }));
    const tooShort = Buffer.alloc(16);
    tooShort.writeUInt32LE(8, 0); // nlmsg_len below the header size
    expect(() => parseMessages(tooShort)).toThrow(/message length 8/);
  });

  it('decodes recorded errors: errno, capped echo, extended-ack text', () => {
    const nodev = parseMessages(ERR_NODEV)[0]!;
    expect(nodev.type).toBe(NLMSG_ERROR);
    expect(nodev.flags & NLM_F_CAPPED).not.toBe(0);
    expect(decodeError(nodev)).toEqual({ errno: 19 });
    const ext = parseMessages(ERR_EXTACK)[0]!;
    expect(ext.flags & NLM_F_ACK_TLVS).not.toBe(0);
    expect(decodeError(ext)).toEqual({ errno: 34, message: 'Attribute failed policy validation' });
    expect(decodeError(parseMessages(ERR_NOFAMILY)[0]!)).toEqual({ errno: 2 });
  });

  it('decodes the recorded NLMSG_DONE of a dump', () => {
    const done = parseMessages(DONE)[0]!;
    expect(done).toMatchObject({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 1003 });
    expect(decodeDone(done)).toBe(0);
    const failed = Buffer.alloc(4);
    failed.writeInt32LE(-4);
    expect(decodeDone(one(NLMSG_DONE, failed))).toBe(4);
  });
});

describe('rtnetlink links', () => {
  it('encodes RTM_GETLINK requests byte for byte as recorded', () => {
    expect(getLinkRequest(1000, { name: 'pa' }).equals(REQ_GETLINK_PA)).toBe(true);
    const dump = getLinkRequest(9, { dump: true });
    expect(dump.readUInt16LE(6)).toBe(0x301); // NLM_F_REQUEST | NLM_F_DUMP
    expect(dump.length).toBe(16 + 16 + 8);
    const byIndex = getLinkRequest(9, { ifindex: 42 });
    expect(byIndex.readInt32LE(16 + 4)).toBe(42);
    expect(byIndex.readUInt16LE(6)).toBe(1);
  });

  it('decodes the recorded bridge-port veth', () => {
    const link = decodeLink(parseMessages(NEWLINK_PA)[0]!);
    expect(link).toEqual({
      ifindex: 6, name: 'pa', flags: expect.any(Number), mtu: 1500, operState: 'up', kind: 'veth', slaveKind: 'bridge',
      master: 4, link: 5, linkNetnsId: null, vlanId: null,
    });
    expect(link.flags & IFF_UP).toBe(IFF_UP);
    expect(link.flags & IFF_LOWER_UP).toBe(IFF_LOWER_UP);
  });

  it('decodes a VLAN: kind, lower device, VLAN id from IFLA_INFO_DATA', () => {
    const msg = Buffer.concat([
      Buffer.from('00000100090000000310000000000000', 'hex'),   // ifinfomsg: ARPHRD_ETHER, index 9, IFF_UP|BROADCAST|MULTICAST
      Buffer.from('0b00030078612e3130300000', 'hex'),           // IFLA_IFNAME "xa.100"
      Buffer.from('08000400dc050000', 'hex'),                   // IFLA_MTU 1500
      Buffer.from('0800050003000000', 'hex'),                   // IFLA_LINK 3 (xa)
      Buffer.from('0500100002000000', 'hex'),                   // IFLA_OPERSTATE IF_OPER_DOWN
      Buffer.from('30001200', 'hex'),                           // IFLA_LINKINFO, 48 bytes (nested, no flag: nla_nest_start_noflag)
      Buffer.from('09000100766c616e00000000', 'hex'),           //   IFLA_INFO_KIND "vlan"
      Buffer.from('20000200', 'hex'),                           //   IFLA_INFO_DATA, 32 bytes
      Buffer.from('0600050081000000', 'hex'),                   //     IFLA_VLAN_PROTOCOL 0x8100 (big endian)
      Buffer.from('0600010064000000', 'hex'),                   //     IFLA_VLAN_ID 100
      Buffer.from('0c00020001000000ffffffff', 'hex'),           //     IFLA_VLAN_FLAGS {REORDER_HDR, mask}
    ]);
    const link = decodeLink(one(RTM_NEWLINK, msg));
    expect(link).toEqual({
      ifindex: 9, name: 'xa.100', flags: 0x1003, mtu: 1500, operState: 'down', kind: 'vlan', slaveKind: null,
      master: null, link: 3, linkNetnsId: null, vlanId: 100,
    });
  });

  it('reads no VLAN id from a non-VLAN kind and refuses a message that is not RTM_NEWLINK', () => {
    expect(decodeLink(parseMessages(NEWLINK_PA)[0]!).vlanId).toBeNull();
    expect(() => decodeLink(parseMessages(DONE)[0]!)).toThrow(/expected RTM_NEWLINK/);
  });
});

describe('generic netlink: controller and the netdev family', () => {
  it('encodes CTRL_CMD_GETFAMILY and decodes the recorded answer', () => {
    const req = getFamilyRequest(2000, 'netdev');
    expect(req.readUInt16LE(4)).toBe(GENL_ID_CTRL);
    // nlmsghdr (32 bytes, GENL_ID_CTRL, NLM_F_REQUEST, seq 2000), genlmsghdr (GETFAMILY, v1), CTRL_ATTR_FAMILY_NAME
    expect(req.toString('hex')).toBe('2000000010000100d00700000000000003010000' + '0b0002006e65746465760000');
    expect(decodeFamily(parseMessages(NEWFAMILY_NETDEV)[0]!)).toEqual({ id: 20, name: 'netdev' });
  });

  it('encodes NETDEV_CMD_DEV_GET byte for byte as recorded and decodes the answer', () => {
    expect(devGetRequest(2002, 20, { ifindex: 3 }).equals(REQ_DEVGET_XA)).toBe(true);
    expect(devGetRequest(1, 20, { dump: true }).readUInt16LE(6)).toBe(0x301);
    const dev = decodeDev(parseMessages(DEV_XA)[0]!);
    expect(dev).toEqual({ ifindex: 3, xdpFeatures: 0x67n });
  });

  it('decodes xdp_features bits, keeping raw and naming unknown ones', () => {
    expect(decodeXdpFeatures(0x67n)).toEqual({ basic: true, redirect: true, ndoXmit: true, ndoXmitSg: true, raw: 0x67n });
    expect(decodeXdpFeatures(35n)).toEqual({ basic: true, redirect: true, ndoXmit: false, ndoXmitSg: false, raw: 35n });
    expect(decodeXdpFeatures(0n)).toEqual({ basic: false, redirect: false, ndoXmit: false, ndoXmitSg: false, raw: 0n });
    expect(xdpFeatureNames(0x67n)).toEqual(['basic', 'redirect', 'ndo-xmit', 'rx-sg', 'ndo-xmit-sg']);
    expect(xdpFeatureNames(43n)).toEqual(['basic', 'redirect', 'xsk-zerocopy', 'rx-sg']);
    expect(xdpFeatureNames(0x81n)).toEqual(['basic', '0x80']);
  });

  it('reads a 4-byte xdp_features (NLA_UINT may be sent as u32) and 0 when absent', () => {
    const hdr = Buffer.from([1, 1, 0, 0]);
    expect(decodeDev(one(20, Buffer.concat([hdr, attrU32(1, 7), attrU32(3, 3)])))).toEqual({ ifindex: 7, xdpFeatures: 3n });
    expect(decodeDev(one(20, Buffer.concat([hdr, attrU32(1, 7)])))).toEqual({ ifindex: 7, xdpFeatures: 0n });
  });
});
