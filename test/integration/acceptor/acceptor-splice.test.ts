// The acceptor's in-kernel relay (src/acceptor/splice.ts, bpf/lb_splice.bpf.c) on loopback, with
// the real verdict program attached to its sockhash: bulk transfers arrive whole (sha256 of what
// was sent against what was received), a half-close in either direction lets the other one
// finish, a RST from either side resets the other, an idle pair is reset and a busy one is not,
// and 200 pairs at once each get their own bytes. Every pair is checked to be spliced (the
// acceptor's counter), not relayed in Node. Needs root (BPF); fails, never skips, without it.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { spliceEvents } from '../../../src/acceptor/relay.js';
import { useSplicer } from '../../lib/splicer.js';
import { captured } from '../../unit/sni/hellos.js';
import { acceptor, backend, closed, connect, echo, receiveAll, received, sendRandom } from '../../lib/acceptor.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-splice.test.ts must run as root: it loads a BPF program');

const MiB = 1024 * 1024;
const hello = captured('node-sni');
const kernel = useSplicer('spl');
const { cleanups } = kernel;

/** A spliced client and the backend socket it reached (the hello already past). */
async function splicedPair(limits: Parameters<typeof acceptor>[2] = {}, serve?: (s: Socket) => void): Promise<{ a: Awaited<ReturnType<typeof acceptor>>['a']; c: Socket; s: Socket }> {
  const b = await backend(cleanups, serve);
  const { a, port } = await acceptor(b.port, cleanups, limits, kernel.splicer);
  const c = await connect(port, cleanups);
  c.write(hello);
  const s = await b.next();
  await received(s, hello.length);
  expect(a.counters.spliced).toBe(1);
  return { a, c, s };
}

const errorOf = (s: Socket): Promise<string> => new Promise((r) => s.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message)));

describe('in-kernel relay', () => {
  it('echoes 64 MiB whole through a client half-close', async () => {
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const c = await connect(port, cleanups);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 64 * MiB, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    expect(a.counters).toMatchObject({ relayed: 1, spliced: 1 });
  });

  it('echoes bytes sent in one write with the hello: none that Node read before the splice goes twice', async () => {
    // The hello and 70,000 bytes behind it, in one write: the receive queue coalesces them into
    // an skb larger than Node's 64 KiB read, read in part when the acceptor splices. The verdict
    // is fed whole skbs, so before the relay emptied the receive queues first such a pair's echo
    // came back longer (a hello and 8 MiB in one write: 65,590 bytes twice, 3 runs of 3).
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const c = await connect(port, cleanups);
    const first = randomBytes(70_000);
    c.write(Buffer.concat([hello, first]));
    // Like a TLS client, the rest only once the first flight was answered (all of it echoed).
    const answered = await received(c, hello.length + first.length);
    const got = receiveAll(c);
    const rest = randomBytes(8 * MiB);
    c.end(rest);
    expect(answered.equals(Buffer.concat([hello, first]))).toBe(true);
    expect(await got).toEqual({ bytes: rest.length, sha256: createHash('sha256').update(rest).digest('hex') });
    await closed(c);
    expect(a.counters).toMatchObject({ relayed: 1, spliced: 1 });
  });

  it('echoes 1 GiB whole both ways', async () => {
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const c = await connect(port, cleanups);
    const got = receiveAll(c, hello.length);
    const sent = await sendRandom(c, 1024 * MiB, { prefix: hello });
    expect(await got).toEqual(sent);
    await closed(c);
    expect(a.counters).toMatchObject({ relayed: 1, spliced: 1 });
    // Counted by the verdict: every byte after what Node read with the hello, both ways; added
    // when the relay ends, i.e. once the acceptor saw both sockets close (after the client did).
    const route = a.routes.get('p\u0000sni:api.example.com')!;
    for (let i = 0; i < 6000 && route.bytesDown === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(route.bytesUp).toBeGreaterThan(1000 * MiB);
    expect(route.bytesDown).toBeGreaterThan(1000 * MiB);
  }, 600_000);

  it('lets the client send 64 MiB after the backend half-closed with 64 MiB', async () => {
    const { c, s } = await splicedPair();
    const down = receiveAll(c);
    const sentDown = await sendRandom(s, 64 * MiB); // then the backend's FIN
    expect(await down).toEqual(sentDown);
    const up = receiveAll(s, 0);
    const sentUp = await sendRandom(c, 64 * MiB);
    expect(await up).toEqual(sentUp);
    await Promise.all([closed(c), closed(s)]);
  });

  it('lets the backend send 64 MiB after the client half-closed', async () => {
    const { c, s } = await splicedPair();
    const up = receiveAll(s, 0);
    c.end();
    expect((await up).bytes).toBe(0);
    const down = receiveAll(c);
    const sentDown = await sendRandom(s, 64 * MiB);
    expect(await down).toEqual(sentDown);
    await Promise.all([closed(c), closed(s)]);
  });

  it('resets the backend when the client resets after spliced traffic, and counts the bytes the kernel moved', async () => {
    const { a, c, s } = await splicedPair();
    const err = errorOf(s);
    const got = received(s, MiB);
    c.write(randomBytes(MiB));
    await got;
    c.resetAndDestroy();
    expect(await err).toBe('ECONNRESET');
    // The relay ended (it reset the backend): the kernel's count was read before the pair left the maps.
    expect([...a.routes.values()][0]!.bytesUp).toBeGreaterThanOrEqual(MiB);
  });

  it('resets the client when the backend resets after spliced traffic', async () => {
    const { c, s } = await splicedPair();
    const err = errorOf(c);
    const got = received(c, MiB);
    s.write(randomBytes(MiB));
    await got;
    s.resetAndDestroy();
    expect(await err).toBe('ECONNRESET');
  });

  it('resets an idle spliced pair, and not one whose bytes only the kernel moves', async () => {
    const idleTimeoutMs = 400;
    const { a, c, s } = await splicedPair({ idleTimeoutMs });
    s.pipe(s);
    // Ping-pong through the kernel for at least 3 idle periods (bounded in rounds): Node's
    // sockets see nothing, the verdict's counters keep the pair alive.
    const start = Date.now();
    let rounds = 0;
    for (; rounds < 100_000 && Date.now() - start < 3 * idleTimeoutMs; rounds++) {
      const back = received(c, 64);
      c.write(randomBytes(64));
      await back;
    }
    expect(c.destroyed).toBe(false);
    const resetSeen = errorOf(c);
    await Promise.all([closed(c), closed(s)]);
    expect(await resetSeen).toBe('ECONNRESET');
    console.log(`idle: ${rounds} round trips in ${Date.now() - start} ms kept the pair; then it was reset`);
    expect(a.counters.spliced).toBe(1);
  });

  it('keeps the bytes of 200 concurrent pairs apart', async () => {
    const PAIRS = 200;
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const one = async (): Promise<void> => {
      const c = await connect(port, cleanups);
      // Like a TLS client: the rest once the hello was answered (its echo). A client that sent its
      // megabyte and FIN at once could find its pair relayed in Node: what arrived before the
      // splice is read first, and a socket past its FIN cannot be spliced (splice.ts).
      c.write(hello);
      await received(c, hello.length);
      const got = receiveAll(c);
      const sent = await sendRandom(c, MiB);
      expect(await got).toEqual(sent);
    };
    await Promise.all(Array.from({ length: PAIRS }, one));
    expect(a.counters).toMatchObject({ relayed: PAIRS, spliced: PAIRS });
  }, 300_000);

  it('holds a client whose backend does not read, then passes every byte in order', async () => {
    const b = await backend(cleanups, (sock) => sock.pause());
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const c = await connect(port, cleanups);
    const holds: Socket[] = [];
    const releases: Socket[] = [];
    const onHold = (x: Socket): void => { holds.push(x); };
    const onRelease = (x: Socket): void => { releases.push(x); };
    spliceEvents.on('hold', onHold);
    spliceEvents.on('release', onRelease);
    cleanups.push(() => { spliceEvents.off('hold', onHold); spliceEvents.off('release', onRelease); });
    const held = once(spliceEvents, 'hold');
    const sending = sendRandom(c, 64 * MiB, { prefix: hello });
    await held;
    const s = await b.next();
    const got = receiveAll(s, hello.length);
    s.resume();
    expect(await got).toEqual(await sending);
    expect(holds.length).toBeGreaterThan(0);
    expect(releases.length).toBeGreaterThan(0);
    expect(a.counters.spliced).toBe(1);
    s.end();
    await closed(c);
  });

  it('passes on what a backend that speaks first sent before the splice', async () => {
    const banner = randomBytes(4096);
    const { c, s } = await splicedPair({}, (sock) => sock.write(banner));
    // The banner may have reached the acceptor before, during or after the splice.
    const down = receiveAll(c);
    s.end();
    expect(await down).toEqual({ bytes: banner.length, sha256: createHash('sha256').update(banner).digest('hex') });
  });
});
