// An in-kernel relay with TCP's flow control: splice(2) through one pipe per direction
// (socket -> pipe -> socket). The bytes never enter this process (the pipe holds references to the
// receiving socket's pages, and the sending socket takes those pages), yet nothing leaves a
// socket's receive queue unless the pipe has room for it, and nothing leaves the pipe unless the
// destination's send buffer takes it. So a slow reader holds its sender back exactly as on a
// direct connection: its receive window closes, the relay's send buffer to it fills, the pipe
// fills, the relay stops reading the sender's socket, that socket's receive buffer fills, and the
// sender's TCP window closes. Unlike the sockmap relay (splice.ts), no byte is ever held uncharged.
//
// Bounds, per direction: at most the pipe's capacity sits in this relay (it never splices into a
// pipe more than that less what the pipe holds; F_SETPIPE_SZ made the pipe at least that large,
// and a pipe that cannot be sized so fails the pair). The capacity is `pipeBytes` (1 MiB: fewer
// splices per GB) while the large pipes of all pairs stay within `pipeBudget` (256 MiB), else
// SMALL_PIPE_BYTES (64 KiB, Linux's default): pipe pages are charged to no socket's buffer, and
// as root the pipe-user-pages limits do not apply, so without the budget 10,000 pairs with slow
// readers could pin 20 GB. Beside them the kernel holds what the two sockets'
// own buffers hold, as it would for a direct connection: the source's receive buffer and the
// destination's send buffer (net.ipv4.tcp_rmem[2] and tcp_wmem[2] at most, with autotuning).
//
// One synchronous, single-threaded epoll loop through koffi (libc), meant for the pair keeper
// (pair-keeper-main.ts), a process that survives the daemon: it does nothing but this loop and its
// control socket (watch()). poll() blocks in epoll_wait; run it in a process or a worker thread of
// its own.
//
// Edge-triggered epoll (EPOLLET), with the interest following each direction's state:
// - EPOLLIN on a source only while its pipe has room and it did not end, EPOLLOUT on a destination
//   only while its pipe holds bytes. A full pipe therefore masks its source's readiness (the
//   callback filters the wake-ups of a mask without EPOLLIN): a sender held back costs no wake-up.
// - Edge-triggered because EPOLLHUP and EPOLLERR cannot be masked: level-triggered, a socket that
//   got its peer's FIN and whose own sending side was shut (EPOLLHUP), with bytes before that FIN
//   still waiting for room in a full pipe, would be reported by every epoll_wait: a busy loop. Edge-triggered, a socket is reported when something happens to it,
//   and an error (a reset) still wakes the loop whatever the interest.
// - The price of edges: a direction is pumped until it blocks (EAGAIN on the source with room in
//   the pipe, EAGAIN on the destination with bytes in the pipe, or the end), and only then waits
//   for its next edge. A pair that used up its per-poll budget (fairness between pairs) is kept in
//   a run queue and pumped again by the next poll, which then does not wait.
// - EPOLL_CTL_MOD re-polls the descriptor, so an interest turned back on reports a readiness that
//   arrived while it was off.
// An EAGAIN when splicing into the pipe may also mean its slots are full of partial pages; the pipe
// then holds bytes, so the destination's EPOLLOUT is armed and draining it pumps the source again.
//
// As a direct connection behaves: a FIN (the source's EOF) is passed on (shutdown(SHUT_WR)) once
// that direction's pipe is empty; the other direction goes on; both ended, both sockets are closed
// ('closed'). An error on either socket resets both (SO_LINGER 0, then close: an RST) ('reset').
// No byte either way for idleMs resets both ('idle').

import { errno, failed as fail, libc } from '../sys/libc.js';

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLET = 0x80000000;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const F_SETPIPE_SZ = 1031;
const SPLICE_F_MOVE = 1;
const SPLICE_F_NONBLOCK = 2;
const SHUT_WR = 1;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const SO_LINGER = 13;
const EINTR = 4;
const EAGAIN = 11;

/** struct epoll_event is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EVENT_SIZE = process.arch === 'x64' ? 12 : 16;
const EVENT_DATA = process.arch === 'x64' ? 4 : 8;
/** Events taken per epoll_wait. */
const MAX_EVENTS = 256;
/** Rounds of (pipe -> destination, source -> pipe) per direction per pump: bounds one pair's share of a poll. */
const PUMP_ROUNDS = 16;
/** The default pipe capacity per direction. */
export const DEFAULT_PIPE_BYTES = 1024 * 1024;
/** The capacity of every pipe past the budget. */
export const SMALL_PIPE_BYTES = 64 * 1024;
/** Bytes of large pipes (pipeBytes each, two per pair) at most, over all pairs. */
export const DEFAULT_PIPE_BUDGET = 256 * 1024 * 1024;

/** splice() answers: nothing to move now (EAGAIN), or an error. */
const AGAIN = -2;
const FAILED = -1;

/** splice() without offsets, retrying EINTR: the bytes moved (0: the source's EOF), AGAIN or FAILED. */
function splice(from: number, to: number, len: number): number {
  for (;;) {
    const n = Number(libc().splice(from, null, to, null, len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE));
    if (n >= 0) return n;
    const code = errno();
    if (code === EINTR) continue;
    return code === EAGAIN ? AGAIN : FAILED;
  }
}

export type PairEndReason = 'closed' | 'reset' | 'idle';
export interface PairEnd {
  id: string; up: number; down: number; reason: PairEndReason;
  /** For 'reset' by an error: the side whose socket failed (its peer sent the RST, or it was unreachable). */
  by?: 'client' | 'backend';
}

/** One direction: src -> pipe (w) ... pipe (r) -> dst. */
interface Way {
  src: number;
  dst: number;
  r: number;
  w: number;
  /** Bytes in the pipe: spliced in minus spliced out. */
  held: number;
  /** The pipe's capacity: never more bytes in it than this. */
  cap: number;
  /** Bytes delivered to dst. */
  bytes: number;
  /** The source's EOF was read. */
  eof: boolean;
  /** Its FIN was passed on (dst shut for writing). */
  shut: boolean;
}

interface Pair {
  id: string;
  client: number;
  backend: number;
  up: Way;
  down: Way;
  idleMs: number;
  /** now() at the last byte moved either way (or the add). */
  last: number;
  /** The epoll interest registered per socket. */
  mask: Map<number, number>;
  ended: boolean;
  /** Its pipes count against the budget (they are pipeBytes large). */
  large: boolean;
}

export class PipeRelay {
  private readonly epfd: number;
  private readonly pipeBytes: number;
  private readonly pipeBudget: number;
  /** Bytes of the large pipes of the pairs relayed now. */
  private largeBytes = 0;
  private readonly now: () => number;
  private readonly events = Buffer.alloc(EVENT_SIZE * MAX_EVENTS);
  private readonly pairs = new Map<string, Pair>();
  /** Socket descriptor -> its pair. */
  private readonly bySocket = new Map<number, Pair>();
  private readonly watched = new Set<number>();
  /** Pairs whose pump stopped at its budget, not at an EAGAIN: pumped again by the next poll (no edge will come for them). */
  private readonly runnable = new Set<Pair>();
  /** Ends not yet returned by poll (those of reset()). */
  private pendingEnds: PairEnd[] = [];
  /** No idle deadline is before this (deadlines only move later with traffic): the pairs are scanned only then. */
  private nextIdleCheck = Infinity;
  private closed = false;

  constructor(opts: { pipeBytes?: number; pipeBudget?: number; now?: () => number } = {}) {
    this.pipeBytes = opts.pipeBytes ?? DEFAULT_PIPE_BYTES;
    this.pipeBudget = opts.pipeBudget ?? DEFAULT_PIPE_BUDGET;
    this.now = opts.now ?? Date.now;
    this.epfd = libc().epoll_create1(EPOLL_CLOEXEC);
    if (this.epfd < 0) fail('epoll_create1');
  }

  /**
   * Takes ownership of both connected TCP sockets (set non-blocking here; closed by the relay when
   * the pair ends). up = client -> backend bytes. A closed relay or an id already relayed throws
   * before taking them; any later failure (descriptors, pipe quota) resets and closes them.
   */
  add(id: string, client: number, backend: number, idleMs: number): void {
    if (this.closed) throw new Error('the relay is closed');
    if (this.pairs.has(id)) throw new Error(`pair ${id} is already relayed`);
    const pipes: number[] = [];
    try {
      for (const fd of [client, backend]) {
        const flags = libc().fcntl(fd, F_GETFL);
        if (flags < 0 || libc().fcntl(fd, F_SETFL, 'int', flags | O_NONBLOCK) < 0) fail(`fcntl(${fd}, O_NONBLOCK)`);
      }
      const large = this.pipeBytes > SMALL_PIPE_BYTES && this.largeBytes + 2 * this.pipeBytes <= this.pipeBudget;
      const cap = large ? this.pipeBytes : Math.min(this.pipeBytes, SMALL_PIPE_BYTES);
      const up = this.way(client, backend, pipes, cap);
      const down = this.way(backend, client, pipes, cap);
      const pair: Pair = { id, client, backend, up, down, idleMs, last: this.now(), mask: new Map(), ended: false, large };
      for (const fd of [client, backend]) {
        this.ctl(EPOLL_CTL_ADD, fd, EPOLLIN);
        pair.mask.set(fd, EPOLLIN);
        this.bySocket.set(fd, pair);
      }
      this.pairs.set(id, pair);
      if (pair.large) this.largeBytes += 2 * this.pipeBytes;
      this.nextIdleCheck = Math.min(this.nextIdleCheck, pair.last + idleMs);
      // Bytes may already wait in either receive queue: pumped by the next poll.
      this.runnable.add(pair);
    } catch (err) {
      for (const fd of [client, backend]) {
        if (this.bySocket.delete(fd)) libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
        this.rst(fd);
      }
      for (const p of pipes) libc().close(p);
      throw err;
    }
  }

  private way(src: number, dst: number, pipes: number[], cap: number): Way {
    const fds = Buffer.alloc(8);
    if (libc().pipe2(fds, O_NONBLOCK | O_CLOEXEC) !== 0) fail('pipe2');
    const r = fds.readInt32LE(0);
    const w = fds.readInt32LE(4);
    pipes.push(r, w);
    // Anything but the configured size would break the bound the header states: a refusal
    // (EPERM past the per-user pipe quota) fails the pair rather than relaying it unbounded.
    if (libc().fcntl(w, F_SETPIPE_SZ, 'int', cap) < 0) fail(`F_SETPIPE_SZ ${cap}`);
    return { src, dst, r, w, held: 0, cap, bytes: 0, eof: false, shut: false };
  }

  watch(fd: number): void {
    // Level-triggered: the owner reads at its own pace and is told again while bytes wait.
    this.ctl(EPOLL_CTL_ADD, fd, EPOLLIN, false);
    this.watched.add(fd);
  }

  unwatch(fd: number): void {
    if (this.watched.delete(fd)) libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
  }

  /** Bytes a pair moved each way so far, and its pipes' capacity. */
  counts(id: string): { up: number; down: number; pipe: number } | undefined {
    const pair = this.pairs.get(id);
    return pair ? { up: pair.up.bytes, down: pair.down.bytes, pipe: pair.up.cap } : undefined;
  }

  /** Resets (RST) a pair now; its end (reason 'reset') is returned by the next poll. */
  reset(id: string): void {
    const pair = this.pairs.get(id);
    if (pair) this.pendingEnds.push(this.end(pair, 'reset'));
  }

  /**
   * One epoll_wait (at most timeoutMs; -1: no bound but the idle deadlines), then moves bytes.
   * Returns the pairs that ended and the watched descriptors that are readable.
   */
  poll(timeoutMs: number): { ended: PairEnd[]; ready: number[] } {
    if (this.closed) throw new Error('the relay is closed');
    const ended = this.pendingEnds;
    this.pendingEnds = [];
    const ready: number[] = [];
    this.expire(ended);
    let timeout = ended.length > 0 || this.runnable.size > 0 ? 0 : timeoutMs;
    if (this.nextIdleCheck !== Infinity) {
      const untilIdle = Math.max(0, Math.ceil(this.nextIdleCheck - this.now()));
      timeout = timeout < 0 ? untilIdle : Math.min(timeout, untilIdle);
    }
    // Pumped below whatever epoll says: their budget ran out last time.
    const toPump = new Set(this.runnable);
    this.runnable.clear();
    const n = libc().epoll_wait(this.epfd, this.events, MAX_EVENTS, timeout);
    if (n < 0 && errno() !== EINTR) fail('epoll_wait');
    for (let i = 0; i < n; i++) {
      const flags = this.events.readUInt32LE(i * EVENT_SIZE);
      const fd = this.events.readInt32LE(i * EVENT_SIZE + EVENT_DATA);
      if (this.watched.has(fd)) {
        ready.push(fd);
        continue;
      }
      const pair = this.bySocket.get(fd);
      if (!pair || pair.ended) continue;
      // An error (a reset from the peer, an unreachable peer) ends the pair; reading SO_ERROR
      // here rather than at the next splice tells an RST from an EOF: once the error is
      // consumed, a splice from a reset socket may answer 0 like a FIN.
      if ((flags & (EPOLLERR | EPOLLHUP)) !== 0 && this.soError(fd) !== 0) {
        ended.push(this.end(pair, 'reset', fd === pair.client ? 'client' : 'backend'));
        continue;
      }
      toPump.add(pair);
    }
    for (const pair of toPump) {
      if (pair.ended) continue;
      const end = this.pump(pair);
      if (end) ended.push(end);
    }
    this.expire(ended);
    return { ended, ready };
  }

  /** Resets every pair still relayed (a relay that stops cannot deliver the rest: a FIN would pass a truncated stream for a whole one) and closes the epoll descriptor. Watched descriptors stay the caller's. */
  close(): void {
    if (this.closed) return;
    for (const pair of [...this.pairs.values()]) this.end(pair, 'reset');
    libc().close(this.epfd);
    this.closed = true;
  }

  /** Resets the pairs idle for their idleMs, scanning only when the earliest deadline may have come. */
  private expire(ended: PairEnd[]): void {
    const now = this.now();
    if (now < this.nextIdleCheck) return;
    let next = Infinity;
    for (const pair of [...this.pairs.values()]) {
      const deadline = pair.last + pair.idleMs;
      if (deadline <= now) ended.push(this.end(pair, 'idle'));
      else next = Math.min(next, deadline);
    }
    this.nextIdleCheck = next;
  }

  /**
   * Moves what can move both ways, until each direction blocks or the budget is used; passes
   * FINs on; sets the epoll interest. Returns the pair's end when it ended.
   */
  private pump(pair: Pair): PairEnd | undefined {
    let blocked = false;
    let moved = false;
    for (let round = 0; round < PUMP_ROUNDS; round++) {
      let progress = false;
      for (const way of [pair.up, pair.down]) {
        const r = this.step(way);
        // The failed splice or shutdown may have been on either socket: the one with an error.
        if (r < 0) return this.end(pair, 'reset', this.soError(pair.client) !== 0 ? 'client' : 'backend');
        if (r > 0) progress = true;
      }
      if (!progress) {
        blocked = true;
        break;
      }
      moved = true;
    }
    if (moved) pair.last = this.now();
    if (!blocked) this.runnable.add(pair);
    if (pair.up.shut && pair.down.shut) return this.end(pair, 'closed');
    const want = new Map<number, number>([[pair.client, 0], [pair.backend, 0]]);
    for (const way of [pair.up, pair.down]) {
      if (!way.eof && way.held < way.cap) want.set(way.src, want.get(way.src)! | EPOLLIN);
      if (way.held > 0) want.set(way.dst, want.get(way.dst)! | EPOLLOUT);
    }
    for (const [fd, events] of want) {
      if (pair.mask.get(fd) === events) continue;
      this.ctl(EPOLL_CTL_MOD, fd, events);
      pair.mask.set(fd, events);
    }
    return undefined;
  }

  /**
   * One round of a direction: pipe -> destination, then source -> pipe, then the FIN if due.
   * Returns the bytes moved (> 0), 0 when blocked or done, -1 on an error (the pair is reset).
   */
  private step(way: Way): number {
    let moved = 0;
    if (way.held > 0) {
      const n = splice(way.r, way.dst, way.held);
      if (n === FAILED) return -1;
      if (n > 0) {
        way.held -= n;
        way.bytes += n;
        moved += n;
      }
    }
    if (!way.eof && way.held < way.cap) {
      const n = splice(way.src, way.w, way.cap - way.held);
      if (n === FAILED) return -1;
      if (n === 0) way.eof = true;
      else if (n > 0) {
        way.held += n;
        moved += n;
      }
    }
    if (way.eof && way.held === 0 && !way.shut) {
      // Every byte before the FIN is in the destination's send queue: the FIN goes behind them.
      if (libc().shutdown(way.dst, SHUT_WR) !== 0) return -1;
      way.shut = true;
    }
    return moved;
  }

  private soError(fd: number): number {
    const value = Buffer.alloc(4);
    if (libc().getsockopt(fd, SOL_SOCKET, SO_ERROR, value, [4]) !== 0) return errno();
    return value.readInt32LE(0);
  }

  private ctl(op: number, fd: number, events: number, edge = true): void {
    const ev = Buffer.alloc(EVENT_SIZE);
    ev.writeUInt32LE((events | (edge ? EPOLLET : 0)) >>> 0, 0);
    ev.writeInt32LE(fd, EVENT_DATA);
    if (libc().epoll_ctl(this.epfd, op, fd, ev) !== 0) fail(`epoll_ctl(${op}, ${fd})`);
  }

  /** An RST: SO_LINGER {on, 0} then close. */
  private rst(fd: number): void {
    const linger = Buffer.alloc(8);
    linger.writeInt32LE(1, 0);
    linger.writeInt32LE(0, 4);
    libc().setsockopt(fd, SOL_SOCKET, SO_LINGER, linger, 8);
    libc().close(fd);
  }

  private end(pair: Pair, reason: PairEndReason, by?: 'client' | 'backend'): PairEnd {
    pair.ended = true;
    this.pairs.delete(pair.id);
    if (pair.large) this.largeBytes -= 2 * this.pipeBytes;
    this.runnable.delete(pair);
    for (const fd of [pair.client, pair.backend]) {
      this.bySocket.delete(fd);
      // close() removes a descriptor from epoll by itself, unless another copy of it is open.
      libc().epoll_ctl(this.epfd, EPOLL_CTL_DEL, fd, null);
      if (reason === 'closed') libc().close(fd);
      else this.rst(fd);
    }
    for (const way of [pair.up, pair.down]) {
      libc().close(way.r);
      libc().close(way.w);
    }
    return { id: pair.id, up: pair.up.bytes, down: pair.down.bytes, reason, ...(by ? { by } : {}) };
  }
}
