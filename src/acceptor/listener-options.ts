// Socket options the accepted connections inherit from the acceptor's listening socket, set once
// on it instead of once per connection: Linux copies a listener's TCP_NODELAY into every socket
// it accepts (the child is a clone of the listener's sock), so Node's per-connection
// setNoDelay (a system call for each client) can be turned off.

import { libc } from '../sys/libc.js';

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;

/** TCP_NODELAY on the listening socket `fd`; false when the kernel refused (the caller then sets it per connection). */
export function inheritNoDelay(fd: number): boolean {
  try {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    return libc().setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4) === 0;
  } catch {
    return false;
  }
}
