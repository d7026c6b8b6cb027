// The acceptor with the splice relay (its default in the daemon): after the hello is replayed, each
// pair goes to a real pair keeper process (src/acceptor/pair-keeper-main.ts, started from dist/),
// which relays it with splice(2) (pipe-relay.ts) and reports its end back. On loopback, each case
// asserts what a direct TCP connection would do: bulk bytes whole and in order both ways, bytes
// sent with the hello once, a backend that speaks first, half-closes in both orders, resets from
// either side, the idle reset, TCP's flow control against a backend that does not read, the
// connection limit counting pairs the keeper holds, and a daemon restart (a second acceptor on a
// second keeper connection adopts the pair and reports its end). The acceptor's `closed` event
// gives each pair's byte counts and reason. Needs root (/run/lb); fails, never skips, without it.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type Acceptor, type AcceptorConn, type AcceptorEvents, type AcceptorLimits } from '../../../src/acceptor/acceptor.js';
import { adoptKeptPairs } from '../../../src/acceptor/pair-adopt.js';
import type { SpliceListener } from '../../../src/core/sni/splice-table.js';
import { endPairKeeper, PairKeeper } from '../../../src/acceptor/pair-keeper.js';
import { DEFAULT_PIPE_BYTES } from '../../../src/acceptor/pipe-relay.js';
import { waitUntil } from '../../../src/sandbox/index.js';
import { runDir } from '../../../src/state/run-dir.js';
import { errno, libc } from '../../../src/sys/libc.js';
import { captured } from '../../unit/sni/hellos.js';
import * as lib from '../../lib/acceptor.js';
import { closed, echo, ended, receiveAll, received, sendRandom, type Cleanups, type TestBackend } from '../../lib/acceptor.js';
import { fdOf, kernelAccepted, rcvbuf, sendWindow, sndbuf } from '../../lib/pipe-relay-worker.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-keeper-relay.test.ts must run as root: the pair keeper lives under /run/lb');

const MiB = 1024 * 1024;
const KEEPER = 'dist/src/acceptor/pair-keeper-main.js';
const instance = `lbkr${process.pid}`;
const hello = captured('node-sni');

const cleanups: Cleanups = [];
/** The keeper connection of the running test (the "daemon" connected now). */
let current: PairKeeper | null = null;

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  // The sockets are gone: the keeper ends what it still relayed (a FIN or a reset each). Those
  // ends are taken here, not by the next test's acceptor, which would count them as adopted.
  const k = current;
  current = null;
  if (!k) return;
  try {
    await waitUntil(() => k.list().relayed.length === 0, { timeoutMs: 20_000, intervalMs: 20, what: 'the keeper to end the pairs of the test' });
    k.takeEnds();
  } finally {
    k.close();
  }
  // Ends after the acceptor's close (it detached) wait in the keeper for the next connection: this
  // one. Its list is answered after they were sent (the keeper sends them as it accepts).
  const drain = PairKeeper.open(instance, KEEPER);
  try {
    drain.list();
    drain.takeEnds();
  } finally {
    drain.close();
  }
});

afterAll(() => {
  endPairKeeper(instance);
  rmSync(runDir(instance), { recursive: true, force: true });
});

/** A connection to the instance's keeper (started by the first), closed after the test. */
function keeperConn(): PairKeeper {
  const k = PairKeeper.open(instance, KEEPER);
  current = k;
  return k;
}

type End = { up: number; down: number; reason: string };

/** The acceptor's `closed` events, in order; next() waits for the next one. */
function closedEvents(): { events: AcceptorEvents; ends: End[]; next(): Promise<End> } {
  const ends: End[] = [];
  const waiters: Array<(e: End) => void> = [];
  let taken = 0;
  const events: AcceptorEvents = {
    closed: (_c: AcceptorConn, end) => {
      ends.push(end);
      const w = waiters.shift();
      if (w) { taken++; w(end); }
    },
  };
  const next = (): Promise<End> => new Promise((r) => { if (taken < ends.length) r(ends[taken++]!); else waiters.push(r); });
  return { events, ends, next };
}

interface Relaying { a: Acceptor; port: number; b: TestBackend; k: PairKeeper; closedEvents: ReturnType<typeof closedEvents> }

/**
 * A backend (`serve` runs on each of its connections) and an acceptor that hands its pairs to the
 * keeper: right after the hello unless `limits` say otherwise (handOffBytes 0; the daemon's default
 * relays in Node first, below).
 */
async function relaying(limits: Partial<AcceptorLimits> = {}, serve?: (s: Socket) => void): Promise<Relaying> {
  const k = keeperConn();
  const b = await lib.backend(cleanups, serve);
  const ce = closedEvents();
  const { a, port } = await lib.acceptor(b.port, cleanups, { handOffBytes: 0, ...limits }, null, ce.events);
  // Before the servers close (cleanups run in reverse): a test that failed may leave pairs open,
  // and a server's close waits for its connections.
  cleanups.push(() => { for (const s of b.conns) s.destroy(); });
  a.useKeeperRelay(k);
  return { a, port, b, k, closedEvents: ce };
}

const connect = (port: number): Promise<Socket> => lib.connect(port, cleanups);

/** The listener test/lib/acceptor.ts gave the acceptor (for update() with new limits). */
function listenerOf(r: Relaying): SpliceListener {
  const b = [{ addr: '127.0.0.1', port: r.b.port, weight: 100, proxyProtocol: false }];
  return { proxy: 'p', iface: 'lo', vip: '127.0.0.1', port: r.port, persist: false, defaultBackends: b, sourceRoutes: [],
    sniRoutes: [{ hostname: 'api.example.com', wildcard: false, persist: false, backends: b }] };
}

/** A client whose hello reached the backend (`s`): by then the acceptor handed the pair to the keeper. */
async function handedPair(r: Relaying): Promise<{ c: Socket; s: Socket }> {
  const c = await connect(r.port);
  c.write(hello);
  const s = await r.b.next();
  expect((await received(s, hello.length)).equals(hello)).toBe(true);
  return { c, s };
}

/**
 * A client of an echo backend: send() writes and remembers, echoedAll() waits until every byte
 * sent came back, digests() gives both SHA-256s and counts.
 */
function echoTracker(c: Socket): { send(b: Buffer): void; echoedAll(): Promise<boolean>; sent(): number; digests(): { sent: number; echoed: number; want: string; got: string } } {
  const sentHash = createHash('sha256');
  const gotHash = createHash('sha256');
  let total = 0;
  let echoed = 0;
  c.on('data', (d: Buffer) => { gotHash.update(d); echoed += d.length; });
  return {
    send: (b) => { sentHash.update(b); total += b.length; c.write(b); },
    echoedAll: () => waitUntil(() => echoed === total, { timeoutMs: 30_000, intervalMs: 5, what: `${total} bytes echoed (${echoed})` }),
    sent: () => total,
    digests: () => ({ sent: total, echoed, want: sentHash.digest('hex'), got: gotHash.digest('hex') }),
  };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const errorOf = (s: Socket): Promise<string> => new Promise((r) => s.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message)));

describe('the acceptor with the splice relay in the pair keeper', () => {
  it('echoes 64 MiB each way whole, and reports the bytes each way and a FIN', async () => {
    const r = await relaying({}, echo);
    const c = await connect(r.port);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 64 * MiB, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    const end = await r.closedEvents.next();
    expect(end).toEqual({ up: hello.length + 64 * MiB, down: hello.length + 64 * MiB, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ relayed: 1, spliced: 1, active: 0, adopted: 0 });
    expect(r.closedEvents.ends).toHaveLength(1);
  });

  it('passes bytes sent in the same write as the hello once, in order', async () => {
    // 8 MiB behind the hello in one write: Node reads part with the hello (replayed), more while
    // the backend connects (passed on by the hand-off), and the keeper reads the rest.
    const r = await relaying({}, echo);
    const c = await connect(r.port);
    const first = Buffer.concat([hello, randomBytes(8 * MiB)]);
    const got = receiveAll(c);
    c.write(first);
    const answered = await received(c, first.length);
    expect(answered.length).toBe(first.length);
    expect(sha(answered)).toBe(sha(first));
    const rest = randomBytes(MiB);
    c.end(rest);
    expect(await got).toEqual({ bytes: first.length + rest.length, sha256: sha(Buffer.concat([first, rest])) });
    expect(await r.closedEvents.next()).toEqual({ up: first.length + rest.length, down: first.length + rest.length, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ relayed: 1, spliced: 1, active: 0 });
  });

  it('passes on what a backend that speaks first sent at accept', async () => {
    const banner = randomBytes(64 * 1024);
    const r = await relaying({}, (s) => s.write(banner));
    const c = await connect(r.port);
    const down = receiveAll(c);
    c.write(hello);
    const s = await r.b.next();
    expect((await received(s, hello.length)).equals(hello)).toBe(true);
    const more = randomBytes(MiB);
    s.end(more);
    expect(await down).toEqual({ bytes: banner.length + more.length, sha256: sha(Buffer.concat([banner, more])) });
    c.end();
    await closed(c);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length, down: banner.length + more.length, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ spliced: 1, active: 0 });
  });

  it('lets the backend send after the client half-closed', async () => {
    const r = await relaying();
    const { c, s } = await handedPair(r);
    const atBack = receiveAll(s);
    const up = await sendRandom(c, 3 * MiB + 17);
    expect(await atBack).toEqual(up);
    const atClient = receiveAll(c);
    const down = await sendRandom(s, 5 * MiB + 3);
    expect(await atClient).toEqual(down);
    await Promise.all([closed(c), closed(s)]);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + up.bytes, down: down.bytes, reason: 'fin' });
  });

  it('lets the client send after the backend half-closed', async () => {
    const r = await relaying();
    const { c, s } = await handedPair(r);
    const atClient = receiveAll(c);
    const down = await sendRandom(s, 2 * MiB + 5);
    expect(await atClient).toEqual(down);
    const atBack = receiveAll(s);
    const up = await sendRandom(c, 4 * MiB + 1);
    expect(await atBack).toEqual(up);
    await Promise.all([closed(c), closed(s)]);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + up.bytes, down: down.bytes, reason: 'fin' });
  });

  it.each([1000, 4 * MiB])('passes a client\'s FIN sent with its hello and %i bytes, before the backend was reached', async (size) => {
    // With few bytes the FIN reaches Node before the hand-off: the keeper then reads the EOF again
    // (a TCP socket past its FIN reads 0 each time) and passes it on behind the bytes.
    const r = await relaying();
    const c = await connect(r.port);
    const up = Buffer.concat([hello, randomBytes(size)]);
    c.end(up);
    const s = await r.b.next();
    const atBack = await receiveAll(s);
    expect(atBack).toEqual({ bytes: up.length, sha256: sha(up) });
    const atClient = receiveAll(c);
    const down = await sendRandom(s, 2 * MiB);
    expect(await atClient).toEqual(down);
    await Promise.all([closed(c), closed(s)]);
    expect(await r.closedEvents.next()).toEqual({ up: up.length, down: down.bytes, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ spliced: 1, active: 0 });
  });

  it('passes a backend\'s banner and FIN sent at accept, and the client still sends after them', async () => {
    const banner = randomBytes(256 * 1024);
    const r = await relaying({}, (s) => s.end(banner));
    const c = await connect(r.port);
    const atClient = receiveAll(c);
    c.write(hello);
    expect(await atClient).toEqual({ bytes: banner.length, sha256: sha(banner) });
    const s = await r.b.next();
    const atBack = receiveAll(s, hello.length);
    const up = await sendRandom(c, 3 * MiB);
    expect(await atBack).toEqual(up);
    await Promise.all([closed(c), closed(s)]);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + up.bytes, down: banner.length, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ spliced: 1, active: 0 });
  });

  it('resets the client when the backend resets mid-stream', async () => {
    const r = await relaying();
    const { c, s } = await handedPair(r);
    const clientError = errorOf(c);
    c.resume();
    // The backend takes a MiB, then resets with bytes unread (as a killed backend would).
    let seen = 0;
    s.on('data', (d: Buffer) => {
      seen += d.length;
      if (seen >= MiB && !s.destroyed) s.resetAndDestroy();
    });
    sendRandom(c, 64 * MiB).catch(() => undefined);
    expect(await clientError).toBe('ECONNRESET');
    const end = await r.closedEvents.next();
    expect(end.reason).toBe('rst-backend');
    expect(end.up).toBeGreaterThanOrEqual(hello.length + MiB);
    expect(end.up).toBeLessThan(hello.length + 64 * MiB);
    expect(r.a.counters.active).toBe(0);
  });

  it('resets the backend when the client resets', async () => {
    const r = await relaying();
    const { c, s } = await handedPair(r);
    const backendError = errorOf(s);
    const bytes = randomBytes(MiB);
    const got = received(s, bytes.length);
    c.write(bytes);
    expect((await got).equals(bytes)).toBe(true);
    c.resetAndDestroy();
    expect(await backendError).toBe('ECONNRESET');
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + MiB, down: 0, reason: 'rst-client' });
  });

  it('resets both sides of a silent pair at the idle timeout', async () => {
    const r = await relaying({ idleTimeoutMs: 300 });
    // handedPair read the hello at the backend: nothing unread that would turn an RST into an EOF.
    const { c, s } = await handedPair(r);
    const errors = Promise.all([errorOf(c), errorOf(s)]);
    c.resume();
    s.resume();
    expect(await errors).toEqual(['ECONNRESET', 'ECONNRESET']);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length, down: 0, reason: 'idle-timeout' });
    expect(r.a.counters.active).toBe(0);
  });

  it('holds a client back while the backend does not read, then delivers everything in order', async () => {
    const r = await relaying({}, (s) => s.pause());
    const c = await connect(r.port);
    const clientFd = fdOf(c);
    const synOffset = kernelAccepted(clientFd);
    const TOTAL = 256 * MiB;
    let waitingForDrain = false;
    c.on('drain', () => { waitingForDrain = false; });
    const hash = createHash('sha256');
    const base = randomBytes(MiB);
    const writer = (async () => {
      c.write(hello);
      for (let off = 0; off < TOTAL; off += MiB) {
        const b = Buffer.from(base);
        b.writeUInt32LE(off / MiB, 0);
        hash.update(b);
        if (!c.write(b)) {
          waitingForDrain = true;
          await new Promise((res) => c.once('drain', res));
        }
      }
      c.end();
      return hash.digest('hex');
    })();
    const s = await r.b.next();
    // The stall: write() answered false, no drain came, and the keeper's socket to the client
    // advertises a zero window.
    await waitUntil(() => waitingForDrain && sendWindow(clientFd) === 0, { timeoutMs: 30_000, intervalMs: 10, what: 'the client held by a zero window' });
    expect(r.a.counters.spliced).toBe(1);
    const accepted = kernelAccepted(clientFd) - synOffset;
    // The bound of the mechanism: the client's send buffer, the keeper's receive buffer from it,
    // its pipe, its send buffer to the backend, the backend's receive buffer; about one skb
    // (64 KiB on loopback) over each socket's buffer: 256 KiB each.
    const { front, upstream } = keeperSockets(r.k.pid, c.localPort!, s.remotePort!);
    const slack = 256 * 1024;
    const towardBackend = upstream.sndbuf + rcvbuf(fdOf(s)) + 2 * slack;
    const bound = sndbuf(clientFd) + front.rcvbuf + DEFAULT_PIPE_BYTES + towardBackend + 2 * slack;
    console.log(`flow control: accepted ${accepted} bytes; bound ${bound} (client sndbuf ${sndbuf(clientFd)}, keeper rcvbuf ${front.rcvbuf}, pipe ${DEFAULT_PIPE_BYTES}, keeper sndbuf ${upstream.sndbuf}, backend rcvbuf ${rcvbuf(fdOf(s))})`);
    expect(waitingForDrain).toBe(true);
    expect(accepted).toBeGreaterThanOrEqual(c.bytesWritten - c.writableLength);
    expect(accepted).toBeLessThanOrEqual(bound);
    expect(accepted).toBeLessThan(64 * MiB);
    // The backend reads: every byte arrives, in order.
    const got = receiveAll(s, hello.length);
    s.resume();
    const sent = await writer;
    expect(await got).toEqual({ bytes: TOTAL, sha256: sent });
    s.end();
    await ended(c);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + TOTAL, down: 0, reason: 'fin' });
  });

  it('counts pairs handed to the keeper against maxConnections', async () => {
    const r = await relaying({ maxConnections: 2 });
    const pairs = [await handedPair(r), await handedPair(r)];
    expect(r.a.counters).toMatchObject({ spliced: 2, active: 2 });
    // Refused at accept with a reset, which may come before this side saw its connect.
    const over = net.connect({ host: '127.0.0.1', port: r.port });
    cleanups.push(() => { over.destroy(); });
    over.on('error', () => undefined);
    await closed(over);
    expect(r.a.counters).toMatchObject({ overLimit: 1, accepted: 2, active: 2 });
    for (const { c, s } of pairs) { c.end(); s.end(); }
    for (const { c, s } of pairs) await Promise.all([closed(c), closed(s)]);
    expect([await r.closedEvents.next(), await r.closedEvents.next()]).toEqual([
      { up: hello.length, down: 0, reason: 'fin' }, { up: hello.length, down: 0, reason: 'fin' },
    ]);
    expect(r.a.counters.active).toBe(0);
  });

  it('leaves a relayed pair to the next daemon, which adopts it and reports its end', async () => {
    const r = await relaying({}, echo);
    const c = await connect(r.port);
    const { send, echoedAll, sent, digests } = echoTracker(c);
    send(hello);
    await echoedAll();
    send(randomBytes(4 * MiB));
    await echoedAll();
    expect(r.a.counters.spliced).toBe(1);

    // The daemon stops: its acceptor and its keeper connection go; the keeper relays on.
    await r.a.close();
    r.k.close();
    send(randomBytes(4 * MiB));
    await echoedAll();

    // The next daemon: a second connection to the same keeper, and its acceptor adopts the pair.
    const k2 = keeperConn();
    expect(k2.started).toBe(false);
    expect(k2.pid).toBe(r.k.pid);
    const ce2 = closedEvents();
    const { a: a2 } = await lib.acceptor(r.b.port, cleanups, {}, null, ce2.events);
    expect(adoptKeptPairs(a2, null, k2)).toEqual({ adopted: 1, dropped: 0 });
    a2.useKeeperRelay(k2);
    expect(a2.counters).toMatchObject({ adopted: 1, active: 1 });
    send(randomBytes(4 * MiB));
    c.end();
    await ended(c);
    const d = digests();
    expect(d.echoed).toBe(d.sent);
    expect(d.got).toBe(d.want);
    expect(await ce2.next()).toEqual({ up: sent(), down: sent(), reason: 'fin' });
    expect(a2.counters).toMatchObject({ adopted: 1, active: 0 });
    expect(r.closedEvents.ends, 'the stopped acceptor reports nothing').toEqual([]);
  });

  it('reports a pair that ends while the daemon stops: the next daemon does, once', async () => {
    // The stopping acceptor no longer reads the keeper's reports; one sent to its connection then
    // was lost with it (the keeper had let go of it). The keeper keeps it for the next daemon.
    const r = await relaying({}, echo);
    const c = await connect(r.port);
    const back = received(c, hello.length);
    c.write(hello);
    await back;
    await r.a.close();
    c.end();
    await closed(c);
    // The keeper closed its sockets of the pair: it sent or queued its end by then.
    await waitUntil(() => !holdsPeer(r.k.pid, c.localPort!), { timeoutMs: 10_000, intervalMs: 5, what: 'the keeper to close the pair' });
    r.k.close();
    const k2 = keeperConn();
    const ce2 = closedEvents();
    const { a: a2 } = await lib.acceptor(r.b.port, cleanups, {}, null, ce2.events);
    expect(adoptKeptPairs(a2, null, k2)).toEqual({ adopted: 0, dropped: 0 });
    a2.useKeeperRelay(k2);
    await waitUntil(() => ce2.ends.length > 0, { timeoutMs: 10_000, intervalMs: 5, what: 'the next acceptor to report the end' });
    expect(ce2.ends).toEqual([{ up: hello.length, down: hello.length, reason: 'fin' }]);
    expect(a2.counters).toMatchObject({ adopted: 1, active: 0 });
    expect(r.closedEvents.ends).toEqual([]);
  });
});

// The daemon's default: Node relays a pair first and hands it to the keeper once it moved
// handOffBytes, lived handOffAfterMs, or the daemon stops (a hand-off costs more CPU than Node
// spends on a short connection). Each hand-off happens mid-stream: the bytes each way are compared
// whole (SHA-256) and the closed event's counts are exact across it.
describe('the acceptor relaying in Node first, then in the keeper', () => {
  const late = (limits: Partial<AcceptorLimits>): Partial<AcceptorLimits> => ({ handOffBytes: DEFAULT_LIMITS.handOffBytes, handOffAfterMs: 60_000, ...limits });

  it('keeps a short exchange in Node: nothing goes to the keeper', async () => {
    const r = await relaying(late({}), echo);
    const c = await connect(r.port);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 16 * 1024, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + 16 * 1024, down: hello.length + 16 * 1024, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ relayed: 1, spliced: 0, active: 0 });
    expect(r.k.list().relayed).toEqual([]);
  });

  it('hands a pair over once it moved handOffBytes, mid-stream, with every byte whole both ways', async () => {
    const r = await relaying(late({}), echo);
    const c = await connect(r.port);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 64 * MiB, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + 64 * MiB, down: hello.length + 64 * MiB, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ relayed: 1, spliced: 1, active: 0 });
  });

  it('hands a quiet pair over after handOffAfterMs, and it goes on in the keeper', async () => {
    const r = await relaying(late({ handOffAfterMs: 200 }), echo);
    const c = await connect(r.port);
    const back = received(c, hello.length);
    c.write(hello);
    await back;
    await waitUntil(() => r.a.counters.spliced === 1 || undefined, { timeoutMs: 10_000, intervalMs: 10, what: 'the hand-off of an old pair' });
    expect(r.k.list().relayed).toHaveLength(1);
    const got = receiveAll(c);
    const sent = await sendRandom(c, 8 * MiB);
    expect(await got).toEqual(sent);
    await closed(c);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + 8 * MiB, down: hello.length + 8 * MiB, reason: 'fin' });
  });

  it('hands every pair Node relays over when the daemon stops: the next daemon reports them', async () => {
    const r = await relaying(late({}), echo);
    const c = await connect(r.port);
    const { send, echoedAll, sent, digests } = echoTracker(c);
    send(hello);
    send(randomBytes(1000));
    await echoedAll();
    expect(r.a.counters.spliced).toBe(0);
    await r.a.close();
    expect(r.a.counters.spliced).toBe(1);
    r.k.close();
    send(randomBytes(4 * MiB));
    await echoedAll();
    const k2 = keeperConn();
    const ce2 = closedEvents();
    const { a: a2 } = await lib.acceptor(r.b.port, cleanups, {}, null, ce2.events);
    expect(adoptKeptPairs(a2, null, k2)).toEqual({ adopted: 1, dropped: 0 });
    a2.useKeeperRelay(k2);
    c.end();
    await ended(c);
    const d = digests();
    expect(d.got).toBe(d.want);
    expect(await ce2.next()).toEqual({ up: sent(), down: sent(), reason: 'fin' });
    expect(r.closedEvents.ends).toEqual([]);
  });

  it('relays on in Node while a backend reads nothing, and hands over once it reads', async () => {
    // The hand-off waits for Node's writes to reach the kernel, reading neither side meanwhile; a
    // backend that does not read would hold the other direction for ever, so Node relays on.
    const r = await relaying(late({ handOffBytes: 1024 * MiB }), (s) => s.pause());
    const c = await connect(r.port);
    const clientFd = fdOf(c);
    const atClient = receiveAll(c);
    const hash = createHash('sha256');
    const up = randomBytes(MiB);
    let waitingForDrain = false;
    c.on('drain', () => { waitingForDrain = false; });
    c.write(hello);
    for (let i = 0; i < 64; i++) {
      const b = Buffer.from(up);
      b.writeUInt32LE(i, 0);
      hash.update(b);
      if (!c.write(b)) waitingForDrain = true;
    }
    const s = await r.b.next();
    await waitUntil(() => waitingForDrain && sendWindow(clientFd) === 0, { timeoutMs: 30_000, intervalMs: 10, what: 'the client held by a zero window' });
    // Only now may the pair be old enough: every try from here meets Node's writes stuck.
    r.a.update([listenerOf(r)], { handOffAfterMs: 50 });
    await waitUntil(() => r.a.counters.handOffDeferred >= 1, { timeoutMs: 10_000, intervalMs: 10, what: 'a hand-off put off' });
    expect(r.a.counters.spliced).toBe(0);
    // The other direction still moves: the backend's bytes reach the client while it reads nothing.
    const down = randomBytes(2 * MiB);
    s.write(down);
    await waitUntil(() => c.bytesRead >= down.length, { timeoutMs: 30_000, intervalMs: 10, what: `the backend's ${down.length} bytes at the client (${c.bytesRead})` });
    expect(r.a.counters.spliced).toBe(0);
    const atBack = receiveAll(s, hello.length);
    s.resume();
    c.end();
    expect(await atBack).toEqual({ bytes: 64 * MiB, sha256: hash.digest('hex') });
    await waitUntil(() => r.a.counters.spliced === 1, { timeoutMs: 20_000, intervalMs: 10, what: 'the hand-off once the backend reads' });
    s.end();
    expect(await atClient).toEqual({ bytes: down.length, sha256: sha(down) });
    expect(await r.closedEvents.next()).toEqual({ up: hello.length + 64 * MiB, down: down.length, reason: 'fin' });
  });

  it('hands over a pair whose client half-closed; the backend\'s bytes and FIN reach the client', async () => {
    const r = await relaying(late({}));
    const c = await connect(r.port);
    c.end(hello);
    const s = await r.b.next();
    expect((await received(s, hello.length)).equals(hello)).toBe(true);
    await ended(s);
    const atClient = receiveAll(c);
    const down = await sendRandom(s, 8 * MiB + 11);
    expect(await atClient).toEqual(down);
    await Promise.all([closed(c), closed(s)]);
    expect(await r.closedEvents.next()).toEqual({ up: hello.length, down: down.bytes, reason: 'fin' });
    expect(r.a.counters).toMatchObject({ spliced: 1, active: 0 });
  });
});

// The keeper's own sockets, read through a duplicate of each (pidfd_getfd(2)), closed right
// after: a duplicate left open would keep a socket open after the keeper closed it.
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const AF_INET = 2;
const AF_INET6 = 10;
/** A TCP socket's port (sockaddr_in or sockaddr_in6: both at offset 2, big-endian); -1 for anything else. */
function port(fd: number, peer: boolean): number {
  const addr = Buffer.alloc(128);
  const rc = peer ? libc().getpeername(fd, addr, [addr.length]) : libc().getsockname(fd, addr, [addr.length]);
  const family = addr.readUInt16LE(0);
  return rc === 0 && (family === AF_INET || family === AF_INET6) ? addr.readUInt16BE(2) : -1;
}

/** Calls `visit` with a duplicate of each socket the keeper holds, closed right after. */
function eachKeeperSocket(pid: number, visit: (fd: number) => void): void {
  const pidfd = Number(libc().syscall(SYS_PIDFD_OPEN, 'int', pid, 'int', 0));
  if (pidfd < 0) throw new Error(`pidfd_open(${pid}): errno ${errno()}`);
  try {
    for (const name of readdirSync(`/proc/${pid}/fd`)) {
      let link: string;
      try { link = readlinkSync(`/proc/${pid}/fd/${name}`); } catch { continue; }
      if (!link.startsWith('socket:')) continue;
      const fd = Number(libc().syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', Number(name), 'unsigned int', 0));
      if (fd < 0) continue;
      try {
        visit(fd);
      } finally {
        libc().close(fd);
      }
    }
  } finally {
    libc().close(pidfd);
  }
}

/** Whether the keeper holds a TCP socket whose peer port is `peerPort`. */
function holdsPeer(pid: number, peerPort: number): boolean {
  let found = false;
  eachKeeperSocket(pid, (fd) => { if (port(fd, true) === peerPort) found = true; });
  return found;
}

/** The keeper's socket from the client (its peer port: the client's) and its socket to the backend (its local port: the backend's peer port). */
function keeperSockets(pid: number, clientPort: number, upstreamPort: number): { front: { rcvbuf: number }; upstream: { sndbuf: number } } {
  let front: { rcvbuf: number } | undefined;
  let upstream: { sndbuf: number } | undefined;
  eachKeeperSocket(pid, (fd) => {
    if (port(fd, true) === clientPort) front = { rcvbuf: rcvbuf(fd) };
    else if (port(fd, false) === upstreamPort) upstream = { sndbuf: sndbuf(fd) };
  });
  if (!front || !upstream) throw new Error(`the keeper (pid ${pid}) holds no socket of the pair (client port ${clientPort}, upstream port ${upstreamPort})`);
  return { front, upstream };
}
