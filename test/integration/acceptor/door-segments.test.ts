// The native front door spends no packet a direct connection would not: on loopback, a real door
// (build/native/lb-door) between a Node client and backend, each side's segments counted by the
// kernel (TCP_INFO's segs_in / data_segs_in on the test's own sockets). Two packets it saves on
// every short connection, as HAProxy does (docs/sni.md, "Packets per connection"):
// - the backend connection's handshake ACK leaves with the hello (quick ACKs off until the hello
//   is written, then on again);
// - a peer's last bytes and its FIN reach the other side as one segment (MSG_MORE once the FIN is
//   in, so the FIN we pass on joins the queued bytes), e.g. a TLS close_notify and the close.
// Every wait is for an event, bounded by the test timeout.
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { libc } from '../../../src/sys/libc.js';
import { captured } from '../../unit/sni/hellos.js';
import * as lib from '../../lib/acceptor.js';
import { ended, received, type Cleanups } from '../../lib/acceptor.js';

const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const MSG_MORE = 0x8000;
const SHUT_WR = 1;

/** The descriptor under a Node socket (the test's own: read with getsockopt, written with send). */
const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

/** What the kernel counted on a socket (struct tcp_info, include/uapi/linux/tcp.h). */
function tcpInfo(s: Socket): { unacked: number; segsIn: number; dataSegsIn: number } {
  const info = Buffer.alloc(232);
  const len: [number] = [info.length];
  if (libc().getsockopt(fdOf(s), IPPROTO_TCP, TCP_INFO, info, len) !== 0) throw new Error('getsockopt(TCP_INFO) failed');
  if (len[0]! < 160) throw new Error(`tcp_info of ${len[0]} bytes: too old a kernel for segs_in`);
  return { unacked: info.readUInt32LE(24), segsIn: info.readUInt32LE(140), dataSegsIn: info.readUInt32LE(152) };
}

/** Writes bytes and the FIN in one segment (as a peer that corks its last write and closes). */
function sendWithFin(s: Socket, bytes: Buffer): void {
  const c = libc();
  if (c.send(fdOf(s), bytes, bytes.length, MSG_MORE) !== bytes.length) throw new Error('send failed');
  if (c.shutdown(fdOf(s), SHUT_WR) !== 0) throw new Error('shutdown failed');
}

describe('The native door on the wire', () => {
  async function relayed(): Promise<{ c: Socket; s: Socket; hello: Buffer }> {
    const b = await lib.backend(cleanups);
    const { port } = await lib.doorAcceptor(b.port, cleanups);
    const c = await lib.connect(port, cleanups);
    const hello = captured('node-sni');
    c.write(hello);
    const s = await b.next();
    expect((await received(s, hello.length)).equals(hello)).toBe(true);
    return { c, s, hello };
  }

  it('completes the backend connection with the hello in the handshake\'s last segment', async () => {
    const { s } = await relayed();
    // The SYN and one segment carrying both the ACK and the hello; a door that acked alone first
    // shows three (SYN, ACK, hello). (The kernel holds that ACK up to 200 ms, TCP_DELACK_MAX: a door
    // kept off the CPU longer than that after the SYN-ACK would send it alone.)
    expect(tcpInfo(s)).toMatchObject({ segsIn: 2, dataSegsIn: 1 });
  });

  it('passes a peer\'s last bytes and its FIN on in one segment', async () => {
    const { c, s } = await relayed();
    // Wait until the door acked the client's hello, so no ACK of it is still to come.
    await expect.poll(() => tcpInfo(c).unacked, { timeout: 10_000, interval: 5 }).toBe(0);
    const before = tcpInfo(c);
    const got = received(c, 3);
    sendWithFin(s, Buffer.from('bye'));
    expect((await got).toString()).toBe('bye');
    await ended(c);
    const after = tcpInfo(c);
    // One segment with the bytes and the FIN; a door that sent them as they came gives two.
    expect({ segments: after.segsIn - before.segsIn, withData: after.dataSegsIn - before.dataSegsIn }).toEqual({ segments: 1, withData: 1 });
    // The backend's close did not close the other direction: the client can still answer.
    c.end('ok');
    expect((await received(s, 2)).toString()).toBe('ok');
    await ended(s);
  });

  it('passes a backend\'s last bytes and FIN in one segment after the client closed first', async () => {
    const { c, s } = await relayed();
    c.end();
    await ended(s);
    // Wait until the door acked the client's hello and FIN (the FIN's ACK may wait for the delayed-ACK timer).
    await expect.poll(() => tcpInfo(c).unacked, { timeout: 10_000, interval: 5 }).toBe(0);
    const before = tcpInfo(c);
    const got = received(c, 3);
    // Read at the end, before Node closes a socket done both ways.
    const atEnd = new Promise<ReturnType<typeof tcpInfo>>((r) => c.once('end', () => r(tcpInfo(c))));
    sendWithFin(s, Buffer.from('bye'));
    expect((await got).toString()).toBe('bye');
    const after = await atEnd;
    // Both directions are done, so the door closes both sockets: the close sends the FIN, in the
    // bytes' segment.
    expect({ segments: after.segsIn - before.segsIn, withData: after.dataSegsIn - before.dataSegsIn }).toEqual({ segments: 1, withData: 1 });
  });
});
