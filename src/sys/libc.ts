// The C library calls Node does not offer (descriptor passing, epoll, splice, socket options by
// number, pidfd, mmap), declared once through koffi and bound on first use (per thread: a worker
// that imports this binds its own). Each takes what its C prototype does: a Buffer for a `void *`
// and for an out-struct, a one-element array for an `int *` or `uint32_t *` in or out. The callers
// own their constants and their error messages; errno() reads the last call's.

import koffi from 'koffi';

export interface Libc {
  close(fd: number): number;
  dup(fd: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  listen(fd: number, backlog: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  accept4(fd: number, addr: null, len: null, flags: number): number;
  shutdown(fd: number, how: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  /** `buf` null with len 0: MSG_PEEK | MSG_TRUNC asks a datagram's size. */
  recv(fd: number, buf: Buffer | null, len: number, flags: number): number;
  /** `msg`: a struct msghdr as a JS object (lb_msghdr: msg_iov an array of {iov_base, iov_len}). */
  sendmsg(fd: number, msg: unknown, flags: number): number;
  recvmsg(fd: number, msg: unknown, flags: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: [number]): number;
  getsockname(fd: number, addr: Buffer, len: [number]): number;
  getpeername(fd: number, addr: Buffer, len: [number]): number;
  /** An ioctl whose argument is an `int *` (SIOCOUTQ, FIONREAD). */
  ioctl(fd: number, request: number, value: [number]): number;
  /** Variadic: each argument after `cmd` as a koffi type name and its value ('int', 4). */
  fcntl(fd: number, cmd: number, ...typedArgs: unknown[]): number;
  pipe2(fds: Buffer, flags: number): number;
  eventfd(initval: number, flags: number): number;
  write(fd: number, buf: Buffer, len: number): number;
  splice(fdIn: number, offIn: null, fdOut: number, offOut: null, len: number, flags: number): number | bigint;
  epoll_create1(flags: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Buffer | null): number;
  epoll_wait(epfd: number, events: Buffer, max: number, timeout: number): number;
  mmap(addr: null, len: number, prot: number, flags: number, fd: number, offset: number): unknown;
  munmap(addr: unknown, len: number): number;
  sysconf(name: number): number | bigint;
  /** Variadic, as fcntl: syscall(SYS_PIDFD_OPEN, 'int', pid, 'uint', 0). */
  syscall(nr: number, ...typedArgs: unknown[]): number | bigint;
  getrusage(who: number, usage: Buffer): number;
  strerror(errnum: number): string;
}

let bound: Libc | undefined;

export function libc(): Libc {
  if (bound) return bound;
  const lib = koffi.load('libc.so.6');
  koffi.struct('lb_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  koffi.struct('lb_msghdr', {
    msg_name: 'void *', msg_namelen: 'uint32_t', msg_iov: 'lb_iovec *', msg_iovlen: 'size_t',
    msg_control: 'void *', msg_controllen: 'size_t', msg_flags: 'int',
  });
  const f = (prototype: string): unknown => lib.func(prototype);
  // Each prototype is the C declaration of the member it binds (the Libc interface types its JS side).
  const table: Record<keyof Libc, unknown> = {
    close: f('int close(int fd)'),
    dup: f('int dup(int fd)'),
    socket: f('int socket(int domain, int type, int protocol)'),
    bind: f('int bind(int fd, const void *addr, uint32_t len)'),
    listen: f('int listen(int fd, int backlog)'),
    connect: f('int connect(int fd, const void *addr, uint32_t len)'),
    accept4: f('int accept4(int fd, void *addr, void *len, int flags)'),
    shutdown: f('int shutdown(int fd, int how)'),
    send: f('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: f('long recv(int fd, void *buf, size_t len, int flags)'),
    sendmsg: f('long sendmsg(int fd, const lb_msghdr *msg, int flags)'),
    recvmsg: f('long recvmsg(int fd, _Inout_ lb_msghdr *msg, int flags)'),
    setsockopt: f('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
    getsockopt: f('int getsockopt(int fd, int level, int name, _Inout_ void *value, _Inout_ uint32_t *len)'),
    getsockname: f('int getsockname(int fd, _Out_ void *addr, _Inout_ uint32_t *len)'),
    getpeername: f('int getpeername(int fd, _Out_ void *addr, _Inout_ uint32_t *len)'),
    ioctl: f('int ioctl(int fd, unsigned long request, _Inout_ int *value)'),
    fcntl: f('int fcntl(int fd, int cmd, ...)'),
    pipe2: f('int pipe2(_Out_ void *fds, int flags)'),
    eventfd: f('int eventfd(unsigned int initval, int flags)'),
    write: f('long write(int fd, const void *buf, size_t len)'),
    splice: f('long splice(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)'),
    epoll_create1: f('int epoll_create1(int flags)'),
    epoll_ctl: f('int epoll_ctl(int epfd, int op, int fd, void *event)'),
    epoll_wait: f('int epoll_wait(int epfd, _Out_ void *events, int maxevents, int timeout)'),
    mmap: f('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    munmap: f('int munmap(void *addr, size_t len)'),
    sysconf: f('long sysconf(int name)'),
    syscall: f('long syscall(long nr, ...)'),
    getrusage: f('int getrusage(int who, _Out_ void *usage)'),
    strerror: f('const char *strerror(int errnum)'),
  };
  bound = table as Libc;
  return bound;
}

/** errno of the last libc call on this thread. */
export function errno(): number {
  return koffi.errno();
}

/** Throws "`what`: errno N" with the last call's errno. */
export function failed(what: string): never {
  throw new Error(`${what}: errno ${errno()}`);
}
