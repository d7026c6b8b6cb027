// A PipeRelay (src/acceptor/pipe-relay.ts) in a worker thread, so its loop can block in epoll_wait
// while the peers in this thread run. The worker shares this process's descriptors: a socket made
// here is handed over as a dup() of its descriptor (relayedPair: the Node socket is then closed).
// Commands go over a MessagePort the worker reads synchronously (receiveMessageOnPort) when a byte
// on a wake pipe, which the relay watches, says one is there. Used by
// test/privileged/pipe-relay.test.ts and bench/pipe-relay-probe.ts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import ts from 'typescript';
import type { PairEnd } from '../../src/acceptor/pipe-relay.js';
import { packageRoot } from '../../src/package-root.js';
import { errno, libc } from '../../src/sys/libc.js';

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const IPPROTO_TCP = 6;
const TCP_INFO = 11;
/** offsetof(struct tcp_info, tcpi_snd_wnd) (linux/tcp.h, 6.x): the peer's advertised window. */
const TCPI_SND_WND = 228;
/** offsetof(struct tcp_info, tcpi_bytes_acked). */
const TCPI_BYTES_ACKED = 120;
/** SIOCOUTQ: bytes in the send queue, sent and not acknowledged or not sent yet. */
const SIOCOUTQ = 0x5411;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

export const fdOf = (s: Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd;

function sockopt(fd: number, level: number, name: number, size: number): Buffer {
  const value = Buffer.alloc(size);
  if (libc().getsockopt(fd, level, name, value, [size]) !== 0) throw new Error(`getsockopt(${fd}, ${name}): errno ${errno()}`);
  return value;
}
export const sndbuf = (fd: number): number => sockopt(fd, SOL_SOCKET, SO_SNDBUF, 4).readInt32LE(0);
export const rcvbuf = (fd: number): number => sockopt(fd, SOL_SOCKET, SO_RCVBUF, 4).readInt32LE(0);
/** The window the socket's peer advertises (0: the sender may send nothing more). */
export const sendWindow = (fd: number): number => sockopt(fd, IPPROTO_TCP, TCP_INFO, 232).readUInt32LE(TCPI_SND_WND);

/**
 * Every byte the kernel took from this socket's writer: acknowledged by the peer, or in the send
 * queue. Counts the SYN of an active open: subtract a reading taken before the first write.
 */
export function kernelAccepted(fd: number): number {
  const outq: [number] = [0];
  if (libc().ioctl(fd, SIOCOUTQ, outq) !== 0) throw new Error(`ioctl(SIOCOUTQ): errno ${errno()}`);
  return Number(sockopt(fd, IPPROTO_TCP, TCP_INFO, 232).readBigUInt64LE(TCPI_BYTES_ACKED)) + outq[0];
}

/** The worker's code: the relay's loop and the command handler. `fake` !== null: the relay's clock, moved by 'advance'. */
const WORKER = `
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { readSync } from 'node:fs';
const { PipeRelay } = await import(workerData.relayUrl);
const { port, wake, pipeBytes, pipeBudget } = workerData;
let fake = workerData.clock;
const relay = new PipeRelay({ pipeBytes, pipeBudget, now: fake === null ? undefined : () => fake });
relay.watch(wake);
// getrusage(RUSAGE_THREAD): this thread's CPU time, the relay's alone.
const cpu = () => {
  const ru = Buffer.alloc(144);
  libc().getrusage(1, ru);
  return Number(ru.readBigInt64LE(0)) + Number(ru.readBigInt64LE(8)) / 1e6 + Number(ru.readBigInt64LE(16)) + Number(ru.readBigInt64LE(24)) / 1e6;
};
const scratch = Buffer.alloc(256);
let after = [];
for (let running = true; running;) {
  const { ended, ready } = relay.poll(after.length > 0 ? 0 : 1000);
  for (const end of ended) port.postMessage({ type: 'ended', end });
  for (const reply of after) port.postMessage(reply);
  after = [];
  if (!ready.includes(wake)) continue;
  try { while (readSync(wake, scratch) > 0); } catch (err) { if (err.code !== 'EAGAIN') throw err; }
  for (let m; (m = receiveMessageOnPort(port)) !== undefined;) {
    const { op, seq } = m.message;
    const reply = (value) => port.postMessage({ type: 'reply', seq, value });
    try {
      if (op === 'add') { relay.add(m.message.id, m.message.client, m.message.backend, m.message.idleMs); reply(null); }
      // Answered after the next poll, which expires what the new time made idle first.
      else if (op === 'advance') { fake += m.message.ms; after.push({ type: 'reply', seq, value: null }); }
      else if (op === 'counts') reply(relay.counts(m.message.id) ?? null);
      else if (op === 'reset') { relay.reset(m.message.id); reply(null); }
      else if (op === 'cpu') reply(cpu());
      else if (op === 'stop') { relay.close(); running = false; reply(null); }
    } catch (err) { port.postMessage({ type: 'reply', seq, error: String(err) }); }
  }
}
port.close();
`;

/** A scratch directory for the worker's file, where koffi resolves (a link to node_modules). */
export function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lb-pipe-relay-'));
  symlinkSync(join(packageRoot(), 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/**
 * workDir() with the relay in it as JavaScript, transpiled from the source (no build needed): the
 * relay and the libc bindings it imports, laid out as under src/ (acceptor/, sys/).
 */
export function relayModuleDir(): { dir: string; relayUrl: string } {
  const dir = workDir();
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  for (const module of ['acceptor/pipe-relay', 'sys/libc']) {
    const source = readFileSync(join(packageRoot(), 'src', `${module}.ts`), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    mkdirSync(join(dir, dirname(module)), { recursive: true });
    writeFileSync(join(dir, `${module}.js`), js);
  }
  return { dir, relayUrl: pathToFileURL(join(dir, 'acceptor', 'pipe-relay.js')).href };
}

export class RelayWorker {
  readonly ends: PairEnd[] = [];
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly endWaiters: Array<() => void> = [];
  private exited = false;
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker, private readonly port: MessagePort, private readonly wakeR: number, private readonly wakeW: number) {
    port.on('message', (m: { type: string; seq?: number; value?: unknown; error?: string; end?: PairEnd }) => {
      if (m.type === 'ended') {
        this.ends.push(m.end!);
        for (const w of this.endWaiters.splice(0)) w();
        return;
      }
      const p = this.pending.get(m.seq!);
      this.pending.delete(m.seq!);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.value);
    });
    worker.on('error', (err) => { this.failure = err; this.failAll(err); });
    worker.on('exit', () => { this.exited = true; this.failAll(this.failure ?? new Error('the relay worker exited')); });
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const w of this.endWaiters.splice(0)) w();
  }

  /**
   * Starts a relay in a worker. relayUrl: the relay's JavaScript module (relayModuleDir, or the
   * build's). clock: a start time for an injected clock (moved only by advance()), or null.
   */
  static async start(relayUrl: string, opts: { pipeBytes?: number; pipeBudget?: number; clock?: number | null; dir: string }): Promise<RelayWorker> {
    const fds = Buffer.alloc(8);
    if (libc().pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) throw new Error(`pipe2: errno ${errno()}`);
    const wakeR = fds.readInt32LE(0);
    const wakeW = fds.readInt32LE(4);
    const { port1, port2 } = new MessageChannel();
    const file = join(opts.dir, `worker-${process.pid}-${Date.now()}.mjs`);
    writeFileSync(file, WORKER);
    const worker = new Worker(file, {
      workerData: { port: port2, wake: wakeR, pipeBytes: opts.pipeBytes, pipeBudget: opts.pipeBudget, clock: opts.clock ?? null, relayUrl },
      transferList: [port2],
    });
    const relay = new RelayWorker(worker, port1, wakeR, wakeW);
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
    return relay;
  }

  request<T>(message: Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(this.failure ?? new Error('the relay worker exited'));
    const seq = ++this.seq;
    const reply = new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.port.postMessage({ ...message, seq });
    writeSync(this.wakeW, Buffer.from([1]));
    return reply;
  }

  add(id: string, client: number, backend: number, idleMs: number): Promise<void> {
    return this.request({ op: 'add', id, client, backend, idleMs });
  }
  advance(ms: number): Promise<void> { return this.request({ op: 'advance', ms }); }
  counts(id: string): Promise<{ up: number; down: number; pipe: number } | null> { return this.request({ op: 'counts', id }); }
  reset(id: string): Promise<void> { return this.request({ op: 'reset', id }); }
  /** The relay thread's CPU seconds (user + system). */
  cpu(): Promise<number> { return this.request({ op: 'cpu' }); }

  async ended(id: string): Promise<PairEnd> {
    for (;;) {
      const end = this.ends.find((e) => e.id === id);
      if (end) return end;
      if (this.exited) throw this.failure ?? new Error('the relay worker exited');
      await new Promise<void>((r) => this.endWaiters.push(r));
    }
  }

  /** Stops the loop (the relay resets what it still relays) and the worker; closes the wake pipe. */
  async stop(): Promise<void> {
    if (!this.exited) {
      const exit = new Promise((r) => this.worker.once('exit', r));
      await this.request({ op: 'stop' }).catch(() => undefined);
      // A worker that did not stop (a failure) is ended at its next return from epoll_wait.
      if (!this.exited) await Promise.race([exit, this.worker.terminate()]);
    }
    this.port.close();
    libc().close(this.wakeR);
    libc().close(this.wakeW);
  }
}

/** A listening server; its sockets start paused (pauseOnConnect), so Node reads nothing until told. */
export async function listen(onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, onConn);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

export interface RelayedPair {
  id: string;
  /** The client, connected to the relay's client side. */
  client: Socket;
  /** The backend's socket, connected to the relay's backend side (paused: resume() to read). */
  back: Socket;
  /** The relay's two descriptors (owned by the relay). */
  front: number;
  upstream: number;
  servers: Server[];
}

/**
 * client -> [front | relay | upstream] -> back, on loopback: the middle's two sockets are made by
 * Node, dup()ed into the relay, and closed in Node before any byte flows.
 */
export async function relayedPair(relay: RelayWorker, id: string, idleMs = 10 * 60_000): Promise<RelayedPair> {
  let back: Socket | undefined;
  let front: Socket | undefined;
  const b = await listen((s) => { back = s; });
  const f = await listen((s) => { front = s; });
  const servers = [b.server, f.server];
  const client = net.connect({ host: '127.0.0.1', port: f.port, allowHalfOpen: true });
  const upstream = net.connect({ host: '127.0.0.1', port: b.port, allowHalfOpen: true });
  try {
    await Promise.all([new Promise((r) => client.once('connect', r)), new Promise((r) => upstream.once('connect', r))]);
    while (back === undefined || front === undefined) await new Promise((r) => setImmediate(r));
    upstream.pause();
    const frontFd = libc().dup(fdOf(front));
    const upFd = libc().dup(fdOf(upstream));
    await Promise.all([front, upstream].map((s) => new Promise((r) => { s.once('close', r); s.destroy(); })));
    if (frontFd < 0 || upFd < 0) {
      for (const fd of [frontFd, upFd]) if (fd >= 0) libc().close(fd);
      throw new Error(`dup: errno ${errno()}`);
    }
    // The relay owns both from here, also when add() fails.
    await relay.add(id, frontFd, upFd, idleMs);
    return { id, client, back: back!, front: frontFd, upstream: upFd, servers };
  } catch (err) {
    for (const s of [client, upstream, front, back]) s?.destroy();
    for (const s of servers) s.close();
    throw err;
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
