// The ClientHello parser on real hellos (Node tls, openssl s_client, TLS 1.0 to 1.3), on every way
// the bytes can arrive (split records, 1-byte segments) and on what the captured clients do not
// send (GREASE, ECH, no extensions, oversize, not TLS).
import { describe, expect, it } from 'vitest';
import { isGrease, MAX_HELLO_RECORDS, parseClientHello } from '../../../src/core/sni/client-hello.js';
import { captured, capturedHellos, extension, helloBody, records, serverNameExt } from './hellos.js';

const NAMES: Record<string, string | null> = {
  'node-sni': 'api.example.com',
  'node-sni-mixed-case': 'api.example.com',
  'node-no-sni': null,
  'node-tls12': 'www.example.com',
  'node-alpn': 'deep.sub.example.com',
  'openssl-tls13': 'api.example.com',
  'openssl-tls12': 'www.example.com',
  'openssl-tls11': 'old.example.com',
  'openssl-tls10': 'older.example.com',
  'openssl-no-sni': null,
};

function hello(bytes: Uint8Array) {
  const v = parseClientHello(bytes);
  if (v.kind !== 'hello') throw new Error(`expected a hello, got ${JSON.stringify(v)}`);
  return v.hello;
}

describe('parseClientHello on captured hellos', () => {
  it('has a fixture for every expected client', () => {
    expect(capturedHellos().map((h) => h.name).sort()).toEqual(Object.keys(NAMES).sort());
  });

  for (const { name, bytes } of capturedHellos()) {
    it(`${name}: reads the name, whole and one byte at a time`, () => {
      expect(hello(bytes).serverName).toBe(NAMES[name]);
      expect(hello(bytes).helloEnd).toBe(bytes.length);
      for (let n = 0; n < bytes.length; n++) expect(parseClientHello(bytes.subarray(0, n)).kind).toBe('incomplete');
    });
  }

  it('says which versions the client offers', () => {
    expect(hello(captured('openssl-tls13')).supportedVersions).toEqual([0x0304]);
    expect(hello(captured('openssl-tls10')).legacyVersion).toBe(0x0301);
    expect(hello(captured('openssl-tls10')).supportedVersions).toEqual([]);
    expect(hello(captured('node-sni')).supportedVersions).toContain(0x0304);
  });

  it('ignores what follows the hello (early data, a second record)', () => {
    const bytes = Buffer.concat([captured('node-sni'), Buffer.from([23, 3, 3, 0, 2, 9, 9])]);
    expect(hello(bytes).serverName).toBe('api.example.com');
    expect(hello(bytes).helloEnd).toBe(captured('node-sni').length);
  });
});

describe('parseClientHello on built hellos', () => {
  it('joins a hello split over many records, down to 1-byte records', () => {
    const body = helloBody([serverNameExt('split.example.com')]);
    for (const size of [1, 2, 7, 100]) {
      const bytes = records(body, size);
      expect(hello(bytes).serverName).toBe('split.example.com');
      expect(parseClientHello(bytes.subarray(0, bytes.length - 1)).kind).toBe('incomplete');
    }
  });

  it('skips GREASE extensions and versions', () => {
    const body = helloBody([
      extension(0x0a0a, Buffer.alloc(0)),
      serverNameExt('grease.example.com'),
      extension(43, Buffer.from([4, 0x7a, 0x7a, 0x03, 0x04])),
      extension(0xfafa, Buffer.from([0])),
    ]);
    expect(hello(records(body))).toMatchObject({ serverName: 'grease.example.com', supportedVersions: [0x0304] });
    expect([0x0a0a, 0x1a1a, 0xfafa].every(isGrease)).toBe(true);
    expect([0x0a1a, 0x0303, 0x0b0b].some(isGrease)).toBe(false);
  });

  it('reads the outer (public) name of an Encrypted Client Hello, as sent', () => {
    const body = helloBody([serverNameExt('public.example.com'), extension(0xfe0d, Buffer.alloc(40, 1))]);
    expect(hello(records(body))).toMatchObject({ serverName: 'public.example.com', ech: true });
  });

  it('has no name for a TLS 1.0 hello without extensions', () => {
    expect(hello(records(helloBody(null, 0x0301))).serverName).toBeNull();
  });

  it('takes the first host_name and drops names that are not DNS names', () => {
    expect(hello(records(helloBody([serverNameExt('a.example.com', 'b.example.com')]))).serverName).toBe('a.example.com');
    for (const bad of ['', 'bad name', 'caf\xe9.example.com', 'x'.repeat(254)]) {
      expect(hello(records(helloBody([serverNameExt(bad)]))).serverName).toBeNull();
    }
  });

  it('refuses what is not a TLS hello, as soon as the first bytes show it', () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x80, 0x2e, 0x01])).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([22, 2])).kind).toBe('invalid');
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])).kind).toBe('invalid'); // server_hello
    const twice = records(helloBody([serverNameExt('a.example.com'), serverNameExt('b.example.com')]));
    expect(parseClientHello(twice)).toMatchObject({ kind: 'invalid', reason: 'extension 0 twice' });
  });

  it('refuses a hello over the size bound before it has arrived', () => {
    const big = records(helloBody([serverNameExt('big.example.com'), extension(21, Buffer.alloc(20000))]));
    expect(parseClientHello(big.subarray(0, 9))).toMatchObject({ kind: 'invalid' });
    expect(parseClientHello(big, 32768).kind).toBe('hello');
    expect(parseClientHello(captured('node-sni'), 100).kind).toBe('invalid');
  });
});

describe('parseClientHello bounds', () => {
  it('refuses a hello spread over more records than MAX_HELLO_RECORDS', () => {
    const body = helloBody([serverNameExt('many.example.com'), extension(21, Buffer.alloc(MAX_HELLO_RECORDS))]);
    expect(parseClientHello(records(body, 1))).toMatchObject({ kind: 'invalid' });
    expect(parseClientHello(records(body, 2)).kind).toBe('hello');
  });
});
