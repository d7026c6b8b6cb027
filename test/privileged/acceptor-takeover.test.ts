// The daemon's start on the socket its holder keeps (listenTakenOrNew in src/acceptor/front-door.ts):
// a listening socket is adopted; one that cannot listen (a UDP socket, which Node refuses before
// listen(2) and leaves open; a connected TCP socket, whose listen(2) fails and which Node closes
// itself) is given up and a new socket serves instead. Either way the taken descriptor is no
// longer open in the process, and the new socket, which may get the same descriptor number, is
// not closed with it. Real holder processes (pidfd_getfd), real sockets on loopback. Needs root.
import dgram from 'node:dgram';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import net, { type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Acceptor } from '../../src/acceptor/acceptor.js';
import { listenTakenOrNew } from '../../src/acceptor/front-door.js';
import { endHolder, spawnHolder, takeFromHolder } from '../../src/acceptor/holder.js';
import { waitUntil } from '../../src/sandbox/index.js';
import { runDir } from '../../src/state/run-dir.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-takeover.test.ts must run as root: it takes descriptors with pidfd_getfd and writes /run/lb');

const instance = `lbtk${process.pid}`;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  endHolder(instance);
  rmSync(runDir(instance), { recursive: true, force: true });
});

const fdOf = (handleOwner: unknown): number => (handleOwner as { _handle: { fd: number } })._handle.fd;

/** Hands the socket to a holder (which keeps its own copy) and takes a descriptor of it back. */
function heldAndTaken(fd: number): { fd: number; pid: number; ino: number } {
  spawnHolder(instance, fd);
  const taken = takeFromHolder(instance);
  if (taken.fd === undefined) throw new Error(`nothing taken: ${taken.reason}`);
  return taken;
}

/** Descriptors of this process that refer to the socket with this inode. */
function openCopies(ino: number): string[] {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === `socket:[${ino}]`;
    } catch {
      return false;
    }
  });
}

async function tcpServer(): Promise<Server> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return server;
}

function newAcceptor(): Acceptor {
  const a = new Acceptor();
  cleanups.push(() => a.close());
  return a;
}

/** Connects to the acceptor's socket and waits for the acceptor to accept it (it then resets it: no listener is configured). */
async function accepts(a: Acceptor): Promise<void> {
  const { port } = (a as unknown as { server: Server }).server.address() as AddressInfo;
  const before = a.counters.accepted;
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  cleanups.push(() => { s.destroy(); });
  await waitUntil(() => a.counters.accepted > before, { timeoutMs: 10_000, intervalMs: 20, what: 'the acceptor to accept a connection' });
}

describe('listening on the socket taken from the holder', () => {
  it('adopts a listening socket', async () => {
    const server = await tcpServer();
    const taken = heldAndTaken(fdOf(server));
    // The test's server stops accepting from the socket (its descriptor closes; the copies stay).
    await new Promise<void>((r) => server.close(() => r()));
    const a = newAcceptor();
    const r = await listenTakenOrNew(a, taken);
    expect(r).toEqual({ fd: taken.fd, adopted: true });
    await accepts(a);
  });

  it('gives up a UDP socket (left open by Node) and closes it, then serves on a new socket', async () => {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    const taken = heldAndTaken(fdOf(udp));
    udp.close();
    expect(openCopies(taken.ino)).toEqual([String(taken.fd)]);
    const a = newAcceptor();
    const r = await listenTakenOrNew(a, taken);
    expect(r.adopted).toBe(false);
    expect(openCopies(taken.ino), 'the taken descriptor is closed').toEqual([]);
    await accepts(a);
  });

  it('gives up a connected TCP socket (closed by Node) without closing the new socket that may reuse its number', async () => {
    const server = await tcpServer();
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    cleanups.push(() => { client.destroy(); });
    await new Promise<void>((r, j) => { client.once('connect', () => r()); client.once('error', j); });
    const own = String(fdOf(client));
    const taken = heldAndTaken(fdOf(client));
    const a = newAcceptor();
    const r = await listenTakenOrNew(a, taken);
    expect(r.adopted).toBe(false);
    expect(openCopies(taken.ino), 'only the client\'s own descriptor is left').toEqual([own]);
    await accepts(a);
  });
});
