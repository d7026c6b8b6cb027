// The in-kernel relay (bpf/lb_splice.bpf.c): a client and its backend socket spliced through two
// sockhashes, so the kernel moves their bytes and Node sees only FIN and RST. Open fails (the
// caller keeps the plain relay) on a kernel without sockmap stream verdicts.
//
// No byte may be lost or reordered around the hand-over from Node to the kernel, so pair() runs
// synchronously (Node reads no socket meanwhile) in this order:
// 1. the caller has written, and the kernel taken, every byte Node had for the backend (PROXY
//    header, replayed hello, client bytes Node buffered): checked, else no splice;
// 2. both sockets enter lb_splice_peers (redirect targets, no program) and lb_splice_peer names
//    each one's peer;
// 3. both enter lb_splice_socks, whose verdict redirects; from then on every byte a socket
//    receives goes to its peer's egress;
// 4. bytes that arrived before 3 wait in the socket's receive queue, where Node would read them
//    (tcp_bpf_recvmsg falls back to tcp_recvmsg); setting SO_RCVLOWAT runs tcp_data_ready, i.e.
//    the psock's data_ready, which feeds the whole queue to the verdict, in order.
// Before 1, the caller empties both receive queues (takeReceiveQueue): the verdict is fed whole
// skbs (tcp_read_skb ignores how much of the first one a read already consumed), so an skb Node
// had read in part would go to the peer whole and repeat what Node relayed. A client that sent
// data right behind its hello got 65,590 bytes twice (Node reads 64 KiB at a time).
//
// A FIN is passed on once the peer's TCP holds every byte meant for it (drained()): the peer's
// psock may still queue redirected bytes when Node reads the EOF, and a shutdown(SHUT_WR) then
// would send the FIN before them and fail the psock's later sends (EPIPE: the rest is dropped).
//
// Backpressure never takes a socket out of lb_splice_socks while it may receive: the kernel runs
// a socket's verdict from its receive path without the lock a map delete takes, and a receive
// that finds the program gone drops the skb (sk_psock_verdict_recv: no program, __SK_DROP). That
// was the 1 GiB echo's corruption under load. Instead divert() makes the verdict pass the
// socket's bytes to its own psock (charged to its receive buffer: TCP's window closes while Node
// does not read them); once the peer drained, Node reads and relays them (resume()), ahead of
// nothing, as the kernel sends no more of that socket's bytes to the peer. Both sockets of a pair
// are diverted together: passed bytes queued in a psock between bytes still redirected to that
// socket came back corrupted (repeats of 24 bytes to 128 KiB; docs/sni.md).
import { join } from 'node:path';
import type { Socket } from 'node:net';
import koffi from 'koffi';
import { BPF_ANY, BPF_NOEXIST, check, closeFd, native } from '../dataplane/libbpf.js';
import { loadAndPin, objGet, type ObjectSpec } from '../dataplane/loader.js';
import { errno, libc } from '../sys/libc.js';
import type { PairKeeper } from './pair-keeper.js';

const BPF_PROG_TYPE_SK_SKB = 14;
const BPF_SK_SKB_STREAM_VERDICT = 5;
const SOL_SOCKET = 1;
const SO_RCVLOWAT = 18;
const SO_COOKIE = 57;
const IPPROTO_TCP = 6;
const TCP_INFO = 11;
/** struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a __u64 at offset 120. */
const TCPI_BYTES_ACKED = 120;
/** ioctl: bytes in a TCP socket's write queue, sent or not, not yet acknowledged. */
const SIOCOUTQ = 0x5411;
const MAP_PEER = 'lb_splice_peer';
const MAP_TARGETS = 'lb_splice_peers';
const MAP_SOURCES = 'lb_splice_socks';
const MAP_DIVERT = 'lb_splice_divert';
const MSG_DONTWAIT = 0x40;
/** struct lb_splice_peer (bpf/include/lb_sni_abi.h): peer cookie, bytes redirected; both u64. */
const PEER_VALUE_SIZE = 16;

const SPEC: ObjectSpec<'splice'> = {
  object: 'lb_splice.bpf.o',
  programs: [{ kind: 'splice', program: 'lb_splice_verdict', pin: 'prog_splice', type: BPF_PROG_TYPE_SK_SKB }],
  tracepoints: [],
};

let progAttach: ((prog: number, target: number, type: number, flags: number) => number) | undefined;
function bpfProgAttach(prog: number, target: number, type: number, flags: number): number {
  progAttach ??= koffi.load('libbpf.so.1').func('int bpf_prog_attach(int prog_fd, int target_fd, int type, unsigned int flags)') as typeof bpfProgAttach;
  return progAttach(prog, target, type, flags);
}

function fdOf(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket without a file descriptor');
  return fd;
}

function cookieOf(fd: number): Buffer {
  const value = Buffer.alloc(8);
  if (libc().getsockopt(fd, SOL_SOCKET, SO_COOKIE, value, [8]) !== 0) throw new Error('getsockopt(SO_COOKIE) failed');
  return value;
}

/**
 * Every byte ever written into a TCP socket's write queue: acknowledged (tcpi_bytes_acked) plus
 * not yet (SIOCOUTQ), or -1. Read in that order, the sum never exceeds the true count.
 */
export function bytesQueued(s: Socket): number {
  const info = Buffer.alloc(256);
  const len: [number] = [info.length];
  const outq: [number] = [0];
  try {
    const fd = fdOf(s);
    if (libc().getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0 || len[0]! < TCPI_BYTES_ACKED + 8) return -1;
    if (libc().ioctl(fd, SIOCOUTQ, outq) !== 0) return -1;
  } catch {
    return -1;
  }
  return Number(info.readBigUInt64LE(TCPI_BYTES_ACKED)) + outq[0]!;
}

/** A bound on what takeReceiveQueue reads (a sender faster than the loop keeps the queue full). */
const RECEIVE_QUEUE_MAX = 4 * 1024 * 1024;
const EAGAIN = 11;

/**
 * Reads what waits in a socket's receive queue, without blocking, until it is empty. `empty`: the
 * last read found no byte (EAGAIN); not so after an EOF, an error, or RECEIVE_QUEUE_MAX bytes
 * (then the socket must not be spliced). Node reads no socket meanwhile (this is synchronous), and
 * a later read of its own finds the EOF again.
 */
export function takeReceiveQueue(s: Socket): { chunks: Buffer[]; empty: boolean } {
  const chunks: Buffer[] = [];
  let fd: number;
  try {
    fd = fdOf(s);
  } catch {
    return { chunks, empty: false };
  }
  for (let total = 0; total < RECEIVE_QUEUE_MAX;) {
    const buf = Buffer.allocUnsafe(64 * 1024);
    const got = libc().recv(fd, buf, buf.length, MSG_DONTWAIT);
    if (got > 0) {
      chunks.push(buf.subarray(0, got));
      total += got;
      continue;
    }
    return { chunks, empty: got < 0 && errno() === EAGAIN };
  }
  return { chunks, empty: false };
}

export interface SplicedPair {
  /** Bytes the kernel moved so far: up (received from the client), down (from the backend). */
  moved(): { up: number; down: number };
  /**
   * Whether `to` (the client or the backend) has taken into its TCP write queue every byte meant
   * for it: what Node wrote plus what the kernel redirected to it. Unknown (socket gone): true.
   */
  drained(to: Socket): boolean;
  /** Bytes meant for `to` not yet in its TCP write queue (its psock's queue), or -1 when unknown. */
  backlog(to: Socket): number;
  /**
   * Backpressure for `from`'s bytes: Node stops reading it and the verdict passes what it receives
   * to its own receive queue (charged to its buffer when its psock has nothing else queued: TCP's
   * window closes on its sender) instead of the peer. For good: this direction is Node's from now
   * on. The relay diverts both sockets of a pair at once (relay.ts: watchBacklog).
   */
  divert(from: Socket): boolean;
  /** Bytes the verdict passed to `from` itself since divert(from). */
  passed(from: Socket): number;
  /** Node reads the diverted `from` again (call once its peer drained: nothing to overtake). */
  resume(from: Socket): boolean;
  /**
   * Reads what the verdict passed to `from` that Node's stream did not get before its EOF (the
   * psock may deliver passed bytes after the FIN reached the socket), without waiting: null when
   * nothing is there now.
   */
  readRest(from: Socket): Buffer | null;
  /** Forgets the pair (the sockets leave the sockhashes by themselves when they close); the keeper drops it. */
  remove(): void;
  /** Whether the pair keeper holds the pair's sockets (it then outlives this process). */
  kept(): boolean;
  /**
   * For a daemon that stops: a kept pair stays in the maps and with the keeper for the next daemon
   * (remove() does nothing from then on); true when kept, false (nothing changed) otherwise.
   */
  detach(): boolean;
}

/** What the keeper records of a pair besides the caller's own record (splice.ts's part). */
export interface KeptSplice {
  /** The sockets' cookies (client, backend), hex. */
  cookies: [string, string];
  /** Per socket (client, backend): bytes queued in its TCP write queue at the splice that were not the kernel's (the FIN hand-off's base). */
  bases: [number, number];
  rec: unknown;
}

export class Splicer {
  /** Keeps spliced pairs' sockets outside this process (pair-keeper.ts); null: pairs end with it. */
  keeper: PairKeeper | null = null;

  private constructor(private readonly peerFd: number, private readonly targetsFd: number, private readonly sourcesFd: number,
    private readonly divertFd: number) {}

  /** Loads lb_splice into dir and attaches its verdict; throws where the kernel cannot (the caller relays in Node). */
  static open(dir: string, objectDir: string): Splicer {
    loadAndPin(SPEC, objectDir, dir);
    const fds: number[] = [];
    try {
      const prog = objGet(join(dir, SPEC.programs[0]!.pin), { program: SPEC.programs[0]!.program });
      fds.push(prog);
      for (const m of [MAP_PEER, MAP_TARGETS, MAP_SOURCES, MAP_DIVERT]) fds.push(objGet(join(dir, m), { map: m }));
      check(bpfProgAttach(prog, fds[3]!, BPF_SK_SKB_STREAM_VERDICT, 0), 'LB_BPF_ATTACH', `attaching lb_splice_verdict to ${MAP_SOURCES}`, { map: MAP_SOURCES });
    } catch (err) {
      for (const fd of fds) closeFd(fd);
      throw err;
    }
    closeFd(fds[0]!);
    const splicer = new Splicer(fds[1]!, fds[2]!, fds[3]!, fds[4]!);
    splicer.prune();
    return splicer;
  }

  /**
   * Splices client and backend; null (nothing changed: Node relays them) when a precondition does
   * not hold or the kernel refuses. The caller has not let Node read either socket since it last
   * looked at their buffers (this runs synchronously).
   */
  pair(client: Socket, backend: Socket, rec: unknown = null): SplicedPair | null {
    // Bytes Node holds for the other side would have to go out before the kernel's.
    if (client.readableLength > 0 || backend.readableLength > 0 || backend.writableLength > 0 || client.writableLength > 0) return null;
    const n = native();
    let clientFd: number, backendFd: number, a: Buffer, b: Buffer;
    try {
      clientFd = fdOf(client);
      backendFd = fdOf(backend);
      a = cookieOf(clientFd);
      b = cookieOf(backendFd);
    } catch {
      return null;
    }
    // tcpi_bytes_acked counts the SYN of an active open (the backend socket): what the queue held
    // before the splice beyond what Node wrote is that offset, not data. Taken before the verdict
    // can move a byte (the flush below may send some at once).
    const offset = new Map([client, backend].map((sock) => [sock, Math.max(0, bytesQueued(sock) - sock.bytesWritten)]));
    const entry = (peer: Buffer): Buffer => { const v = Buffer.alloc(PEER_VALUE_SIZE); peer.copy(v, 0); return v; };
    const fdValue = (fd: number): Buffer => { const v = Buffer.alloc(8); v.writeBigUInt64LE(BigInt(fd)); return v; };
    // The keeper gets both sockets before the first byte moves in the kernel: from then on a
    // daemon killed at any moment leaves the pair open (docs/sni.md).
    const id = a.toString('hex');
    const kept: KeptSplice = { cookies: [id, b.toString('hex')], bases: [offset.get(client)! + client.bytesWritten, offset.get(backend)! + backend.bytesWritten], rec };
    const keeping = this.keeper?.keep(id, [clientFd, backendFd], kept) ?? false;
    const remove = (): void => {
      for (const fd of [this.sourcesFd, this.targetsFd, this.peerFd, this.divertFd]) for (const k of [a, b]) n.bpf_map_delete_elem(fd, k);
      if (keeping) this.keeper?.drop(id);
    };
    const steps: Array<[number, Buffer, Buffer]> = [
      [this.peerFd, a, entry(b)], [this.peerFd, b, entry(a)],
      [this.targetsFd, a, fdValue(clientFd)], [this.targetsFd, b, fdValue(backendFd)],
      [this.sourcesFd, a, fdValue(clientFd)], [this.sourcesFd, b, fdValue(backendFd)],
    ];
    for (const [i, [fd, key, value]] of steps.entries()) {
      if (n.bpf_map_update_elem(fd, key, value, BPF_ANY) === 0) continue;
      // Before the client is a source nothing moved: undo. After, its bytes may already be on
      // their way to the backend: keep that half spliced, Node relays the backend's bytes.
      if (i < steps.length - 1) {
        remove();
        return null;
      }
    }
    // Flush what arrived before the verdict was there (see the top of the file).
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    libc().setsockopt(clientFd, SOL_SOCKET, SO_RCVLOWAT, one, 4);
    libc().setsockopt(backendFd, SOL_SOCKET, SO_RCVLOWAT, one, 4);
    return this.handle(client, backend, a, b, offset, remove, keeping);
  }

  /**
   * Re-learns a pair a previous process spliced and its keeper kept (`client`, `backend`: new
   * sockets on the kept descriptors); null when they are not that pair or it is no longer spliced
   * (the caller closes them and has the keeper drop the pair). Nothing is added to a map.
   */
  adopt(client: Socket, backend: Socket, kept: KeptSplice): SplicedPair | null {
    const n = native();
    let a: Buffer, b: Buffer;
    try {
      a = cookieOf(fdOf(client));
      b = cookieOf(fdOf(backend));
    } catch {
      return null;
    }
    if (a.toString('hex') !== kept.cookies[0] || b.toString('hex') !== kept.cookies[1]) return null;
    const v = Buffer.alloc(8);
    if (n.bpf_map_lookup_elem(this.sourcesFd, a, v) !== 0 || n.bpf_map_lookup_elem(this.sourcesFd, b, v) !== 0) return null;
    // A diverted pair had bytes in Node's buffers (the keeper should have dropped it): not whole.
    if (n.bpf_map_lookup_elem(this.divertFd, a, v) === 0 || n.bpf_map_lookup_elem(this.divertFd, b, v) === 0) return null;
    // These sockets have written nothing yet: the bases are the whole of what was not the kernel's.
    const offset = new Map([[client, kept.bases[0]], [backend, kept.bases[1]]]);
    const id = kept.cookies[0];
    const remove = (): void => {
      for (const fd of [this.sourcesFd, this.targetsFd, this.peerFd, this.divertFd]) for (const k of [a, b]) n.bpf_map_delete_elem(fd, k);
      this.keeper?.drop(id);
    };
    return this.handle(client, backend, a, b, offset, remove, this.keeper !== null);
  }

  private handle(client: Socket, backend: Socket, a: Buffer, b: Buffer, offset: Map<Socket, number>, forget: () => void, keeping: boolean): SplicedPair {
    const n = native();
    let kept = keeping;
    let detached = false;
    const remove = (): void => {
      if (detached) return;
      forget();
      kept = false;
    };
    const bytes = (key: Buffer): number => {
      const v = Buffer.alloc(PEER_VALUE_SIZE);
      return n.bpf_map_lookup_elem(this.peerFd, key, v) === 0 ? Number(v.readBigUInt64LE(8)) : 0;
    };
    const moved = (): { up: number; down: number } => ({ up: bytes(a), down: bytes(b) });
    const backlog = (to: Socket): number => {
      const m = moved();
      const q = bytesQueued(to);
      return q < 0 ? -1 : Math.max(0, to.bytesWritten + (to === backend ? m.up : m.down) - (q - (offset.get(to) ?? 0)));
    };
    type Handle = { readStop(): number; readStart(): number; reading?: boolean };
    const handleOf = (sock: Socket): Handle | undefined => (sock as unknown as { _handle?: Handle })._handle;
    const passed = (from: Socket): number => {
      const v = Buffer.alloc(8);
      return n.bpf_map_lookup_elem(this.divertFd, from === client ? a : b, v) === 0 ? Number(v.readBigUInt64LE(0)) : 0;
    };
    return {
      moved,
      backlog,
      drained: (to) => backlog(to) <= 0,
      divert: (from) => {
        const h = handleOf(from);
        if (!h) return false;
        // A diverted direction's bytes pass through Node, whose buffers end with it: the pair no
        // longer survives a restart (the keeper lets go; the sockets stay this process's).
        if (kept) {
          this.keeper?.drop(a.toString('hex'));
          kept = false;
        }
        // Node's own flag stays 'reading', so its stream does not restart the read itself.
        h.readStop();
        // Nothing else is taken out of a map: the verdict decides per skb (the top of the file).
        return n.bpf_map_update_elem(this.divertFd, from === client ? a : b, Buffer.alloc(8), BPF_NOEXIST) === 0;
      },
      passed,
      resume: (from) => {
        const h = handleOf(from);
        if (!h) return false;
        h.reading = true;
        h.readStart();
        return true;
      },
      readRest: (from) => {
        const buf = Buffer.alloc(64 * 1024);
        try {
          const got = libc().recv(fdOf(from), buf, buf.length, MSG_DONTWAIT);
          return got > 0 ? buf.subarray(0, got) : null;
        } catch {
          return null;
        }
      },
      remove,
      kept: () => kept,
      detach: () => {
        if (kept) detached = true;
        return kept;
      },
    };
  }

  close(): void {
    for (const fd of [this.peerFd, this.targetsFd, this.sourcesFd, this.divertFd]) closeFd(fd);
  }

  /** Drops peer entries a previous process left for sockets that are gone (they left the sockhash when they closed). */
  private prune(): void {
    const n = native();
    const stale: Buffer[] = [];
    let prev: Buffer | null = null;
    const cookie = Buffer.alloc(8);
    for (let i = 0; i < 2 * 65536; i++) {
      const next = Buffer.alloc(8);
      if (n.bpf_map_get_next_key(this.peerFd, prev, next) !== 0) break;
      if (n.bpf_map_lookup_elem(this.sourcesFd, next, cookie) !== 0) stale.push(next);
      prev = next;
    }
    for (const k of stale) for (const fd of [this.peerFd, this.divertFd]) n.bpf_map_delete_elem(fd, k);
  }
}
