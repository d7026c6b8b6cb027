// The PROXY protocol v2 header: the bytes of the specification's layout, and a round trip.
import { describe, expect, it } from 'vitest';
import { decodeProxyV2, encodeProxyV2 } from '../../../src/core/sni/proxy-v2.js';

const addrs = { clientIp: '10.1.2.3', clientPort: 40000, localIp: '192.0.2.10', localPort: 443 };

describe('PROXY protocol v2', () => {
  it('lays out signature, version, family, addresses and the authority TLV', () => {
    const b = encodeProxyV2(addrs, 'api.example.com');
    expect(b.subarray(0, 16).toString('hex')).toBe('0d0a0d0a000d0a515549540a2111' + (12 + 3 + 15).toString(16).padStart(4, '0'));
    expect(b.subarray(16, 28).toString('hex')).toBe('0a010203c000020a9c4001bb');
    expect(b.subarray(28).toString('hex')).toBe('02000f' + Buffer.from('api.example.com').toString('hex'));
  });

  it('round-trips, with and without a name, and refuses a short header', () => {
    expect(decodeProxyV2(encodeProxyV2(addrs, 'a.example.com'))).toEqual({ ...addrs, authority: 'a.example.com', length: 28 + 16 });
    expect(decodeProxyV2(encodeProxyV2(addrs, null))).toEqual({ ...addrs, authority: null, length: 28 });
    expect(decodeProxyV2(encodeProxyV2(addrs, null).subarray(0, 27))).toBeNull();
    expect(decodeProxyV2(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBeNull();
  });
});
