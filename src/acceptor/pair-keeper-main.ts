// The pair keeper process (pair-keeper.ts starts it): the SNI acceptor's pairs that outlive the
// daemon. Two kinds:
// - pairs it relays (the splice relay, pipe-relay.ts): the daemon hands over both sockets once a
//   pair is worth it (acceptor.ts: handOffBytes, handOffAfterMs, the daemon's stop); from then on
//   this process moves their bytes with splice(2) and reports each pair's end;
// - pairs the kernel relays (the sockmap relay, splice.ts): it only keeps a descriptor of both
//   sockets (a socket whose last descriptor closes leaves the sockmap and closes), never reads or
//   writes them, and gives them back to the next daemon.
// Its fd 3 is a listening unix SOCK_SEQPACKET socket; it serves one daemon connection at a time
// (the instance lock allows one daemon; a new connection replaces the old one), with these
// messages (unix-fds.ts):
//   {op:'relay', id, idleMs, rec} + 2 fds  relay the pair (client, backend) from now on
//   {op:'keep', id, rec} + 2 fds           keep the pair (a pair kept under the same id is dropped first)
//   {op:'drop', id}                        close a kept pair's descriptors (the daemon closed the pair)
//   {op:'list'}                            answered with {id, rec} + 2 fds per kept pair, {id, rec,
//                                          relayed:true} per relayed pair, then {end:true}
//   {op:'stop'}                            reset every relayed pair (a FIN would pass a cut stream
//                                          for a whole one), close every kept one, exit (`lb down`)
//   {op:'detach'}                          answered with {end:true}: the daemon stops, and reports
//                                          no end from now on (the connection still takes relay,
//                                          keep and drop)
// and it sends, whenever a relayed pair ends, {op:'end', id, up, down, reason, by?, rec}: to the
// daemon connected then unless it detached, or else to the next one (in order, at most ENDS_MAX
// waiting). An end sent is the daemon's: one it has not read when it closes the connection is
// lost, hence the detach, whose answer comes after every end sent to it.
// No reply otherwise: a relay or keep costs the daemon one sendmsg, and the descriptors in flight
// are held by the kernel from then on, so a daemon killed right after still leaves them here.

import { PipeRelay, type PairEnd } from './pipe-relay.js';
import { acceptReady, closeFd, receiveMessageNow, sendMessage } from './unix-fds.js';

const LISTEN_FD = 3;
/** Ends kept for a daemon that is not connected (a restart); the oldest go first past this. */
const ENDS_MAX = 100_000;
/** The longest epoll wait when nothing is due (idle deadlines shorten it). */
const POLL_MS = 1000;

interface Kept { fds: number[]; rec: unknown }
const kept = new Map<string, Kept>();
/** Relayed pairs: id -> the daemon's record, sent back with the pair's end. */
const relayed = new Map<string, unknown>();
const ends: Array<PairEnd & { rec: unknown }> = [];
const relay = new PipeRelay();
let conn = -1;
/** The connected daemon detached: its ends wait for the next one. */
let detached = false;

function drop(id: string): void {
  const p = kept.get(id);
  if (!p) return;
  for (const fd of p.fds) closeFd(fd);
  kept.delete(id);
}

function disconnect(): void {
  if (conn < 0) return;
  relay.unwatch(conn);
  closeFd(conn);
  conn = -1;
}

/** Sends the waiting ends without blocking; what does not fit now waits for the next poll. */
function flushEnds(): void {
  while (conn >= 0 && !detached && ends.length > 0) {
    if (!sendMessage(conn, { op: 'end', ...ends[0] }, [], true)) return;
    ends.shift();
  }
}

/** Handles one message; false when the connection is gone. */
function handle(got: { message: unknown; fds: number[] }): boolean {
  const m = got.message as { op?: unknown; id?: unknown; rec?: unknown; idleMs?: unknown } | null;
  const id = typeof m?.id === 'string' ? m.id : undefined;
  if (m?.op === 'relay' && id !== undefined && got.fds.length === 2 && typeof m.idleMs === 'number' && m.idleMs > 0 && !relayed.has(id)) {
    try {
      relay.add(id, got.fds[0]!, got.fds[1]!, m.idleMs);
      relayed.set(id, m.rec);
    } catch {
      // add() reset and closed both sockets: the daemon hears of it as of any reset.
      ends.push({ id, up: 0, down: 0, reason: 'reset', rec: m.rec });
    }
    return true;
  }
  if (m?.op === 'keep' && id !== undefined && got.fds.length === 2) {
    drop(id);
    kept.set(id, { fds: got.fds, rec: m.rec });
    return true;
  }
  // Descriptors that came with anything else are not kept.
  for (const fd of got.fds) closeFd(fd);
  if (m?.op === 'drop' && id !== undefined) drop(id);
  else if (m?.op === 'stop') {
    relay.close();
    process.exit(0);
  } else if (m?.op === 'list') {
    for (const [pid, p] of kept) if (!sendMessage(conn, { id: pid, rec: p.rec }, p.fds)) return false;
    for (const [pid, rec] of relayed) if (!sendMessage(conn, { id: pid, rec, relayed: true })) return false;
    if (!sendMessage(conn, { end: true })) return false;
  } else if (m?.op === 'detach') {
    // Ends of this poll not sent yet (flushEnds runs after serving) wait for the next daemon too.
    detached = true;
    if (!sendMessage(conn, { end: true })) return false;
  }
  return true;
}

/** Handles up to `max` messages waiting on the connection now; level-triggered epoll reports the rest. */
function serve(max: number): void {
  for (let i = 0; conn >= 0 && i < max; i++) {
    const got = receiveMessageNow(conn);
    if (got === 'empty') return;
    if (got === null || !handle(got)) {
      disconnect();
      return;
    }
  }
}

relay.watch(LISTEN_FD);
for (;;) {
  const { ended, ready } = relay.poll(POLL_MS);
  for (const e of ended) {
    ends.push({ ...e, rec: relayed.get(e.id) });
    relayed.delete(e.id);
  }
  if (ends.length > ENDS_MAX) ends.splice(0, ends.length - ENDS_MAX);
  for (const fd of ready) {
    if (fd === LISTEN_FD) {
      const next = acceptReady(LISTEN_FD);
      if (next < 0) continue;
      // One daemon at a time: a new connection means the previous daemon is gone. What it sent
      // before it went is handled first (its last keep or relay), as when connections were served in turn.
      serve(Infinity);
      disconnect();
      conn = next;
      detached = false;
      relay.watch(conn);
      continue;
    }
    if (fd === conn) serve(256);
  }
  flushEnds();
}
