// Loopback scaffolding for the acceptor's tests (test/integration/acceptor): an Acceptor serving
// one listener keyed by its own 127.0.0.1 port (no kernel steering), backends the test drives,
// clients, the waits on socket events, and checksummed bulk streams. Everything a helper opens is
// registered in the caller's cleanup list.
import { createHash, randomBytes } from 'node:crypto';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { Acceptor, DEFAULT_LIMITS, type AcceptorEvents, type AcceptorLimits } from '../../src/acceptor/acceptor.js';
import type { Splicer } from '../../src/acceptor/splice.js';
import type { SpliceListener } from '../../src/core/sni/splice-table.js';
import { DoorAcceptor } from '../../src/acceptor/door-acceptor.js';
import { connectDoor, endDoor, listenLoopback, spawnDoor } from '../../src/acceptor/door-process.js';
import { closeFd } from '../../src/acceptor/unix-fds.js';
import { runDir } from '../../src/state/run-dir.js';
import { libc } from '../../src/sys/libc.js';
import { rmSync } from 'node:fs';

export type Cleanups = Array<() => Promise<void> | void>;

export async function listen(server: Server, cleanups: Cleanups): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

export interface TestBackend { port: number; conns: Socket[]; next(): Promise<Socket> }

/** A backend that records its connections and lets the test drive each socket (`serve` runs on each first). */
export async function backend(cleanups: Cleanups, serve?: (s: Socket) => void): Promise<TestBackend> {
  const conns: Socket[] = [];
  const waiters: Array<(s: Socket) => void> = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    conns.push(s);
    serve?.(s);
    waiters.shift()?.(s);
  });
  const port = await listen(server, cleanups);
  // After listen's: cleanups run in reverse, and the server's close waits for its connections.
  cleanups.push(() => { for (const s of conns) s.destroy(); });
  let taken = 0;
  return { port, conns, next: () => new Promise((r) => { const i = taken++; if (i < conns.length) r(conns[i]!); else waiters.push(r); }) };
}

/** An acceptor whose one listener (its own port) sends every name to the backend on backendPort. */
export async function acceptor(backendPort: number, cleanups: Cleanups, limits: Partial<AcceptorLimits> = {}, splicer: Splicer | null = null,
  events: AcceptorEvents = {}): Promise<{ a: Acceptor; port: number }> {
  const a = new Acceptor({ ...DEFAULT_LIMITS, ...limits }, events);
  a.splicer = splicer;
  await a.listen();
  cleanups.push(() => a.close());
  const port = (a as unknown as { server: Server }).server.address() as AddressInfo;
  a.update([testListener(port.port, backendPort)]);
  return { a, port: port.port };
}

/** The one listener of a test acceptor: its own 127.0.0.1 port, every name to the backend on backendPort. */
export function testListener(port: number, backendPort: number): SpliceListener {
  const b = [{ addr: '127.0.0.1', port: backendPort, weight: 100, proxyProtocol: false }];
  return { proxy: 'p', iface: 'lo', vip: '127.0.0.1', port, persist: false, defaultBackends: b, sourceRoutes: [],
    sniRoutes: [{ hostname: 'api.example.com', wildcard: false, persist: false, backends: b }] };
}

/** The local port of a bound socket. */
function boundPort(fd: number): number {
  const addr = Buffer.alloc(16);
  if (libc().getsockname(fd, addr, [16]) !== 0) throw new Error('getsockname failed');
  return addr.readUInt16BE(2);
}

let doors = 0;

/**
 * The acceptor over the native front door (build/native/lb-door), serving the same one listener
 * as acceptor(): a door process of its own (instance tdoor<pid>x<n>), ended at cleanup.
 */
export async function doorAcceptor(backendPort: number, cleanups: Cleanups, limits: Partial<AcceptorLimits> = {},
  events: AcceptorEvents = {}): Promise<{ a: DoorAcceptor; port: number; instance: string; pid: number }> {
  const instance = `tdoor${process.pid}x${++doors}`;
  const fd = listenLoopback();
  let pid: number;
  let port: number;
  try {
    port = boundPort(fd);
    pid = spawnDoor(instance, fd).pid;
  } finally {
    closeFd(fd);
  }
  cleanups.push(() => {
    endDoor(instance);
    rmSync(runDir(instance), { recursive: true, force: true });
  });
  const a = new DoorAcceptor({ ...DEFAULT_LIMITS, ...limits }, events);
  a.update([testListener(port, backendPort)]);
  a.attach(await connectDoor(instance));
  cleanups.push(() => a.close());
  await a.ready();
  return { a, port, instance, pid };
}

/**
 * A backend that answers no SYN until told: a listening socket (backlog 1) nobody accepts from, its
 * accept queue filled here, so the kernel drops the next SYN unanswered. `accept()` takes what
 * queued: once the fillers are taken, a SYN retransmitted after that (the first about 1 s after
 * the SYN) completes; `close()` closes what it took. `refuse()` closes the listener: a SYN
 * retransmitted after that is refused.
 */
export async function silentBackend(cleanups: Cleanups): Promise<{ port: number; accept(): number[]; close(): void; refuse(): void }> {
  let fd = listenLoopback({ backlog: 1, nonBlocking: true });
  const taken: number[] = [];
  const close = (): void => { for (const t of taken.splice(0)) closeFd(t); };
  const refuse = (): void => {
    if (fd >= 0) closeFd(fd);
    fd = -1;
  };
  cleanups.push(() => { close(); refuse(); });
  const port = boundPort(fd);
  for (let i = 0; i < 2; i++) await connect(port, cleanups);
  return {
    port,
    accept: () => {
      const now: number[] = [];
      for (let t; (t = libc().accept4(fd, null, null, 0o2000000 /* SOCK_CLOEXEC */)) >= 0;) now.push(t);
      taken.push(...now);
      return now;
    },
    close,
    refuse,
  };
}

export function connect(port: number, cleanups: Cleanups): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => { s.destroy(); });
  });
}

/** Closed, or (a half-open client) ended by the other side. */
export const gone = (s: Socket): Promise<void> => new Promise((r) => (s.closed || s.readableEnded ? r() : (s.once('close', () => r()), s.once('end', () => r()))));
export const closed = (s: Socket): Promise<boolean> => new Promise((r) => (s.closed ? r(true) : s.once('close', () => r(true))));
export const ended = (s: Socket): Promise<void> => new Promise((r) => (s.readableEnded ? r() : s.once('end', () => r())));
export const received = (s: Socket, n: number): Promise<Buffer> => new Promise((resolve) => {
  const chunks: Buffer[] = [];
  let size = 0;
  const on = (d: Buffer): void => { chunks.push(d); size += d.length; if (size >= n) { s.off('data', on); resolve(Buffer.concat(chunks)); } };
  s.on('data', on);
});

export interface Digest { bytes: number; sha256: string }

/** Writes `total` random bytes (blocks of 256 KiB, with backpressure), then ends the socket unless told not to. */
export function sendRandom(s: Socket, total: number, opts: { end?: boolean; prefix?: Buffer } = {}): Promise<Digest> {
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    let left = total;
    const onError = (e: Error): void => reject(e);
    s.once('error', onError);
    if (opts.prefix) s.write(opts.prefix);
    const pump = (): void => {
      while (left > 0) {
        const block = randomBytes(Math.min(left, 256 * 1024));
        left -= block.length;
        hash.update(block);
        if (!s.write(block)) { s.once('drain', pump); return; }
        // Yield between blocks: a sender in the acceptor's process must not starve its timers.
        if (left > 0) { setImmediate(pump); return; }
      }
      s.off('error', onError);
      if (opts.end !== false) s.end();
      resolve({ bytes: total, sha256: hash.digest('hex') });
    };
    pump();
  });
}

/** Everything the socket receives until its EOF: count and checksum. Rejects on an error. */
export function receiveAll(s: Socket, skip = 0): Promise<Digest> {
  const hash = createHash('sha256');
  let bytes = 0;
  let skipped = 0;
  return new Promise((resolve, reject) => {
    s.on('data', (d: Buffer) => {
      if (skipped < skip) {
        const n = Math.min(skip - skipped, d.length);
        skipped += n;
        d = d.subarray(n);
      }
      bytes += d.length;
      hash.update(d);
    });
    s.once('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    s.once('error', reject);
  });
}

/** A backend side that sends back what it receives, ending when its client ends. */
export function echo(s: Socket): void {
  s.pipe(s);
}
