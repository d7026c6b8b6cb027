// Descriptors passed between processes over a unix SOCK_SEQPACKET socket (SCM_RIGHTS), through
// libc with koffi: Node's net module cannot send or receive descriptors. One message is one JSON
// document, with the descriptors it names attached. Every call here is synchronous and blocking
// (bounded by the socket's SO_SNDTIMEO/SO_RCVTIMEO where the caller set them): the pair keeper
// (pair-keeper-main.ts) is a loop that does nothing else, and the daemon's messages are small.

import { errno, failed as fail, libc } from '../sys/libc.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const SO_RCVTIMEO = 20;
const SO_SNDTIMEO = 21;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
/** struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type (int); data follows at 16 on 64-bit Linux. */
const CMSG_HEADER = 16;
/** Descriptors one message may carry here (a pair's two). */
export const MAX_FDS = 2;
/** The largest message (JSON) sent or received. */
export const MAX_MESSAGE = 64 * 1024;

export function closeFd(fd: number): void {
  libc().close(fd);
}

function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) throw new Error(`unix socket path too long: ${path}`);
  const addr = Buffer.alloc(2 + 108);
  addr.writeUInt16LE(AF_UNIX, 0);
  p.copy(addr, 2);
  return addr;
}

/** A listening SOCK_SEQPACKET socket at `path` (created; the caller removes a stale file first). */
export function listenSeqpacket(path: string): number {
  return listenUnix(path, SOCK_SEQPACKET);
}

/** A listening SOCK_STREAM socket at `path` (the native door's control socket: door-process.ts). */
export function listenUnixStream(path: string): number {
  return listenUnix(path, SOCK_STREAM);
}

function listenUnix(path: string, type: number): number {
  const fd = libc().socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket(AF_UNIX)');
  const addr = sockaddrUn(path);
  if (libc().bind(fd, addr, addr.length) !== 0 || libc().listen(fd, 8) !== 0) {
    closeFd(fd);
    fail(`bind/listen ${path}`);
  }
  return fd;
}

/** A connected socket to `path`, whose sends and receives give up after timeoutMs. */
export function connectSeqpacket(path: string, timeoutMs: number): number {
  const fd = libc().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket(AF_UNIX)');
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
  tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
  libc().setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16);
  libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  const addr = sockaddrUn(path);
  if (libc().connect(fd, addr, addr.length) !== 0) {
    closeFd(fd);
    fail(`connect ${path}`);
  }
  return fd;
}

/** Blocks until a connection arrives (retries EINTR); -1 on another error. */
export function acceptBlocking(fd: number): number {
  for (;;) {
    const conn = libc().accept4(fd, null, null, SOCK_CLOEXEC);
    if (conn >= 0 || errno() !== EINTR) return conn;
  }
}

/**
 * Sends one message with `fds` attached (the kernel holds them from now on); false when it failed.
 * `dontWait`: fail at once rather than wait for room (a loop that must not stall on its reader).
 */
export function sendMessage(fd: number, message: unknown, fds: readonly number[] = [], dontWait = false): boolean {
  const data = Buffer.from(JSON.stringify(message));
  if (data.length > MAX_MESSAGE || fds.length > MAX_FDS) return false;
  let control: Buffer | null = null;
  if (fds.length > 0) {
    control = Buffer.alloc(CMSG_HEADER + 8);
    control.writeBigUInt64LE(BigInt(CMSG_HEADER + 4 * fds.length), 0);
    control.writeInt32LE(SOL_SOCKET, 8);
    control.writeInt32LE(SCM_RIGHTS, 12);
    fds.forEach((f, i) => control!.writeInt32LE(f, CMSG_HEADER + 4 * i));
  }
  const msg = {
    msg_name: null, msg_namelen: 0, msg_iov: [{ iov_base: data, iov_len: data.length }], msg_iovlen: 1,
    msg_control: control, msg_controllen: control ? control.length : 0, msg_flags: 0,
  };
  for (;;) {
    const n = Number(libc().sendmsg(fd, msg, MSG_NOSIGNAL | (dontWait ? MSG_DONTWAIT : 0)));
    if (n === data.length) return true;
    if (n >= 0 || errno() !== EINTR) return false;
  }
}

/**
 * Receives one message and the descriptors attached to it (close-on-exec in this process). null:
 * the peer closed the connection, or an error (a timeout included).
 */
export function receiveMessage(fd: number): { message: unknown; fds: number[] } | null {
  const got = receive(fd, 0);
  return got === 'empty' ? null : got;
}

/** receiveMessage without waiting: 'empty' when no message is there now. */
export function receiveMessageNow(fd: number): { message: unknown; fds: number[] } | null | 'empty' {
  return receive(fd, MSG_DONTWAIT);
}

/** accept4 for a listening socket that epoll reported readable (a connection waits); -1 on an error. */
export function acceptReady(fd: number): number {
  for (;;) {
    const conn = libc().accept4(fd, null, null, SOCK_CLOEXEC);
    if (conn >= 0 || errno() !== EINTR) return conn;
  }
}

/** One receive buffer for the process: a message is parsed out of it before the next receive (all of this is synchronous). */
let receiveData: Buffer | undefined;

function receive(fd: number, flags: number): { message: unknown; fds: number[] } | null | 'empty' {
  receiveData ??= Buffer.allocUnsafe(MAX_MESSAGE);
  const data = receiveData;
  const control = Buffer.alloc(64);
  const msg = {
    msg_name: null, msg_namelen: 0, msg_iov: [{ iov_base: data, iov_len: data.length }], msg_iovlen: 1,
    msg_control: control, msg_controllen: control.length, msg_flags: 0,
  };
  let n: number;
  for (;;) {
    n = Number(libc().recvmsg(fd, msg, MSG_CMSG_CLOEXEC | flags));
    if (n >= 0 || errno() !== EINTR) break;
  }
  if (n < 0 && (flags & MSG_DONTWAIT) !== 0 && errno() === EAGAIN) return 'empty';
  if (n <= 0) return null;
  const fds: number[] = [];
  const controlLength = Number(msg.msg_controllen);
  if (controlLength >= CMSG_HEADER && control.readInt32LE(8) === SOL_SOCKET && control.readInt32LE(12) === SCM_RIGHTS) {
    const count = (Number(control.readBigUInt64LE(0)) - CMSG_HEADER) / 4;
    for (let i = 0; i < count; i++) fds.push(control.readInt32LE(CMSG_HEADER + 4 * i));
  }
  try {
    return { message: JSON.parse(data.subarray(0, n).toString()) as unknown, fds };
  } catch {
    for (const f of fds) closeFd(f);
    return { message: null, fds: [] };
  }
}
