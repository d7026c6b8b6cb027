// The acceptor's bounds and relay on loopback, for both acceptors: Node's (acceptor.ts) and the
// native front door's (door-acceptor.ts over build/native/lb-door). Without the kernel steering (its socket is
// reached directly, so the listener is keyed by 127.0.0.1 and its own port): the slowloris
// deadline, the hello size bound and the connection limit each close the client and count it;
// a half-close passes a FIN on and the other direction goes on; a backend's reset resets the
// client; an idle relay is reset; an unreachable backend, or one that never answers the SYN
// (the connect bound), resets the client. Real sockets; every
// wait is for an event, bounded by the test timeout.
import net, { type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AcceptorCloseReason, AcceptorEvents } from '../../../src/acceptor/acceptor.js';
import { libc } from '../../../src/sys/libc.js';
import { captured } from '../../unit/sni/hellos.js';
import * as lib from '../../lib/acceptor.js';
import { closed, ended, gone, received, type Cleanups } from '../../lib/acceptor.js';

const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const backend = (): ReturnType<typeof lib.backend> => lib.backend(cleanups);

/** A loopback TCP port bound by a socket that never listens, until the test's cleanup closes it. */
function refusingPort(): number {
  const c = libc();
  const fd = c.socket(2 /* AF_INET */, 1 /* SOCK_STREAM */, 0);
  if (fd < 0) throw new Error('socket() failed');
  cleanups.push(async () => { c.close(fd); });
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(2, 0);
  Buffer.from([127, 0, 0, 1]).copy(addr, 4);
  if (c.bind(fd, addr, 16) < 0) throw new Error('bind() failed');
  const got = Buffer.alloc(16);
  if (c.getsockname(fd, got, [16]) < 0) throw new Error('getsockname() failed');
  return got.readUInt16BE(2);
}
const connect = (port: number): ReturnType<typeof lib.connect> => lib.connect(port, cleanups);

type Kind = 'node' | 'native';
type Limits = Parameters<typeof lib.acceptor>[2];
/** What both acceptors show a test: the counters, per route and per backend. */
type AnyAcceptor = Pick<Awaited<ReturnType<typeof lib.acceptor>>['a'], 'counters' | 'routes' | 'backends'>;

function acceptorOf(kind: Kind): (backendPort: number, limits?: Limits, events?: AcceptorEvents) => Promise<{ a: AnyAcceptor; port: number }> {
  return (backendPort, limits = {}, events = {}) => (kind === 'node'
    ? lib.acceptor(backendPort, cleanups, limits, null, events)
    : lib.doorAcceptor(backendPort, cleanups, limits, events));
}

describe.each<Kind>(['node', 'native'])('Acceptor bounds (%s)', (kind) => {
  const acceptor = acceptorOf(kind);

  it('closes a client that sends its hello too slowly, and counts it', async () => {
    const b = await backend();
    const { a, port } = await acceptor(b.port, { helloTimeoutMs: 200 });
    const c = await connect(port);
    c.on('error', () => undefined);
    c.write(captured('node-sni').subarray(0, 10));
    await closed(c);
    await expect.poll(() => a.counters).toMatchObject({ helloTimeout: 1, relayed: 0 });
    expect(b.conns).toHaveLength(0);
  });

  it('closes a client whose hello is over the size bound, and counts it', async () => {
    const b = await backend();
    const { a, port } = await acceptor(b.port, { maxHelloBytes: 100 });
    const c = await connect(port);
    c.on('error', () => undefined);
    c.write(captured('node-sni'));
    await closed(c);
    await expect.poll(() => a.counters).toMatchObject({ helloTooLarge: 1, relayed: 0 });
  });

  it('closes connections over the limit at accept, and counts them', async () => {
    const b = await backend();
    const { a, port } = await acceptor(b.port, { maxConnections: 2 });
    const held = [await connect(port), await connect(port)];
    // Its reset may come before its connect is reported (the native door resets at accept): not awaited.
    const over = net.connect({ host: '127.0.0.1', port });
    over.on('error', () => undefined);
    cleanups.push(() => { over.destroy(); });
    await gone(over);
    await expect.poll(() => a.counters).toMatchObject({ overLimit: 1, active: 2 });
    for (const h of held) h.destroy();
  });
});

describe.each<Kind>(['node', 'native'])('Acceptor relay (%s)', (kind) => {
  const acceptor = acceptorOf(kind);
  /** A client through the acceptor to a backend, once the backend received the replayed hello. */
  async function relayedPair(): Promise<{ a: AnyAcceptor; b: Awaited<ReturnType<typeof backend>>; c: Socket; s: Socket; replayed: Buffer; hello: Buffer }> {
    const b = await backend();
    const { a, port } = await acceptor(b.port);
    const c = await connect(port);
    const hello = captured('node-sni');
    c.write(hello);
    const s = await b.next();
    return { a, b, c, s, replayed: await received(s, hello.length), hello };
  }

  // (The door sets TCP_NODELAY on both sockets in native/lb_door.c; its sockets are not this process's to read.)
  if (kind === 'node') it('sets TCP_NODELAY on both sockets of a relayed pair (Nagle would hold back a TLS flight\'s small writes)', async () => {
    // Once the hello is replayed, the backend's socket is connected (its option is set at connect).
    const { a, s } = await relayedPair();
    const IPPROTO_TCP = 6;
    const TCP_NODELAY = 1;
    const held = [...(a as unknown as { open: Set<Socket> }).open];
    expect(held).toHaveLength(2);
    for (const s of held) {
      const value = Buffer.alloc(4);
      expect(libc().getsockopt((s as unknown as { _handle: { fd: number } })._handle.fd, IPPROTO_TCP, TCP_NODELAY, value, [4])).toBe(0);
      expect(value.readInt32LE(0)).toBe(1);
    }
    // The backend's half-open socket would keep its server's close waiting.
    s.destroy();
  });

  it('replays the hello, passes a half-close on, and keeps the other direction open', async () => {
    const { a, b, c, s, replayed, hello } = await relayedPair();
    expect(replayed.equals(hello)).toBe(true);
    // The breaker and least-connections read this (src/acceptor/runtime-sampler.ts). The native
    // door decides this hello itself and reports it in its next batch (up to 100 ms after).
    await expect.poll(() => a.backends.get(`127.0.0.1:${b.port}`)).toEqual({ attempts: 1, failed: 0, active: 1 });
    // The door decided it from the table (a whole hello in one record); Node's acceptor has none.
    expect(a.counters.doorDecided).toBe(kind === 'native' ? 1 : 0);
    c.end(); // FIN from the client
    await ended(s);
    s.write('still open');
    expect((await received(c, 10)).toString()).toBe('still open');
    s.end();
    await ended(c);
    expect(a.routes.get('p\u0000sni:api.example.com')).toMatchObject({ connections: 1 });
  });

  it('resets the client when the backend resets', async () => {
    const b = await backend();
    const ends: AcceptorCloseReason[] = [];
    const { port } = await acceptor(b.port, {}, { closed: (_c, end) => ends.push(end.reason) });
    const c = await connect(port);
    const errors: string[] = [];
    c.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
    const hello = captured('openssl-tls13');
    c.write(hello);
    const s = await b.next();
    await received(s, hello.length); // replayed: the relay runs
    s.resetAndDestroy();
    await closed(c);
    expect(errors).toEqual(['ECONNRESET']);
    await expect.poll(() => ends).toEqual(['rst-backend']);
  });

  it('resets both sides of an idle relay', async () => {
    const b = await backend();
    const ends: Array<{ route: string; reason: AcceptorCloseReason; up: number }> = [];
    const opened: string[] = [];
    const hello = captured('node-no-sni');
    const { port } = await acceptor(b.port, { idleTimeoutMs: 300 }, {
      opened: (conn) => opened.push(`${conn.proxy} ${conn.listener} ${conn.route} ${conn.backend}:${conn.backendPort}`),
      closed: (conn, end) => ends.push({ route: conn.route, reason: end.reason, up: end.up }),
    });
    const c = await connect(port);
    c.on('error', () => undefined);
    c.write(hello);
    const s = await b.next();
    await Promise.all([closed(c), closed(s)]);
    // The native door reports in batches (up to 100 ms after the fact).
    await expect.poll(() => ends).toEqual([{ route: 'default', reason: 'idle-timeout', up: hello.length }]);
    expect(opened).toEqual([`p lo 127.0.0.1:${port}/tcp default 127.0.0.1:${b.port}`]);
  });

  it('resets the client when the backend refuses, and counts it', async () => {
    // A port held by a socket that is bound and never listens: every connect to it is refused,
    // and no other test's server can take it meanwhile (a port closed after listening could be).
    const dead = refusingPort();
    const { a, port } = await acceptor(dead);
    // Every backend of its listeners has an entry before any connection: the breaker's baseline.
    expect(a.backends.get(`127.0.0.1:${dead}`)).toEqual({ attempts: 0, failed: 0, active: 0 });
    const c = await connect(port);
    c.on('error', () => undefined);
    c.write(captured('node-sni'));
    await closed(c);
    await expect.poll(() => a.counters.connectFailed).toBe(1);
    await expect.poll(() => a.backends.get(`127.0.0.1:${dead}`)).toEqual({ attempts: 1, failed: 1, active: 0 });
  });

  it('resets the client when the backend does not answer within the connect bound, and counts it', async () => {
    const { port: silent } = await lib.silentBackend(cleanups);
    const { a, port } = await acceptor(silent, { connectTimeoutMs: 300 });
    const c = await connect(port);
    c.on('error', () => undefined);
    c.write(captured('node-sni'));
    await closed(c);
    await expect.poll(() => a.counters).toMatchObject({ connectFailed: 1, relayed: 0 });
    await expect.poll(() => a.backends.get(`127.0.0.1:${silent}`)).toEqual({ attempts: 1, failed: 1, active: 0 });
  });
});
