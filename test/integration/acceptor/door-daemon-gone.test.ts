// What the native door does while no daemon hears it. It goes on deciding from the last daemon's
// table, as the data plane forwards from its pinned maps, and the next daemon hears of those
// connections as if it had been there (DECIDED, OPENED, ENDED). A connection routed before the
// daemon went whose connect fails meanwhile is kept, and the next daemon hears it (HELD, then
// FAILED), so the backend's failure counts. A real door (build/native/lb-door) on loopback, two
// daemons' acceptors in turn (DoorAcceptor), a backend that drops SYNs and then takes or refuses
// them. Every wait is for an event (the door's log, a socket's), bounded by the test timeout.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type AcceptorConn, type AcceptorEnd } from '../../../src/acceptor/acceptor.js';
import { DoorAcceptor } from '../../../src/acceptor/door-acceptor.js';
import { connectDoor, doorLogPath } from '../../../src/acceptor/door-process.js';
import { captured } from '../../unit/sni/hellos.js';
import * as lib from '../../lib/acceptor.js';
import { closed, ended, received, type Cleanups } from '../../lib/acceptor.js';

const cleanups: Cleanups = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

/** Lines of the door's log. */
const doorLog = (instance: string): string[] => (existsSync(doorLogPath(instance)) ? readFileSync(doorLogPath(instance), 'utf8').split('\n') : []);

describe('The native door while no daemon is connected', () => {
  it('decides from the last daemon\'s table, and the next daemon hears each decision, open and end', async () => {
    const be = await lib.backend(cleanups);
    // A short hello deadline: a door that left the hellos to the next daemon resets them at it.
    const { a, port, instance } = await lib.doorAcceptor(be.port, cleanups, { helloTimeoutMs: 2000 });
    const disconnects = doorLog(instance).filter((l) => l.includes('daemon disconnected')).length;
    await a.close();
    await expect.poll(() => doorLog(instance).filter((l) => l.includes('daemon disconnected')).length, { timeout: 10_000 }).toBe(disconnects + 1);

    // No daemon: both reach the backend at once (not at the hello deadline), the hello replayed.
    const hello = captured('node-sni');
    const lasting = await lib.connect(port, cleanups);
    lasting.write(hello);
    const lastingAtBackend = await Promise.race([be.next(), closed(lasting).then(() => { throw new Error('reset at the hello deadline, never sent to its backend'); })]);
    expect((await received(lastingAtBackend, hello.length)).equals(hello)).toBe(true);
    const brief = await lib.connect(port, cleanups);
    const [lastingPort, briefPort] = [lasting.localPort!, brief.localPort!];
    brief.write(hello);
    const briefAtBackend = await be.next();
    await received(briefAtBackend, hello.length);
    briefAtBackend.end('bye');
    brief.end();
    brief.resume();
    briefAtBackend.resume();
    await Promise.all([ended(brief), ended(briefAtBackend)]);

    const opened: number[] = [];
    const ends: Array<{ clientPort: number; end: AcceptorEnd }> = [];
    const next = new DoorAcceptor(DEFAULT_LIMITS, {
      opened: (c: AcceptorConn) => opened.push(c.clientPort),
      closed: (c: AcceptorConn, end: AcceptorEnd) => ends.push({ clientPort: c.clientPort, end }),
    });
    next.update([lib.testListener(port, be.port)]);
    next.attach(await connectDoor(instance));
    cleanups.push(() => next.close());
    await next.ready();
    // As if it had decided them: counted for the route and the backend, opened, the brief one ended.
    const backendKey = `127.0.0.1:${be.port}`;
    await expect.poll(() => next.counters, { timeout: 10_000 }).toMatchObject({ doorDecided: 2, adopted: 0, relayed: 2 });
    expect(next.backends.get(backendKey)).toEqual({ attempts: 2, failed: 0, active: 1 });
    expect(next.routes.get('p\u0000sni:api.example.com')).toMatchObject({ connections: 2 });
    expect(opened.sort()).toEqual([lastingPort, briefPort].sort());
    // The door says so in its log, for the operator.
    expect(doorLog(instance)).toContain('lb-door: decided 2 connections from the last daemon\'s table while no daemon was connected');
    await expect.poll(() => ends, { timeout: 10_000 }).toEqual([{ clientPort: briefPort, end: expect.objectContaining({ reason: 'fin', up: hello.length, down: 3 }) }]);

    // The lasting one, still relaying, ends under the new daemon.
    lastingAtBackend.end();
    lasting.end();
    lasting.resume();
    await ended(lasting);
    await expect.poll(() => next.backends.get(backendKey), { timeout: 10_000 }).toEqual({ attempts: 2, failed: 0, active: 0 });
    expect(ends.map((e) => e.clientPort)).toEqual([briefPort, lastingPort]);
  });

  it('tells the next daemon of an open it missed: a connection routed before, whose backend took it while no daemon ran', async () => {
    const late = await lib.silentBackend(cleanups);
    const { a, port, instance } = await lib.doorAcceptor(late.port, cleanups, { connectTimeoutMs: 60_000 });
    const backendKey = `127.0.0.1:${late.port}`;
    const c = await lib.connect(port, cleanups);
    c.on('error', () => undefined);
    const clientPort = c.localPort!;
    c.write(captured('node-sni'));
    // Decided and connecting: the backend's accept queue is full, its SYN dropped.
    await expect.poll(() => a.backends.get(backendKey), { timeout: 10_000 }).toEqual({ attempts: 1, failed: 0, active: 1 });
    expect(a.counters.relayed).toBe(0);
    const disconnects = doorLog(instance).filter((l) => l.includes('daemon disconnected')).length;
    await a.close();
    await expect.poll(() => doorLog(instance).filter((l) => l.includes('daemon disconnected')).length, { timeout: 10_000 }).toBe(disconnects + 1);

    // Room in the queue: the door's retransmitted SYN completes with no daemon to tell.
    expect(late.accept()).toHaveLength(2);
    await expect.poll(() => late.accept().length, { timeout: 10_000 }).toBe(1);

    const opened: number[] = [];
    const next = new DoorAcceptor({ ...DEFAULT_LIMITS, connectTimeoutMs: 60_000 }, { opened: (conn: AcceptorConn) => opened.push(conn.clientPort) });
    next.update([lib.testListener(port, late.port)]);
    next.attach(await connectDoor(instance));
    cleanups.push(() => next.close());
    await next.ready();
    // HELD (the first daemon routed it), then OPENED: adopted, and its open reported once.
    await expect.poll(() => next.counters, { timeout: 10_000 }).toMatchObject({ adopted: 1, relayed: 1 });
    expect(opened).toEqual([clientPort]);
    late.close();
    await closed(c);
    await expect.poll(() => next.backends.get(backendKey), { timeout: 10_000 }).toMatchObject({ active: 0 });
  });

  it('keeps a connect failure for the next daemon, which counts it against the backend', async () => {
    // The kernel drops the door's SYN until the listener closes; the SYN's next retransmission is refused.
    const backend = await lib.silentBackend(cleanups);
    const silent = backend.port;
    // A connect bound far off: the failure here is the refusal, after the daemon went.
    const limits = { connectTimeoutMs: 60_000 };
    const { a, port, instance } = await lib.doorAcceptor(silent, cleanups, limits);
    const backendKey = `127.0.0.1:${silent}`;

    const c = await lib.connect(port, cleanups);
    c.on('error', () => undefined);
    c.write(captured('node-sni'));
    // The door decided it and is connecting.
    await expect.poll(() => a.backends.get(backendKey), { timeout: 10_000 }).toEqual({ attempts: 1, failed: 0, active: 1 });
    const disconnects = doorLog(instance).filter((l) => l.includes('daemon disconnected')).length;
    await a.close();
    await expect.poll(() => doorLog(instance).filter((l) => l.includes('daemon disconnected')).length, { timeout: 10_000 }).toBe(disconnects + 1);

    backend.refuse();
    // Refused at the next SYN retransmission: the door resets the client, with no daemon to tell.
    await closed(c);

    const next = new DoorAcceptor({ ...DEFAULT_LIMITS, ...limits });
    next.update([lib.testListener(port, silent)]);
    next.attach(await connectDoor(instance));
    cleanups.push(() => next.close());
    await next.ready();
    // HELD (the connection the first daemon routed), then FAILED: adopted, and failed at its backend.
    await expect.poll(() => next.counters, { timeout: 10_000 }).toMatchObject({ adopted: 1, connectFailed: 1 });
    expect(next.backends.get(backendKey)).toMatchObject({ failed: 1, active: 0 });
  });
});
