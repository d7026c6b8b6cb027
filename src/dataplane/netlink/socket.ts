// A raw netlink socket through koffi (libc socket/bind/send/recv/setsockopt/close): one request,
// its replies collected with a bounded loop. Framing and decoding live in codec.ts.
//
// The socket belongs to the network namespace of the calling thread at socket() time, which is why
// this is used instead of sysfs: under `nsenter --net` or inside withNetns() (src/sandbox/netns.ts)
// it sees that namespace's links. All calls are synchronous on the calling thread.
//
// Every wait is bounded: SO_RCVTIMEO makes a silent kernel a timeout error, and the number of
// datagrams and the total time per request are capped, so a misbehaving reply cannot hang lb.

import { errno, libc } from '../../sys/libc.js';
import { LbError } from '../../core/errors.js';
import { errnoName } from '../libbpf.js';
import {
  decodeDone, decodeError, NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN,
  parseMessages, type NlMessage,
} from './codec.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20; // x86-64 and arm64: struct timeval { long tv_sec; long tv_usec; }
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10; // errors do not echo the whole request back
const NETLINK_EXT_ACK = 11; // errors carry the kernel's explanation (NLMSGERR_ATTR_MSG)
const MSG_PEEK = 2;
const MSG_TRUNC = 0x20;
const EINTR = 4;
const EAGAIN = 11;

/** Per recv() wait. */
const RECV_TIMEOUT_MS = 2000;
/** Per request, all datagrams together. */
const REQUEST_TIMEOUT_MS = 10_000;
/** A dump of even thousands of links is a few hundred datagrams. */
const MAX_DATAGRAMS = 100_000;
const MAX_EINTR = 100;
/** The kernel's dump datagrams are at most ~32 KiB; anything larger is refused as malformed. */
const MAX_DATAGRAM = 1 << 20;

const PROTOCOL_NAMES: Record<number, string> = { 0: 'NETLINK_ROUTE', 16: 'NETLINK_GENERIC' };

/**
 * A failed call or an NLMSG_ERROR answer: `<what> failed: <text> (<ENAME>)[: kernel: <extack>]`,
 * errno in data and in `errno` for callers that branch on it (ENODEV: no such link). Text comes
 * from libc's strerror, so an expected "not found" costs no libbpf load.
 */
export class NetlinkError extends LbError {
  readonly errno: number;
  constructor(what: string, errno: number, kernelMessage?: string) {
    const name = errnoName(errno);
    const text = libc().strerror(errno);
    super('LB_NET_IFACE', `${what} failed: ${text} (${name})${kernelMessage ? `: kernel: ${kernelMessage}` : ''}`,
      { errno, errnoName: name, errnoText: text, ...(kernelMessage ? { kernelMessage } : {}) });
    this.errno = errno;
  }
}

export class NetlinkSocket {
  private fd: number;
  private seq: number;

  private constructor(fd: number) {
    this.fd = fd;
    this.seq = (Date.now() & 0x3fffffff) + 1;
  }

  /** socket + options + bind (port id chosen by the kernel), in the calling thread's namespace. */
  static open(protocol: number): NetlinkSocket {
    const c = libc();
    const name = PROTOCOL_NAMES[protocol] ?? String(protocol);
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new NetlinkError(`socket(AF_NETLINK, ${name})`, errno());
    const sock = new NetlinkSocket(fd);
    try {
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(BigInt(Math.floor(RECV_TIMEOUT_MS / 1000)), 0);
      tv.writeBigInt64LE(BigInt((RECV_TIMEOUT_MS % 1000) * 1000), 8);
      sock.setOpt(SOL_SOCKET, SO_RCVTIMEO, tv, 'SO_RCVTIMEO');
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      // Both are conveniences (shorter errors, with text); kernels without them still work.
      c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
      c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
      const addr = Buffer.alloc(12); // struct sockaddr_nl { u16 family; u16 pad; u32 pid (0: kernel assigns); u32 groups; }
      addr.writeUInt16LE(AF_NETLINK, 0);
      if (c.bind(fd, addr, addr.length) !== 0) throw new NetlinkError(`bind(${name})`, errno());
    } catch (err) {
      sock.close();
      throw err;
    }
    return sock;
  }

  /** A fresh sequence number for the next request. */
  nextSeq(): number {
    this.seq = (this.seq + 1) & 0x7fffffff;
    return this.seq;
  }

  /**
   * Sends one request (built with `seq`) and returns its data messages. A dump ends at NLMSG_DONE;
   * a single request at its first non-multipart answer. NLMSG_ERROR with an errno throws
   * NetlinkError. `interrupted` is NLM_F_DUMP_INTR: the dump was inconsistent, ask again.
   */
  request(msg: Buffer, seq: number, what: string, dump: boolean): { messages: NlMessage[]; interrupted: boolean } {
    const c = libc();
    const sent = c.send(this.fd, msg, msg.length, 0);
    if (sent < 0) throw new NetlinkError(`send(${what})`, errno());
    if (sent !== msg.length) throw new LbError('LB_NET_IFACE', `send(${what}) sent ${sent} of ${msg.length} bytes`, {});
    const out: NlMessage[] = [];
    let interrupted = false;
    const deadline = Date.now() + REQUEST_TIMEOUT_MS;
    for (let n = 0; n < MAX_DATAGRAMS; n++) {
      for (const m of parseMessages(this.recvDatagram(what))) {
        if (m.seq !== seq) continue; // an answer to an earlier request that gave up: not ours
        if ((m.flags & NLM_F_DUMP_INTR) !== 0) interrupted = true;
        if (m.type === NLMSG_ERROR) {
          const e = decodeError(m);
          if (e.errno !== 0) throw new NetlinkError(what, e.errno, e.message);
          return { messages: out, interrupted }; // an ACK ends a request
        }
        if (m.type === NLMSG_DONE) {
          const code = decodeDone(m);
          if (code !== 0) throw new NetlinkError(what, code);
          return { messages: out, interrupted };
        }
        if (m.type === NLMSG_OVERRUN) throw new LbError('LB_NET_IFACE', `${what}: netlink overrun (data lost)`, {});
        if (m.type === NLMSG_NOOP) continue;
        out.push(m);
        if (!dump && (m.flags & NLM_F_MULTI) === 0) return { messages: out, interrupted };
      }
      if (Date.now() > deadline) break;
    }
    throw new LbError('LB_NET_IFACE', `${what}: no end of the reply within ${REQUEST_TIMEOUT_MS} ms / ${MAX_DATAGRAMS} datagrams`, {});
  }

  /** One datagram: its size first (MSG_PEEK | MSG_TRUNC returns the real length), then the bytes. */
  private recvDatagram(what: string): Buffer {
    const c = libc();
    for (let attempt = 0; attempt < MAX_EINTR; attempt++) {
      const size = c.recv(this.fd, null, 0, MSG_PEEK | MSG_TRUNC);
      if (size < 0) {
        const code = errno();
        if (code === EINTR) continue;
        if (code === EAGAIN) throw new NetlinkError(`recv(${what}) (no answer within ${RECV_TIMEOUT_MS} ms)`, code);
        throw new NetlinkError(`recv(${what})`, code);
      }
      if (size > MAX_DATAGRAM) throw new LbError('LB_NET_IFACE', `recv(${what}): ${size}-byte datagram is larger than ${MAX_DATAGRAM}`, {});
      const buf = Buffer.alloc(size);
      const got = c.recv(this.fd, buf, size, 0);
      if (got < 0) {
        const code = errno();
        if (code === EINTR) continue;
        throw new NetlinkError(`recv(${what})`, code);
      }
      return buf.subarray(0, got);
    }
    throw new LbError('LB_NET_IFACE', `recv(${what}) interrupted ${MAX_EINTR} times`, {});
  }

  private setOpt(level: number, name: number, val: Buffer, what: string): void {
    if (libc().setsockopt(this.fd, level, name, val, val.length) !== 0) throw new NetlinkError(`setsockopt(${what})`, errno());
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}

/** Runs fn with a socket of this protocol, closed afterwards whatever happens. */
export function withNetlink<T>(protocol: number, fn: (sock: NetlinkSocket) => T): T {
  const sock = NetlinkSocket.open(protocol);
  try {
    return fn(sock);
  } finally {
    sock.close();
  }
}
