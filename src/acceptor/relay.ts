// The relay between a client and its backend, with the TCP behaviour of a direct connection:
// - half-close: a FIN from one side is a FIN to the other once every byte before it got there;
//   the other direction goes on until it ends too;
// - reset: an error (ECONNRESET, ...) on one side resets the other (resetAndDestroy sends a RST);
// - idle: no byte either way for idleMs resets both, as the data plane's conntrack forgets an idle flow.
// Two ways to move the bytes: spliced in the kernel (splice.ts: Node then sees only FIN and RST,
// and asks the kernel's counters whether the pair is idle), or in Node (stream.pipe, with
// backpressure) when there is no splicer or the pair could not be spliced.

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { holdReads, passBuffered, writesPending } from './hand-off.js';
import { takeReceiveQueue, type SplicedPair, type Splicer } from './splice.js';

export interface RelayCounts {
  /** Client to backend. */
  up: number;
  down: number;
}

export type RelayEnd = 'closed' | 'reset' | 'idle';

/** Longest pause between two looks at whether a peer took every byte before a FIN. */
const FIN_POLL_MAX_MS = 50;
/**
 * Bytes a spliced socket's psock may queue for its peer before the pair is diverted to Node (the
 * kernel has no bound of its own: docs/sni.md); looked at every BACKLOG_LOOK_MS.
 */
export const SPLICE_BACKLOG_MAX = 4 * 1024 * 1024;
const BACKLOG_LOOK_MS = 20;
/**
 * 'hold': a spliced socket diverted (its bytes wait in its own psock; both of a pair's sockets are
 * diverted at once); 'release': its peer drained and Node relays that direction from then on. With
 * the socket (for tests and logs).
 */
export const spliceEvents = new EventEmitter();

/** A relay running; `counts` are the bytes it moved so far (up: client to backend). */
export interface Relay {
  counts: RelayCounts;
  spliced: boolean;
  /**
   * For a daemon that stops: a pair the keeper holds is left spliced for the next one (its
   * sockets' close here ends nothing and reports nothing); true when so.
   */
  detach(): boolean;
  /**
   * A pair Node relays goes to another owner (the pair keeper: hand-off.ts). Node stops reading
   * both sockets and writes what it holds; once the kernel took every byte Node wrote (at most
   * `waitMs`), `hand` runs, and when it says it gave the sockets away the relay is over without an
   * end (its sockets' close reports nothing). Otherwise Node relays on: a peer that reads nothing
   * would hold the other direction up for ever. False for a spliced, ended or releasing pair.
   * Every byte Node passed on is in `counts` (a read() emits 'data').
   */
  release(hand: () => boolean, waitMs: number): Promise<boolean>;
}

/**
 * `opts.rec`: the caller's record of the pair, kept with it by the pair keeper; `opts.adopted`: a
 * pair a previous daemon spliced (Splicer.adopt), relayed as it is. `opts.handOffAt`: a pair Node
 * relays calls `onBytes` (once, after the event that moved them) when its bytes both ways reach
 * this: the caller's cue to release() it to a cheaper relay.
 */
export function relay(client: Socket, backend: Socket, idleMs: number, done: (counts: RelayCounts, reason: RelayEnd) => void,
  splicer: Splicer | null = null, opts: { rec?: unknown; adopted?: SplicedPair; handOffAt?: number; onBytes?: () => void } = {}): Relay {
  const counts: RelayCounts = { up: 0, down: 0 };
  let spliceable = splicer !== null && !opts.adopted;
  if (spliceable && splicer) {
    // Bytes Node already holds go out first (synchronously when the socket can take them: pair()
    // checks), so the kernel's bytes follow them; then those still in the receive queues, so the
    // verdict starts at an skb's first byte (splice.ts).
    counts.up += passBuffered(client, backend);
    counts.down += passBuffered(backend, client);
    for (const [from, to] of [[client, backend], [backend, client]] as const) {
      const queued = takeReceiveQueue(from);
      for (const chunk of queued.chunks) {
        if (from === client) counts.up += chunk.length;
        else counts.down += chunk.length;
        to.write(chunk);
      }
      if (!queued.empty) spliceable = false;
    }
  }
  const pair = opts.adopted ?? (spliceable ? splicer!.pair(client, backend, opts.rec ?? null) : null);
  let finished = false;
  let detached = false;
  let releasing = false;
  let closed = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  // What the kernel moved, read once, before the pair leaves the maps (its counters go with it).
  let movedAtEnd: { up: number; down: number } | undefined;
  const forget = (): void => {
    if (!pair || movedAtEnd) return;
    movedAtEnd = pair.moved();
    pair.remove();
  };
  const finish = (reason: RelayEnd): void => {
    if (finished || detached) return;
    finished = true;
    clearInterval(idleTimer);
    forget();
    if (movedAtEnd) {
      counts.up += movedAtEnd.up;
      counts.down += movedAtEnd.down;
    }
    done(counts, reason);
  };
  const reset = (reason: 'reset' | 'idle'): void => {
    if (detached) return;
    // Out of the sockhashes first, so each socket closes (SO_LINGER 0: a RST) as a plain TCP socket.
    forget();
    if (!client.destroyed) client.resetAndDestroy();
    if (!backend.destroyed) backend.resetAndDestroy();
    finish(reason);
  };
  // The byte cue: checked only until it fired once (setImmediate: the pipe writes this chunk after
  // this listener, in the same event).
  let cue = pair === null && opts.onBytes !== undefined ? (opts.handOffAt ?? Infinity) : Infinity;
  const cued = (): void => {
    if (counts.up + counts.down < cue) return;
    cue = Infinity;
    setImmediate(opts.onBytes!);
  };
  client.on('data', (d: Buffer) => { counts.up += d.length; cued(); });
  backend.on('data', (d: Buffer) => { counts.down += d.length; cued(); });
  if (pair) {
    // Node sees no byte of a spliced pair until a direction is diverted to it (splice.ts; a
    // half-spliced one, splice.ts, still pipes the other half).
    client.pipe(backend, { end: false });
    backend.pipe(client, { end: false });
    const read = (s: Socket, more = 0): number => (s === client ? (counts.up += more) : (counts.down += more));
    const held = watchBacklog(pair, client, backend, read);
    client.once('end', () => { void passFin(pair, client, backend, held, read); });
    backend.once('end', () => { void passFin(pair, backend, client, held, read); });
    idleTimer = watchIdle(pair, counts, idleMs, () => reset('idle'), held);
    const stopBacklog = held.stop;
    client.once('close', stopBacklog);
    backend.once('close', stopBacklog);
  } else {
    client.pipe(backend);
    backend.pipe(client);
    for (const s of [client, backend]) s.setTimeout(idleMs, () => reset('idle'));
  }
  for (const s of [client, backend]) {
    s.on('error', () => reset('reset'));
    s.on('close', (hadError) => {
      if (hadError) { reset('reset'); return; }
      if (++closed === 2) finish('closed');
    });
  }
  // A side that has ended both ways is closed by Node (allowHalfOpen ends it once its writer ended);
  // when one side closes while the other still sends, the other's writes fail and reset it.
  return {
    counts, spliced: pair !== null,
    detach: () => {
      if (finished || !pair?.detach()) return false;
      detached = true;
      clearInterval(idleTimer);
      return true;
    },
    release: async (hand, waitMs) => {
      if (finished || detached || releasing || pair) return false;
      releasing = true;
      // Off the pipes first: a read() emits 'data', which a pipe would write a second time.
      client.unpipe(backend);
      backend.unpipe(client);
      for (const s of [client, backend]) holdReads(s, true);
      passBuffered(client, backend);
      passBuffered(backend, client);
      // A read() below the high-water mark asked libuv to read again (net.Socket._read).
      for (const s of [client, backend]) holdReads(s, true);
      const drained = await writesDrained([client, backend], waitMs);
      releasing = false;
      if (finished) return false;
      if (drained) {
        detached = true;
        if (hand()) return true;
        detached = false;
      }
      for (const s of [client, backend]) holdReads(s, false);
      client.pipe(backend);
      backend.pipe(client);
      return false;
    },
  };
}

/**
 * Resolves true once Node has nothing left to write to any of `sockets`; false after waitMs or when
 * one closes. Looked at every millisecond: 'drain' comes only after a write that returned false.
 */
function writesDrained(sockets: readonly Socket[], waitMs: number): Promise<boolean> {
  if (!sockets.some(writesPending)) return Promise.resolve(true);
  const until = Date.now() + waitMs;
  return new Promise((resolve) => {
    const look = (): void => {
      if (sockets.some((s) => s.destroyed)) resolve(false);
      else if (!sockets.some(writesPending)) resolve(true);
      else if (Date.now() >= until) resolve(false);
      else setTimeout(look, 1);
    };
    setTimeout(look, 1);
  });
}

/** Looks again after 1, 2, 4 ... up to FIN_POLL_MAX_MS until `ready` says yes or `to` is gone. */
function pollUntil(to: Socket, ready: () => boolean): Promise<boolean> {
  let wait = 1;
  return new Promise((resolve) => {
    const look = (): void => {
      if (to.destroyed) { resolve(false); return; }
      if (ready()) { resolve(true); return; }
      setTimeout(look, wait).unref();
      wait = Math.min(wait * 2, FIN_POLL_MAX_MS);
    };
    look();
  });
}

/**
 * Passes `from`'s EOF on to `to`. A diverted `from` first: every byte the verdict passed to it goes
 * to `to`, also those its psock delivers after Node's stream saw the EOF (readRest). Then `to` is
 * ended once its TCP write queue holds every byte meant for it: the kernel may still have
 * redirected bytes in `to`'s psock. No event says when either happened, so this polls; the pair's
 * idle timer bounds the wait (a peer that stopped reading is reset like any idle pair).
 */
async function passFin(pair: SplicedPair, from: Socket, to: Socket, held: Held, read: (s: Socket, more?: number) => number): Promise<void> {
  const base = held.readAtDivert(from);
  if (base !== undefined) {
    const caughtUp = await pollUntil(to, () => {
      for (let chunk = pair.readRest(from); chunk !== null; chunk = pair.readRest(from)) {
        read(from, chunk.length);
        to.write(chunk);
      }
      return read(from) - base >= pair.passed(from);
    });
    if (!caughtUp) return;
  }
  if (await pollUntil(to, () => pair.drained(to))) to.end();
}

interface Held {
  /** Whether a diverted sender waits for its peer to drain (the pair is not idle meanwhile). */
  any(): boolean;
  /** What Node had read from `from` when it was diverted; undefined: not diverted. */
  readAtDivert(from: Socket): number | undefined;
  stop(): void;
}

/**
 * Backpressure for a spliced pair: when the bytes queued for a peer pass SPLICE_BACKLOG_MAX, both
 * sockets are diverted (splice.ts: their bytes wait in their own psocks) and each direction waits
 * until the socket it goes to took every byte the kernel queued for it; then Node relays that
 * direction, with stream.pipe's backpressure. The pair is Node's from then on. The cheap look (two
 * map reads) bounds the backlog from above with the peer's last measured queue; only past the
 * bound does it ask the peer's socket.
 */
function watchBacklog(pair: SplicedPair, client: Socket, backend: Socket, read: (s: Socket) => number): Held {
  const waiting = new Set<Socket>();
  const diverted = new Map<Socket, number>();
  const queued = new Map<Socket, number>([[client, 0], [backend, 0]]);
  const divertSide = (side: Socket): void => {
    if (diverted.has(side) || side.readableEnded || side.destroyed) return;
    // Before divert(): Node reads nothing of `side` until then (the verdict redirects it all).
    const before = read(side);
    if (pair.divert(side)) {
      diverted.set(side, before);
      waiting.add(side);
      spliceEvents.emit('hold', side);
    }
  };
  const timer = setInterval(() => {
    const m = pair.moved();
    for (const [from, to, sent] of [[client, backend, m.up], [backend, client, m.down]] as const) {
      if (to.destroyed || from.destroyed) continue;
      if (waiting.has(from)) {
        if (pair.drained(to) && pair.resume(from)) {
          waiting.delete(from);
          spliceEvents.emit('release', from);
        }
        continue;
      }
      if (diverted.has(from) || from.readableEnded || to.bytesWritten + sent - queued.get(to)! <= SPLICE_BACKLOG_MAX) continue;
      const backlog = pair.backlog(to);
      if (backlog < 0) continue;
      queued.set(to, to.bytesWritten + sent - backlog);
      // Both directions leave the kernel at once: a socket whose own bytes the verdict passes
      // while bytes redirected to it still wait in the same psock queue corrupted streams
      // (docs/sni.md), and that is what diverting one direction of a busy pair does.
      if (backlog > SPLICE_BACKLOG_MAX) for (const side of [from, to]) divertSide(side);
    }
    if (diverted.size === 2 && waiting.size === 0) clearInterval(timer);
  }, BACKLOG_LOOK_MS);
  timer.unref();
  return {
    any: () => waiting.size > 0,
    readAtDivert: (from) => diverted.get(from),
    stop: () => clearInterval(timer),
  };
}

/**
 * Resets a spliced pair when neither the kernel nor Node moved a byte for idleMs (looked at 4
 * times per idleMs); not while a diverted side waits for its peer to drain a backlog.
 */
function watchIdle(pair: SplicedPair, counts: RelayCounts, idleMs: number, onIdle: () => void, held: Held): NodeJS.Timeout {
  const total = (): number => { const m = pair.moved(); return m.up + m.down + counts.up + counts.down; };
  let last = total();
  let quietSince = Date.now();
  const period = Math.max(1, Math.floor(idleMs / 4));
  const timer = setInterval(() => {
    const now = total();
    if (now !== last || held.any()) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= idleMs) {
      clearInterval(timer);
      onIdle();
    }
  }, period);
  timer.unref();
  return timer;
}
