// The packet library is the reference the data plane's fixtures are judged by, so its checksum
// code is proven here against published examples and against frames the Linux kernel built
// (captured on a sandbox veth with TX checksum offload off, so the kernel computed every checksum
// in software), independently of anything in bpf/.
import { describe, expect, it } from 'vitest';
import {
  ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, ICMP_DEST_UNREACH, ICMP_ECHO_REPLY, ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH, TCP_SYN,
  buildFrame, buildIpv4Header, buildIpv4Packet, describeFrame, diffFrames, fromHex, internetChecksum,
  onesComplementSum, parseFrame, pseudoHeader, tcpOption, toHex, truncate, verifyChecksums,
  type FrameSpec,
} from '../lib/packet.js';

// ---- Frames captured from the kernel (netsniff-ng on the LB side of a sandbox client link). ----
const MAC_CLIENT = '16:29:3c:a4:0b:8c';
const MAC_LB = '0a:de:53:18:ab:41';

/** Client 10.201.1.2:40000 -> 10.202.1.2:9000 UDP "hello lb". */
const K_UDP = fromHex(`0ade5318ab41 16293ca40b8c 0800
  4500 0024 ba3d 4000 4011 68f5 0ac9 0102 0aca 0102
  9c40 2328 0010 787a 6865 6c6c 6f20 6c62`);
/** The backend's reply "b1\n" (odd length), forwarded by the LB (ttl 63). */
const K_UDP_REPLY = fromHex(`16293ca40b8c 0ade5318ab41 0800
  4500 001f 1573 4000 3f11 0ec5 0aca 0102 0ac9 0102
  2328 9c40 000b bca7 6231 0a`);
/** curl's SYN: MSS 1460, SACK permitted, timestamps, NOP, window scale 10. */
const K_SYN = fromHex(`0ade5318ab41 16293ca40b8c 0800
  4500 003c f736 4000 4006 2bef 0ac9 0102 0aca 0102
  ecce 1f90 ed0f 97e7 0000 0000 a002 faf0 f3ec 0000
  0204 05b4 0402 080a 89c2 2670 0000 0000 0103 030a`);
/** curl's request: 79 bytes of payload (odd), PSH|ACK. */
const K_HTTP_REQUEST = fromHex(`0ade5318ab41 16293ca40b8c 0800
  4500 0083 f738 4000 4006 2ba6 0ac9 0102 0aca 0102
  ecce 1f90 ed0f 97e8 1ed7 320c 8018 003f 37d0 0000 0101 080a 89c2 2671 3dc3 9939
  474554202f20485454502f312e310d0a486f73743a2031302e3230322e312e323a383038300d0a
  557365722d4167656e743a206375726c2f372e38382e310d0a4163636570743a202a2f2a0d0a0d0a`);
/** The kernel's echo reply to an echo request (id 0x1234, seq 1, data "ping!"). */
const K_ECHO_REPLY = fromHex(`2ab26b18e256 d66248678dec 0800
  4500 0021 2f36 0000 3f01 3510 0aca 0102 0ac9 0102
  0000 edf9 1234 0001 7069 6e67 21`);
/** Backend kernel: port unreachable for UDP 10.201.1.2:40002 -> 10.202.1.2:9999 "closed?". */
const K_PORT_UNREACH = fromHex(`2ab26b18e256 d66248678dec 0800
  45c0 003f 2ec9 0000 3f01 349f 0aca 0102 0ac9 0102
  0303 14b4 0000 0000
  4500 0023 8eeb 4000 3f11 9548 0ac9 0102 0aca 0102 9c42 270f 000f ada3 636c 6f73 6564 3f`);
/** LB kernel: fragmentation needed (MTU 1000) for a 1100-byte DF datagram; quotes 548 bytes. */
const K_FRAG_NEEDED = Buffer.concat([fromHex(`2ab26b18e256 d66248678dec 0800
  45c0 0240 3234 0000 4001 2e35 0ac9 0101 0ac9 0102
  0304 8d88 0000 03e8
  4500 0468 8edb 4000 4011 9013 0ac9 0102 0aca 0102 9c41 2328 0454 4d73`), Buffer.alloc(520, 'x')]);

describe('checksum primitives', () => {
  it('RFC 1071 section 3 example: sum ddf2, checksum 220d', () => {
    const data = fromHex('0001 f203 f4f5 f6f7');
    expect(onesComplementSum(data)).toBe(0xddf2);
    expect(internetChecksum(data)).toBe(0x220d);
    // Appending the checksum makes the sum all ones (the receiver's check).
    expect(onesComplementSum(Buffer.concat([data, fromHex('220d')]))).toBe(0xffff);
  });

  it('pads an odd trailing byte with zero', () => {
    expect(onesComplementSum(fromHex('01'))).toBe(0x0100);
    expect(onesComplementSum(fromHex('0001 02'))).toBe(0x0201);
    expect(internetChecksum(fromHex('0001'), fromHex('02'))).toBe(~0x0201 & 0xffff);
  });

  it('folds carries repeatedly', () => {
    expect(onesComplementSum(fromHex('ffff ffff ffff'))).toBe(0xffff);
    expect(onesComplementSum(fromHex('8000 8000'))).toBe(0x0001);
  });

  it('the well-known IPv4 header example has checksum b861', () => {
    // 192.168.0.1 -> 192.168.0.199, total length 0x73, DF, TTL 64, UDP.
    const hdr = fromHex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
    expect(internetChecksum(hdr)).toBe(0xb861);
    const built = buildIpv4Header({ src: '192.168.0.1', dst: '192.168.0.199', df: true, ttl: 64 }, 0x73 - 20, IPPROTO_UDP);
    expect(toHex(built)).toBe('45000073000040004011b861c0a80001c0a800c7');
    expect(onesComplementSum(built)).toBe(0xffff);
  });

  it('pseudo-header layout', () => {
    expect(toHex(pseudoHeader('10.0.0.1', '10.0.0.2', IPPROTO_TCP, 0x1234))).toBe('0a0000010a00000200061234');
  });
});

describe('builder reproduces kernel-built frames byte for byte', () => {
  it('UDP request', () => {
    const f = buildFrame({
      eth: { src: MAC_CLIENT, dst: MAC_LB },
      ipv4: { src: '10.201.1.2', dst: '10.202.1.2', id: 0xba3d, df: true, ttl: 64 },
      l4: { kind: 'udp', sport: 40000, dport: 9000, payload: Buffer.from('hello lb') },
    });
    expect(diffFrames(f, K_UDP)).toBeNull();
  });

  it('UDP reply with an odd-length payload', () => {
    const f = buildFrame({
      eth: { src: MAC_LB, dst: MAC_CLIENT },
      ipv4: { src: '10.202.1.2', dst: '10.201.1.2', id: 0x1573, df: true, ttl: 63 },
      l4: { kind: 'udp', sport: 9000, dport: 40000, payload: Buffer.from('b1\n') },
    });
    expect(diffFrames(f, K_UDP_REPLY)).toBeNull();
  });

  it('TCP SYN with options', () => {
    const f = buildFrame({
      eth: { src: MAC_CLIENT, dst: MAC_LB },
      ipv4: { src: '10.201.1.2', dst: '10.202.1.2', id: 0xf736, df: true },
      l4: {
        kind: 'tcp', sport: 0xecce, dport: 8080, seq: 0xed0f97e7, flags: { syn: true }, window: 0xfaf0,
        options: Buffer.concat([tcpOption.mss(1460), tcpOption.sackPermitted(), tcpOption.timestamps(0x89c22670, 0), tcpOption.nop(), tcpOption.windowScale(10)]),
      },
    });
    expect(diffFrames(f, K_SYN)).toBeNull();
  });

  it('TCP segment with an odd-length payload', () => {
    const p = parseFrame(K_HTTP_REQUEST);
    const f = buildFrame({
      eth: { src: MAC_CLIENT, dst: MAC_LB },
      ipv4: { src: '10.201.1.2', dst: '10.202.1.2', id: 0xf738, df: true },
      l4: { kind: 'tcp', sport: 0xecce, dport: 8080, seq: 0xed0f97e8, ack: 0x1ed7320c, flags: TCP_PSH | TCP_ACK, window: 0x3f,
        options: Buffer.concat([tcpOption.nop(), tcpOption.nop(), tcpOption.timestamps(0x89c22671, 0x3dc39939)]), payload: p.payload },
    });
    expect(p.payload.length % 2).toBe(1);
    expect(diffFrames(f, K_HTTP_REQUEST)).toBeNull();
  });

  it('ICMP echo reply', () => {
    const f = buildFrame({
      eth: { src: 'd6:62:48:67:8d:ec', dst: '2a:b2:6b:18:e2:56' },
      ipv4: { src: '10.202.1.2', dst: '10.201.1.2', id: 0x2f36, ttl: 63 },
      l4: { kind: 'icmp', type: ICMP_ECHO_REPLY, id: 0x1234, seq: 1, payload: Buffer.from('ping!') },
    });
    expect(diffFrames(f, K_ECHO_REPLY)).toBeNull();
  });

  it('ICMP port unreachable quoting a whole UDP datagram', () => {
    const f = buildFrame({
      eth: { src: 'd6:62:48:67:8d:ec', dst: '2a:b2:6b:18:e2:56' },
      ipv4: { src: '10.202.1.2', dst: '10.201.1.2', id: 0x2ec9, ttl: 63, tos: 0xc0 },
      l4: {
        kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_PORT_UNREACH,
        inner: { ipv4: { src: '10.201.1.2', dst: '10.202.1.2', id: 0x8eeb, df: true, ttl: 63 },
          l4: { kind: 'udp', sport: 40002, dport: 9999, payload: Buffer.from('closed?') }, quoteBytes: 1500 },
      },
    });
    expect(diffFrames(f, K_PORT_UNREACH)).toBeNull();
  });

  it('ICMP fragmentation needed quoting 548 bytes of a larger datagram', () => {
    const f = buildFrame({
      eth: { src: 'd6:62:48:67:8d:ec', dst: '2a:b2:6b:18:e2:56' },
      ipv4: { src: '10.201.1.1', dst: '10.201.1.2', id: 0x3234, ttl: 64, tos: 0xc0 },
      l4: {
        kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_FRAG_NEEDED, mtu: 1000,
        inner: { ipv4: { src: '10.201.1.2', dst: '10.202.1.2', id: 0x8edb, df: true },
          l4: { kind: 'udp', sport: 40001, dport: 9000, payload: Buffer.alloc(1100, 'x') }, quoteBytes: 548 },
      },
    });
    expect(diffFrames(f, K_FRAG_NEEDED)).toBeNull();
  });
});

describe('verifyChecksums', () => {
  const kernelFrames = { K_UDP, K_UDP_REPLY, K_SYN, K_HTTP_REQUEST, K_ECHO_REPLY, K_PORT_UNREACH, K_FRAG_NEEDED };

  it.each(Object.entries(kernelFrames))('accepts the kernel frame %s', (_name, frame) => {
    const r = verifyChecksums(frame);
    expect(r.wrong).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.results.every((x) => x.status === 'ok')).toBe(true);
  });

  it('checks the quoted IPv4 header of ICMP errors', () => {
    const r = verifyChecksums(K_FRAG_NEEDED);
    expect(r.results.map((x) => x.layer)).toEqual(['ipv4', 'icmp', 'inner-ipv4']);
    // A NAT that rewrote the inner destination without fixing the inner checksum:
    const bad = Buffer.from(K_FRAG_NEEDED);
    bad[14 + 20 + 8 + 19] = 0x09;
    expect(verifyChecksums(bad).wrong).toEqual(['icmp', 'inner-ipv4']);
  });

  it('names the wrong layer', () => {
    const ttl = Buffer.from(K_SYN);
    ttl[14 + 8]! -= 1; // TTL is not in the pseudo-header
    expect(verifyChecksums(ttl).wrong).toEqual(['ipv4']);

    const dst = Buffer.from(K_SYN);
    dst[14 + 19] = 0x63; // the address is in both the header and the pseudo-header
    expect(verifyChecksums(dst).wrong).toEqual(['ipv4', 'tcp']);

    const payload = Buffer.from(K_UDP);
    payload[payload.length - 1]! ^= 1;
    const r = verifyChecksums(payload);
    expect(r.wrong).toEqual(['udp']);
    expect(r.results[1]).toMatchObject({ layer: 'udp', status: 'bad', found: 0x787a });
  });

  it('detects every single-bit error in a TCP segment and its pseudo-header addresses', () => {
    const ipOff = 14;
    const tcpOff = ipOff + 20;
    for (let byte = tcpOff; byte < K_HTTP_REQUEST.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const f = Buffer.from(K_HTTP_REQUEST);
        f[byte]! ^= 1 << bit;
        expect(verifyChecksums(f).wrong, `byte ${byte} bit ${bit}`).toContain('tcp');
      }
    }
    for (let byte = ipOff + 12; byte < ipOff + 20; byte++) {
      const f = Buffer.from(K_HTTP_REQUEST);
      f[byte]! ^= 0x10;
      expect(verifyChecksums(f).wrong).toEqual(['ipv4', 'tcp']);
    }
  });

  it('treats a UDP zero checksum as "no checksum"', () => {
    const f = buildFrame({ ipv4: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport: 1, dport: 2, payload: Buffer.from('x'), checksum: 'zero' } });
    expect(parseFrame(f).udp?.checksum).toBe(0);
    const r = verifyChecksums(f);
    expect(r.ok).toBe(true);
    expect(r.results[1]).toMatchObject({ layer: 'udp', status: 'none' });
  });

  it('sends a computed UDP checksum of zero as ffff and accepts it', () => {
    const spec = (payload: Buffer): FrameSpec => ({ ipv4: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'udp', sport: 1, dport: 2, payload } });
    // With a zero word, the checksum is c; a payload word equal to c makes the sum all ones.
    const c = parseFrame(buildFrame(spec(Buffer.alloc(2)))).udp!.checksum;
    const word = Buffer.alloc(2);
    word.writeUInt16BE(c, 0);
    const f = buildFrame(spec(word));
    expect(parseFrame(f).udp?.checksum).toBe(0xffff);
    expect(verifyChecksums(f).results[1]).toMatchObject({ status: 'ok', expected: 0xffff });
  });

  it('skips what cannot be verified', () => {
    const frag = buildFrame({ ipv4: { src: '10.0.0.1', dst: '10.0.0.2', mf: true }, l4: { kind: 'udp', sport: 1, dport: 2, payload: Buffer.alloc(16) } });
    expect(verifyChecksums(frag).results).toMatchObject([{ layer: 'ipv4', status: 'ok' }, { layer: 'udp', status: 'skipped', reason: 'fragment' }]);
    const cut = truncate(K_SYN, K_SYN.length - 4);
    expect(verifyChecksums(cut).results).toMatchObject([{ layer: 'ipv4', status: 'ok' }, { layer: 'tcp', status: 'skipped', reason: 'datagram truncated' }]);
    expect(verifyChecksums(truncate(K_SYN, 20)).results).toMatchObject([{ layer: 'ipv4', status: 'skipped' }]);
    const arp = buildFrame({ eth: { type: ETH_P_ARP }, payload: Buffer.alloc(28) });
    expect(verifyChecksums(arp)).toEqual({ ok: true, wrong: [], results: [] });
  });

  it('ignores Ethernet padding after the IPv4 total length', () => {
    const padded = Buffer.concat([K_UDP_REPLY, Buffer.alloc(60 - K_UDP_REPLY.length, 0xee)]);
    expect(verifyChecksums(padded).ok).toBe(true);
    expect(parseFrame(padded).trailer.length).toBe(60 - K_UDP_REPLY.length);
    expect(parseFrame(padded).payload.toString()).toBe('b1\n');
  });
});

describe('parseFrame', () => {
  it('decodes a kernel SYN', () => {
    const p = parseFrame(K_SYN);
    expect(p.issues).toEqual([]);
    expect(p.eth).toEqual({ dst: MAC_LB, src: MAC_CLIENT, type: ETH_P_IP });
    expect(p.ipv4).toMatchObject({ version: 4, ihl: 5, totalLength: 60, id: 0xf736, df: true, mf: false, fragOffset: 0, ttl: 64, protocol: IPPROTO_TCP, src: '10.201.1.2', dst: '10.202.1.2' });
    expect(p.tcp).toMatchObject({ sport: 0xecce, dport: 8080, seq: 0xed0f97e7, ack: 0, doff: 10, flags: TCP_SYN, flagNames: ['SYN'], window: 0xfaf0 });
    expect(toHex(p.tcp!.options)).toBe('020405b40402080a89c2267000000000' + '0103030a');
    expect(p.payload.length).toBe(0);
  });

  it('decodes the quoted datagram of an ICMP error', () => {
    const p = parseFrame(K_FRAG_NEEDED);
    expect(p.icmp).toMatchObject({ type: ICMP_DEST_UNREACH, code: ICMP_FRAG_NEEDED, mtu: 1000 });
    const inner = p.icmp!.inner!;
    expect(inner.ipv4).toMatchObject({ src: '10.201.1.2', dst: '10.202.1.2', totalLength: 1128, protocol: IPPROTO_UDP, df: true });
    expect(inner.sport).toBe(40001);
    expect(inner.dport).toBe(9000);
    expect(inner.udp).toMatchObject({ sport: 40001, dport: 9000, length: 1108, checksum: 0x4d73 });
    expect(inner.issues.some((i) => i.includes('truncated'))).toBe(true);
    expect(inner.ipv4.offset).toBe(14 + 20 + 8);
  });

  it('never throws on truncated input', () => {
    for (let n = 0; n <= K_FRAG_NEEDED.length; n += 7) {
      expect(() => parseFrame(truncate(K_FRAG_NEEDED, n))).not.toThrow();
      expect(() => verifyChecksums(truncate(K_FRAG_NEEDED, n))).not.toThrow();
      expect(() => describeFrame(truncate(K_FRAG_NEEDED, n))).not.toThrow();
    }
    expect(parseFrame(truncate(K_SYN, 10)).issues[0]).toMatch(/ethernet header truncated/);
    expect(parseFrame(truncate(K_SYN, 14 + 30)).issues).toContain('ipv4 truncated: total length 60, 30 bytes available');
  });
});

describe('buildFrame', () => {
  const base: FrameSpec = {
    ipv4: { src: '192.0.2.1', dst: '198.51.100.7', ttl: 17, id: 0xbeef, tos: 0x10 },
    l4: { kind: 'tcp', sport: 1234, dport: 80, seq: 1, ack: 2, flags: { ack: true, psh: true, fin: true }, payload: Buffer.from('abc') },
  };

  it('round-trips through the parser', () => {
    const f = buildFrame(base);
    const p = parseFrame(f);
    expect(p.issues).toEqual([]);
    expect(p.ipv4).toMatchObject({ src: '192.0.2.1', dst: '198.51.100.7', ttl: 17, id: 0xbeef, tos: 0x10, totalLength: 43 });
    expect(p.tcp).toMatchObject({ sport: 1234, dport: 80, seq: 1, ack: 2, doff: 5, flagNames: ['FIN', 'PSH', 'ACK'], window: 65535 });
    expect(p.payload.toString()).toBe('abc');
    expect(verifyChecksums(f).ok).toBe(true);
  });

  it('adds 0, 1 or 2 VLAN tags', () => {
    const one = buildFrame({ ...base, vlans: [{ vid: 100, pcp: 5 }] });
    const two = buildFrame({ ...base, vlans: [{ tpid: ETH_P_8021AD, vid: 200, dei: true }, { vid: 4094 }] });
    expect(one.length).toBe(buildFrame(base).length + 4);
    expect(two.length).toBe(buildFrame(base).length + 8);
    expect(toHex(one.subarray(12, 18))).toBe('8100a0640800');
    const p = parseFrame(two);
    expect(p.eth.type).toBe(ETH_P_8021AD);
    expect(p.vlans).toEqual([{ tpid: ETH_P_8021AD, vid: 200, pcp: 0, dei: true }, { tpid: ETH_P_8021Q, vid: 4094, pcp: 0, dei: false }]);
    expect(p.etherType).toBe(ETH_P_IP);
    expect(p.ipv4?.offset).toBe(22);
    expect(p.tcp?.dport).toBe(80);
    expect(verifyChecksums(two).ok).toBe(true);
    expect(() => buildFrame({ ...base, vlans: [{ vid: 1 }, { vid: 2 }, { vid: 3 }] })).toThrow(/at most 2/);
  });

  it('IPv4 options set IHL and are padded to 4 bytes', () => {
    const f = buildFrame({ ...base, ipv4: { ...base.ipv4!, options: fromHex('940400') } }); // router alert, 3 of 4 bytes
    const p = parseFrame(f);
    expect(p.ipv4?.ihl).toBe(6);
    expect(toHex(p.ipv4!.options)).toBe('94040000');
    expect(p.ipv4?.totalLength).toBe(24 + 23);
    expect(p.tcp?.sport).toBe(1234);
    expect(verifyChecksums(f).ok).toBe(true);
    expect(() => buildIpv4Packet({ src: '1.1.1.1', dst: '2.2.2.2', options: Buffer.alloc(41) })).toThrow(/too long/);
  });

  it('sets flags and fragment offsets', () => {
    const f = buildFrame({ ipv4: { src: '10.0.0.1', dst: '10.0.0.2', mf: true, fragOffset: 185, reservedFlag: true }, l4: { kind: 'raw', protocol: IPPROTO_UDP, data: Buffer.alloc(8) } });
    expect(toHex(f.subarray(14 + 6, 14 + 8))).toBe('a0b9');
    const p = parseFrame(f);
    expect(p.ipv4).toMatchObject({ mf: true, df: false, reservedFlag: true, fragOffset: 185, protocol: IPPROTO_UDP });
    expect(p.udp).toBeUndefined();
    expect(p.issues).toContain('non-first fragment: no L4 header');
  });

  it('crafts malformed headers on request', () => {
    const ihl = buildFrame({ ...base, ipv4: { ...base.ipv4!, ihl: 4 } });
    expect(parseFrame(ihl).issues).toContain('ipv4 ihl 4 < 5');
    expect(verifyChecksums(ihl).results[0]).toMatchObject({ status: 'skipped' });

    const long = buildFrame({ ...base, ipv4: { ...base.ipv4!, totalLength: 1500 } });
    expect(verifyChecksums(long).results).toMatchObject([{ layer: 'ipv4', status: 'ok' }, { layer: 'tcp', status: 'skipped' }]);

    const csum = buildFrame({ ...base, ipv4: { ...base.ipv4!, checksum: 0x1234 } });
    expect(verifyChecksums(csum)).toMatchObject({ ok: false, wrong: ['ipv4'] });

    const tcp = buildFrame({ ...base, l4: { kind: 'tcp', sport: 1, dport: 2, checksum: 0 } });
    expect(verifyChecksums(tcp).wrong).toEqual(['tcp']);

    const doff = buildFrame({ ...base, l4: { kind: 'tcp', sport: 1, dport: 2, doff: 15 } });
    expect(parseFrame(doff).issues).toContain('tcp options truncated: doff says 60 bytes, 20 present');

    const udpLen = buildFrame({ ...base, l4: { kind: 'udp', sport: 1, dport: 2, length: 100 } });
    expect(parseFrame(udpLen).issues).toContain('udp length 100 != 8 bytes of IP payload');
  });

  it('builds echo requests', () => {
    const f = buildFrame({ ipv4: { src: '10.0.0.1', dst: '10.0.0.2' }, l4: { kind: 'icmp', type: 8, id: 7, seq: 9, payload: Buffer.from('hi') } });
    expect(parseFrame(f).icmp).toMatchObject({ type: 8, code: 0, id: 7, seq: 9 });
    expect(verifyChecksums(f).ok).toBe(true);
  });

  it('default quote of an ICMP error is the inner IP header + 8 bytes', () => {
    const f = buildFrame({
      ipv4: { src: '10.0.0.1', dst: '10.0.0.2' },
      l4: { kind: 'icmp', type: ICMP_DEST_UNREACH, code: ICMP_FRAG_NEEDED, mtu: 1400,
        inner: { ipv4: { src: '10.0.0.2', dst: '10.200.0.10', df: true }, l4: { kind: 'tcp', sport: 5555, dport: 80, seq: 42, payload: Buffer.alloc(2000) } } },
    });
    const p = parseFrame(f);
    expect(p.icmp?.payload.length).toBe(28);
    expect(p.icmp?.inner).toMatchObject({ sport: 5555, dport: 80 });
    expect(p.icmp?.inner?.tcp).toBeUndefined();
    expect(p.icmp?.inner?.l4.readUInt32BE(4)).toBe(42);
    expect(verifyChecksums(f).ok).toBe(true);
  });

  it('raw payload frames and input validation', () => {
    const arp = buildFrame({ eth: { type: ETH_P_ARP, dst: 'ff:ff:ff:ff:ff:ff' }, payload: Buffer.alloc(28, 1) });
    const p = parseFrame(arp);
    expect(p.etherType).toBe(ETH_P_ARP);
    expect(p.ipv4).toBeUndefined();
    expect(p.payload.length).toBe(28);
    expect(() => buildFrame({ payload: Buffer.alloc(1) })).toThrow(/eth.type/);
    expect(() => buildFrame({ ...base, eth: { src: '02:00:00:00:00' } })).toThrow(/MAC/);
    expect(() => buildFrame({ ...base, ipv4: { src: '10.0.0.256', dst: '10.0.0.1' } })).toThrow(/IPv4/);
  });

  it('truncate copies a prefix', () => {
    const f = buildFrame(base);
    const t = truncate(f, 20);
    expect(t.length).toBe(20);
    t[0] = 0xaa;
    expect(f[0]).not.toBe(0xaa);
    expect(truncate(f, 10_000).length).toBe(f.length);
    expect(truncate(f, -1).length).toBe(0);
  });

  it('describes and diffs frames', () => {
    expect(describeFrame(K_SYN)).toBe(`${MAC_CLIENT} > ${MAC_LB} 10.201.1.2:60622 > 10.202.1.2:8080 tcp [SYN] seq 3977222119 ack 0 len 0 ttl 64`);
    expect(describeFrame(K_PORT_UNREACH)).toContain('icmp type 3 code 3 quoting 10.201.1.2:40002 > 10.202.1.2:9999');
    expect(diffFrames(K_SYN, K_SYN)).toBeNull();
    const other = Buffer.from(K_SYN);
    other[14 + 8] = 1;
    expect(diffFrames(other, K_SYN)).toMatch(/^frames differ at byte 22: 0x01 != 0x40/);
    expect(diffFrames(K_SYN, truncate(K_SYN, 30))).toMatch(/lengths 74 != 30/);
  });
});
