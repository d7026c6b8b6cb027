// The pair keeper (src/acceptor/pair-keeper.ts, pair-keeper-main.ts), a real keeper process and a
// real spliced pair on loopback: once the keeper holds both sockets, the process that spliced
// them closes its own descriptors (as a daemon that dies does) and the kernel still relays the
// pair both ways; a listing hands the descriptors back; a drop lets the sockets close. Needs root
// (BPF, /run/lb). And the acceptor on top: a pair it spliced keeps relaying after it stopped,
// and the next acceptor takes the pair back and relays it to its end.
import { createHash, randomBytes } from 'node:crypto';
import { fstatSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { adoptKeptPairs } from '../../src/acceptor/pair-adopt.js';
import { endPairKeeper, PairKeeper, pairKeeperArgv0 } from '../../src/acceptor/pair-keeper.js';
import { closeFd } from '../../src/acceptor/unix-fds.js';
import { waitUntil } from '../../src/sandbox/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { captured } from '../unit/sni/hellos.js';
import { acceptor, backend, closed, connect, echo, received } from '../lib/acceptor.js';
import { useSplicer } from '../lib/splicer.js';

if (process.getuid?.() !== 0) throw new Error('pair-keeper.test.ts must run as root: it loads a BPF program and writes /run/lb');

const MiB = 1024 * 1024;
const instance = `lbpk${process.pid}`;
const kernel = useSplicer('splk');
const { cleanups } = kernel;
afterAll(() => {
  for (const inst of [instance, `${instance}b`]) {
    endPairKeeper(inst);
    rmSync(runDir(inst), { recursive: true, force: true });
  }
});

const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

async function server(onConn: (s: Socket) => void): Promise<number> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as AddressInfo).port;
}

/** A client and a backend, and the middle's two sockets spliced in the kernel (as the acceptor splices them). */
async function splicedMiddle(): Promise<{ client: Socket; back: Socket; front: Socket; upstream: Socket }> {
  let back!: Socket;
  const backPort = await server((s) => { back = s; });
  const fronts: Socket[] = [];
  const frontPort = await server((s) => { fronts.push(s); });
  const client = net.connect({ host: '127.0.0.1', port: frontPort });
  const upstream = net.connect({ host: '127.0.0.1', port: backPort });
  await Promise.all([new Promise((r) => client.once('connect', r)), new Promise((r) => upstream.once('connect', r))]);
  await waitUntil(() => fronts.length === 1 && back !== undefined, { timeoutMs: 5000, intervalMs: 5, what: 'both connections accepted' });
  const front = fronts[0]!;
  front.pause();
  upstream.pause();
  expect(kernel.splicer.pair(front, upstream)).not.toBeNull();
  for (const s of [client, back, front, upstream]) cleanups.push(() => { s.destroy(); });
  return { client, back, front, upstream };
}

describe('the SNI pair keeper', () => {
  it('keeps a spliced pair relaying after the process that spliced it closed its descriptors, gives it back, and lets it close', async () => {
    const keeper = PairKeeper.open(instance, 'dist/src/acceptor/pair-keeper-main.js');
    cleanups.push(() => keeper.close());
    expect(keeper.started).toBe(true);
    expect(readFileSync(`/proc/${keeper.pid}/cmdline`, 'utf8').split('\0')[0]).toBe(pairKeeperArgv0(instance));
    const { client, back, front, upstream } = await splicedMiddle();
    expect(keeper.keep('pair-1', [fdOf(front), fdOf(upstream)], { note: 'one' })).toBe(true);
    // As a daemon that dies: its descriptors close, nothing leaves the sockhashes.
    front.destroy();
    upstream.destroy();
    await Promise.all([closed(front), closed(upstream)]);
    const up = randomBytes(MiB);
    const gotUp = received(back, up.length);
    client.write(up);
    expect((await gotUp).equals(up)).toBe(true);
    const down = randomBytes(MiB);
    const gotDown = received(client, down.length);
    back.write(down);
    expect((await gotDown).equals(down)).toBe(true);

    // A second connection (the next daemon) takes the descriptors back.
    keeper.close();
    const next = PairKeeper.open(instance, 'dist/src/acceptor/pair-keeper-main.js');
    cleanups.push(() => next.close());
    expect(next.started).toBe(false);
    expect(next.pid).toBe(keeper.pid);
    const listed = next.list().kept;
    expect(listed.map((p) => ({ id: p.id, rec: p.rec }))).toEqual([{ id: 'pair-1', rec: { note: 'one' } }]);
    for (const fd of listed[0]!.fds) expect(fstatSync(fd).isSocket()).toBe(true);

    // Dropped by the keeper and closed here: the last descriptors are gone, both sides see the close.
    const clientGone = closed(client);
    const backGone = closed(back);
    client.end();
    back.end();
    expect(next.drop('pair-1')).toBe(true);
    for (const fd of listed[0]!.fds) closeFd(fd);
    await Promise.all([clientGone, backGone]);
    expect(next.list()).toEqual({ kept: [], relayed: [] });
  });

  it('ends the keeper on lb down', async () => {
    const keeper = PairKeeper.open(instance, 'dist/src/acceptor/pair-keeper-main.js');
    keeper.close();
    expect(endPairKeeper(instance)).toBe(true);
    await waitUntil(() => { try { return readFileSync(`/proc/${keeper.pid}/stat`, 'utf8').includes(') Z'); } catch { return true; } },
      { timeoutMs: 5000, intervalMs: 20, what: 'the keeper to exit' });
    expect(endPairKeeper(instance)).toBe(false);
  });

  it('leaves a spliced pair to the next acceptor across a stop: bytes both ways before, during and after, then its FIN', async () => {
    const inst = `${instance}b`;
    const first = PairKeeper.open(inst);
    kernel.splicer.keeper = first;
    cleanups.push(() => { kernel.splicer.keeper = null; });
    const b = await backend(cleanups, echo);
    const { a, port } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    const c = await connect(port, cleanups);
    const hello = captured('node-sni');
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let echoed = 0;
    let total = 0;
    c.on('data', (d: Buffer) => { got.update(d); echoed += d.length; });
    const send = (buf: Buffer): void => { sent.update(buf); total += buf.length; c.write(buf); };
    const echoedUpTo = (n: number): Promise<void> => waitUntil(() => echoed >= n, { timeoutMs: 30_000, intervalMs: 5, what: `${n} bytes echoed (${echoed})` }).then(() => undefined);
    send(hello);
    await echoedUpTo(total);
    send(randomBytes(4 * MiB));
    await echoedUpTo(total);
    expect(a.counters.spliced).toBe(1);

    // The acceptor stops (a daemon's SIGTERM): the kept pair is left spliced, with the keeper.
    await a.close();
    first.close();
    send(randomBytes(4 * MiB));
    await echoedUpTo(total);

    // The next acceptor takes it back and relays it to its end.
    const next = PairKeeper.open(inst);
    kernel.splicer.keeper = next;
    cleanups.push(() => next.close());
    expect(next.started).toBe(false);
    const { a: a2 } = await acceptor(b.port, cleanups, {}, kernel.splicer);
    expect(adoptKeptPairs(a2, kernel.splicer, next)).toEqual({ adopted: 1, dropped: 0 });
    send(randomBytes(4 * MiB));
    const ended = new Promise<void>((r) => c.once('end', () => r()));
    c.end();
    await ended;
    expect(echoed).toBe(total);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    await waitUntil(() => a2.counters.active === 0, { timeoutMs: 10_000, intervalMs: 10, what: 'the adopted pair to end' });
    expect(a2.counters).toMatchObject({ adopted: 1, active: 0 });
    expect(next.list(), 'the keeper let the pair go when it ended').toEqual({ kept: [], relayed: [] });
  });
});
