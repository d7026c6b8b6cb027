// Entering a named network namespace (/run/netns/NAME, as `ip netns add` creates) from this
// process, for in-process work that must happen inside it: loading and attaching BPF programs
// through koffi, reading interface indexes, BPF_PROG_TEST_RUN against a namespace's devices.
//
// setns(2) switches the network namespace of the calling thread only. koffi's synchronous calls
// run on Node's main thread, so `withNetns(name, () => dp.attach('veth-c1'))` makes libbpf's
// netlink sockets, if_nametoindex and bpf_fib_lookup in test runs see that namespace. The
// callback must be synchronous: while it runs the event loop cannot, so nothing else (a child
// process spawned by another task, a socket opened by a timer) can start in the wrong namespace.
// The thread always comes back to the namespace it was in, also when the callback throws.
//
// The mount namespace is untouched (unlike `ip netns exec`), so /sys/fs/bpf stays the host's
// bpffs and pins made inside are ordinary pins.

import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { SandboxError } from './process.js';

const CLONE_NEWNET = 0x40000000;
const NAME_RE = /^[A-Za-z0-9][\w.-]{0,63}$/;

let setnsFn: ((fd: number, nstype: number) => number) | undefined;

function setns(fd: number, what: string): void {
  setnsFn ??= koffi.load('libc.so.6').func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
  if (setnsFn(fd, CLONE_NEWNET) !== 0) {
    const errno = koffi.errno();
    throw new SandboxError(`setns(${what}) failed: errno ${errno}`, { errno, what });
  }
}

/** Path of a named network namespace. */
export function netnsPath(name: string): string {
  if (!NAME_RE.test(name)) throw new SandboxError(`invalid network namespace name ${JSON.stringify(name)}`, { name });
  return `/run/netns/${name}`;
}

/**
 * Moves the calling thread into network namespace `name` and returns the function that moves it
 * back (idempotent). Prefer withNetns(), which cannot forget to come back.
 */
export function enterNetns(name: string): () => void {
  const home = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(netnsPath(name), 'r');
  } catch (err) {
    closeSync(home);
    throw new SandboxError(`no network namespace ${name}: ${(err as Error).message}`, { name }, { cause: err });
  }
  try {
    setns(target, name);
  } catch (err) {
    closeSync(home);
    throw err;
  } finally {
    closeSync(target);
  }
  let back = false;
  return () => {
    if (back) return;
    back = true;
    try {
      setns(home, 'the original network namespace');
    } finally {
      closeSync(home);
    }
  };
}

/**
 * Runs `fn` with the calling thread inside network namespace `name`, then returns to the original
 * namespace whatever happens. `fn` must be synchronous; a returned promise is refused (after
 * coming back) because its continuation would run outside the namespace.
 */
export function withNetns<T>(name: string, fn: () => T): T {
  const leave = enterNetns(name);
  let result: T;
  try {
    result = fn();
  } finally {
    leave();
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new SandboxError('withNetns needs a synchronous callback (it returned a promise)', { name });
  }
  return result;
}
