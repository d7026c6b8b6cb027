// Socket options the accepted connections inherit from the acceptor's listening socket, set once
// on it instead of once per connection: Linux copies a listener's TCP_NODELAY into every socket
// it accepts (the child is a clone of the listener's sock), so Node's per-connection
// setNoDelay (a system call for each client) can be turned off.

import koffi from 'koffi';

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

type SetSockOpt = (fd: number, level: number, name: number, value: Buffer, len: number) => number;
let setsockopt: SetSockOpt | undefined;

/** TCP_NODELAY on the listening socket `fd`; false when the kernel refused (the caller then sets it per connection). */
export function inheritNoDelay(fd: number): boolean {
  try {
    setsockopt ??= koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)') as SetSockOpt;
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4) === 0;
  } catch {
    return false;
  }
}
