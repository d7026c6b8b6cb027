// The daemon's side of the native door's records (src/acceptor/door-abi.ts): a stream split at any
// byte decodes to the same records, a record cut short waits for its rest, and a length no record
// can have is an error (the stream is lost from there), not a loop or a crash.
import { describe, expect, it } from 'vitest';
import { DoorRec, HELD_DECIDED, HELLO_EOF, Layout, MAX_REC, decodeRecord, decodeRecords, encodeConfig, encodeRoute } from '../../../src/acceptor/door-abi.js';

function rec(type: number, id: bigint, size: number, fill: (b: Buffer) => void = () => undefined, flags = 0): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(size, Layout.lb_door_rec.len);
  b.writeUInt16LE(type, Layout.lb_door_rec.type);
  b.writeUInt16LE(flags, Layout.lb_door_rec.flags);
  b.writeBigUInt64LE(id, Layout.lb_door_rec.id);
  fill(b);
  return b;
}

const H = Layout.lb_door_hello;
const hello = rec(DoorRec.HELLO, 0xfedcba9876543210n, H.size + 3, (b) => {
  Buffer.from([10, 0, 0, 2]).copy(b, H.client_ip);
  Buffer.from([10, 9, 9, 10]).copy(b, H.local_ip);
  b.writeUInt16LE(40000, H.client_port);
  b.writeUInt16LE(443, H.local_port);
  b.writeBigUInt64LE(123456789n, H.accepted_ns);
  b.writeBigUInt64LE(1700000000123n, H.accepted_ms);
  Buffer.from([22, 3, 1]).copy(b, H.size);
}, HELLO_EOF);
const E = Layout.lb_door_ended;
const ended = rec(DoorRec.ENDED, 7n, E.size, (b) => {
  b.writeBigUInt64LE(5n, E.up);
  b.writeBigUInt64LE(6n, E.down);
  b[E.reason] = 1;
  b[E.by] = 2;
  b.writeBigUInt64LE(99n, E.at_ns);
});
const opened = rec(DoorRec.OPENED, 8n, Layout.lb_door_opened.size, (b) => b.writeBigUInt64LE(77n, Layout.lb_door_opened.at_ns));
const stream = Buffer.concat([hello, ended, opened, rec(99, 9n, 20)]);

describe('door records', () => {
  it('decodes each record the door sends, and skips a type it does not know', () => {
    const { records, next } = decodeRecords(stream);
    expect(next).toBe(stream.length);
    expect(records).toEqual([
      { type: 'hello', id: 18364758544493064720n, eof: true, full: false, clientIp: '10.0.0.2', clientPort: 40000, localIp: '10.9.9.10', localPort: 443,
        acceptedNs: 123456789n, acceptedMs: 1700000000123, bytes: Buffer.from([22, 3, 1]) },
      { type: 'ended', id: 7n, up: 5, down: 6, reason: 'reset', by: 'backend', atNs: 99n },
      { type: 'opened', id: 8n, atNs: 77n },
    ]);
  });

  it('reads a door\'s counters and record version, and version 0 from a STATS without one', () => {
    const S = Layout.lb_door_stats;
    const withAbi = rec(DoorRec.STATS, 0n, S.size, (b) => { b.writeBigUInt64LE(3n, S.accepted); b.writeUInt32LE(7, S.abi); });
    expect(decodeRecords(withAbi).records).toEqual([{ type: 'stats', stats: { accepted: 3, overLimit: 0, helloTimeout: 0, active: 0, spliced: 0, abi: 7 } }]);
    const before = rec(DoorRec.STATS, 0n, S.abi, (b) => b.writeBigUInt64LE(3n, S.accepted));
    expect(decodeRecords(before).records).toEqual([{ type: 'stats', stats: { accepted: 3, overLimit: 0, helloTimeout: 0, active: 0, spliced: 0, abi: 0 } }]);
  });

  it('gives the same records for the stream cut at every byte', () => {
    const whole = decodeRecords(stream).records;
    for (let cut = 0; cut <= stream.length; cut++) {
      const first = decodeRecords(stream.subarray(0, cut));
      const rest = decodeRecords(Buffer.concat([stream.subarray(first.next, cut), stream.subarray(cut)]));
      expect([...first.records, ...rest.records]).toEqual(whole);
    }
  });

  it('refuses a record length shorter than its header or over the bound', () => {
    expect(() => decodeRecords(rec(DoorRec.OPENED, 1n, 24, (b) => b.writeUInt32LE(8, 0)))).toThrow(/door record of 8 bytes at stream offset 0/);
    const huge = Buffer.alloc(16);
    huge.writeUInt32LE(MAX_REC + 1, 0);
    expect(() => decodeRecords(huge)).toThrow(/door record of 262145 bytes/);
    expect(() => decodeRecords(rec(DoorRec.ENDED, 1n, 20))).toThrow(/door record type 5 of 20 bytes, expected at least 48/);
  });

  it('encodes a route with its header and record, and the limits', () => {
    const r = encodeRoute(42n, '127.0.0.1', 9443, Buffer.from('PP'), Buffer.from('{}'));
    const L = Layout.lb_door_route;
    expect(r.readUInt32LE(0)).toBe(L.size + 4);
    expect(r.readUInt16LE(Layout.lb_door_rec.type)).toBe(DoorRec.ROUTE);
    expect(r.readBigUInt64LE(Layout.lb_door_rec.id)).toBe(42n);
    expect([...r.subarray(L.backend_ip, L.backend_ip + 4)]).toEqual([127, 0, 0, 1]);
    expect(r.readUInt16LE(L.backend_port)).toBe(9443);
    expect(r.readUInt16LE(L.header_len)).toBe(2);
    expect(r.readUInt32LE(L.blob_len)).toBe(2);
    expect(r.subarray(L.size).toString()).toBe('PP{}');
    expect(() => encodeRoute(1n, 'backend.local', 1, null, Buffer.alloc(0))).toThrow(/not an IPv4 address/);
    const c = encodeConfig({ helloTimeoutMs: 10_000, connectTimeoutMs: 5000, idleTimeoutMs: 2 ** 40, maxConnections: 10, maxHelloStream: 17668, spliceAfter: 0 });
    expect(c.readUInt32LE(Layout.lb_door_config.idle_timeout_ms)).toBe(0xffffffff);
    expect(c.readUInt32LE(Layout.lb_door_config.max_hello_stream)).toBe(17668);
  });

  it('decodes a DECIDED record with its strings, and a HELD that carries one; a HELD flagged so whose blob is not one is an error', () => {
    const D = Layout.lb_door_decided;
    const strings = Buffer.from('tlssni:*.example.cometh0 10.9.9.10:443/tcpa.example.com');
    const decided = rec(DoorRec.DECIDED, 42n, D.size + strings.length, (b) => {
      Buffer.from([10, 0, 0, 2]).copy(b, D.client_ip);
      Buffer.from([10, 9, 9, 10]).copy(b, D.local_ip);
      Buffer.from([127, 0, 0, 1]).copy(b, D.backend_ip);
      b.writeUInt16LE(40000, D.client_port);
      b.writeUInt16LE(443, D.local_port);
      b.writeUInt16LE(9601, D.backend_port);
      b.writeUInt16LE(3, D.proxy_len);
      b.writeUInt16LE(17, D.group_len);
      b.writeUInt16LE(22, D.listener_len);
      b.writeBigUInt64LE(5n, D.accepted_ns);
      b.writeBigUInt64LE(1700000000123n, D.accepted_ms);
      b.writeUInt32LE(517, D.replay);
      b.writeUInt16LE(13, D.name_len);
      strings.copy(b, D.size);
    });
    const want = {
      type: 'decided', id: 42n, clientIp: '10.0.0.2', clientPort: 40000, localIp: '10.9.9.10', localPort: 443, backendIp: '127.0.0.1', backendPort: 9601,
      acceptedNs: 5n, acceptedMs: 1700000000123, replay: 517, headerLen: 0, proxy: 'tls', group: 'sni:*.example.com', listener: 'eth0 10.9.9.10:443/tcp', serverName: 'a.example.com',
    };
    expect(decodeRecord(decided)).toEqual(want);
    const HL = Layout.lb_door_held;
    const held = (blob: Buffer): Buffer => rec(DoorRec.HELD, 42n, HL.size + blob.length, (b) => {
      b.writeBigUInt64LE(10n, HL.up);
      b.writeBigUInt64LE(20n, HL.down);
      b.writeUInt32LE(blob.length, HL.blob_len);
      blob.copy(b, HL.size);
    }, HELD_DECIDED);
    expect(decodeRecord(held(decided))).toMatchObject({ type: 'held', id: 42n, up: 10, down: 20, decided: want });
    expect(() => decodeRecord(held(Buffer.from('{"info":{}}')))).toThrow(/not a DECIDED record/);
    // A DECIDED whose strings run past its end is refused, not read past.
    const short = Buffer.from(decided.subarray(0, D.size + 5));
    short.writeUInt32LE(short.length, 0);
    expect(() => decodeRecord(short)).toThrow(/expected at least/);
  });
});
