// The native front door's process (native/lb_door.c, built to build/native/lb-door): one per
// instance, named lb-acceptor-holder:<instance>:door and recorded in /run/lb/<instance>/door.json
// (pid and start time, like the socket holder: holder.ts), its control socket at
// /run/lb/<instance>/door.sock, its stderr appended to /run/lb/<instance>/door.log. It outlives
// the daemon: its relays go on, and the next daemon connects to it again (door-acceptor.ts).
// `lb down` ends it.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import { ensureDir, runDir } from '../state/run-dir.js';
import { failed as fail, libc } from '../sys/libc.js';
import { endRecorded, liveRecord, processStat, startTime, type HolderRecord } from './holder.js';
import { closeFd, listenUnixStream } from './unix-fds.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
/** The acceptor's backlog: steered handshakes queue here while nothing accepts (a restart). */
const BACKLOG = 4096;

export function doorArgv0(instance: string): string {
  return `lb-acceptor-holder:${instance}:door`;
}

const recordPath = (instance: string): string => join(runDir(instance), 'door.json');
export const doorSocketPath = (instance: string): string => join(runDir(instance), 'door.sock');
export const doorLogPath = (instance: string): string => join(runDir(instance), 'door.log');

/** Where the built door is (make build). */
export function doorBinary(): string {
  return join(packageRoot(), 'build', 'native', 'lb-door');
}

/** The instance's door when that very process still runs. */
export function liveDoor(instance: string): HolderRecord | undefined {
  return liveRecord(recordPath(instance), doorArgv0(instance));
}

/**
 * A TCP socket listening on 127.0.0.1 at an ephemeral port: what lb_sk_lookup steers to (nothing
 * connects to it directly). `opts` for tests: another backlog, a non-blocking socket.
 */
export function listenLoopback(opts: { backlog?: number; nonBlocking?: boolean } = {}): number {
  const fd = libc().socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (opts.nonBlocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) fail('socket(AF_INET)');
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  libc().setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
  // struct sockaddr_in: family, port 0 (network order), 127.0.0.1.
  const addr = Buffer.from([AF_INET, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (libc().bind(fd, addr, addr.length) !== 0 || libc().listen(fd, opts.backlog ?? BACKLOG) !== 0) {
    closeFd(fd);
    fail('bind/listen 127.0.0.1:0');
  }
  return fd;
}

/** Starts the instance's door on the listening socket `listenFd` (it gets its own copy) and records it. */
export function spawnDoor(instance: string, listenFd: number, binary = doorBinary()): HolderRecord {
  if (!existsSync(binary)) throw new Error(`the native front door is not built: ${binary} (make build)`);
  ensureDir(runDir(instance));
  rmSync(doorSocketPath(instance), { force: true });
  const control = listenUnixStream(doorSocketPath(instance));
  const log = openSync(doorLogPath(instance), 'a', 0o600);
  try {
    const child = spawn(binary, ['--listen-fd', '3', '--control-fd', '4'], {
      argv0: doorArgv0(instance), detached: true, stdio: ['ignore', 'ignore', log, listenFd, control],
    });
    child.unref();
    const start = child.pid === undefined ? undefined : startTime(child.pid);
    if (child.pid === undefined || start === undefined) throw new Error('the native front door did not start');
    const rec = { pid: child.pid, start };
    writeFileSync(recordPath(instance), JSON.stringify(rec), { mode: 0o600 });
    return rec;
  } finally {
    // The door has its own copies; the control socket queues the daemon's connect until it accepts.
    closeFd(control);
    closeSync(log);
  }
}

/** A connection to the instance's door's control socket. */
export function connectDoor(instance: string, timeoutMs = 2000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: doorSocketPath(instance) });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`the native front door did not answer within ${timeoutMs} ms`)); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.off('error', onError); resolve(s); });
    const onError = (err: Error): void => { clearTimeout(timer); reject(err); };
    s.once('error', onError);
  });
}

/** How long `lb down` gives the door to reset its relays (SIGTERM) before it is killed. */
const STOP_WAIT_MS = 2000;

/**
 * Ends the instance's door; false when none ran. SIGTERM first: the door resets the pairs it
 * relays (a process that dies closes its sockets with a FIN each: a cut stream would look whole),
 * SIGKILL after STOP_WAIT_MS.
 */
export function endDoor(instance: string): boolean {
  const rec = liveDoor(instance);
  rmSync(recordPath(instance), { force: true });
  rmSync(doorSocketPath(instance), { force: true });
  if (!rec) return false;
  try {
    process.kill(rec.pid, 'SIGTERM');
  } catch {
    return false;
  }
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < STOP_WAIT_MS && running(rec); waited += 20) Atomics.wait(pause, 0, 0, 20);
  if (running(rec)) endRecorded(rec);
  return true;
}

/** The recorded process runs (an exited one waiting for its parent to reap it does not: this wait blocks the parent when it is this process). */
function running(rec: HolderRecord): boolean {
  const stat = processStat(rec.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.start === rec.start;
}
