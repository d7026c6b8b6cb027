// The keeper of the acceptor's listening socket across daemon restarts. lb_sni_socks drops a socket
// when its last descriptor closes, and the kernel then answers the steered SYNs with a RST. So the
// first daemon to listen hands a copy of the descriptor to a process of its own: `sleep infinity`
// (run as argv0 "lb-acceptor-holder:<instance>", the socket as its fd 3), detached from the
// daemon's session. While no daemon runs, the socket stays listening and in the sockmap: the
// kernel completes the handshakes and queues them in the listen backlog. The next daemon takes
// the socket back with pidfd_open + pidfd_getfd (Linux 5.6; CAP_SYS_PTRACE, which root has) and
// accepts the queued connections. `lb down` ends the holder.
//
// The holder is named in /run/lb/<instance>/acceptor-holder.json with its start time, so a pid
// reused by another process is never taken for it.

import { spawn } from 'node:child_process';
import { fstatSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, runDir } from '../state/run-dir.js';
import { errno, libc } from '../sys/libc.js';

const HOLDER_FD = 3;
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;

/** A process this package started and named, recorded with its start time (holder, pair keeper). */
export interface HolderRecord { pid: number; start: string }

function syscall(nr: number, ...typedArgs: unknown[]): number {
  return Number(libc().syscall(nr, ...typedArgs));
}

function closeFd(fd: number): void {
  libc().close(fd);
}

export function holderArgv0(instance: string): string {
  return `lb-acceptor-holder:${instance}`;
}

function recordPath(instance: string): string {
  return join(runDir(instance), 'acceptor-holder.json');
}

/** A process's state letter and start time (clock ticks since boot: /proc/PID/stat fields 3 and 22), or undefined when it is gone. */
export function processStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, start: fields[19]! };
  } catch {
    return undefined;
  }
}

/** The process's start time, or undefined when it is gone. */
export function startTime(pid: number): string | undefined {
  return processStat(pid)?.start;
}

/** The recorded holder when that very process still runs as this instance's holder. */
function liveHolder(instance: string): HolderRecord | undefined {
  return liveRecord(recordPath(instance), holderArgv0(instance));
}

/** The process recorded in `file` when that very process (start time) still runs named `argv0`. */
export function liveRecord(file: string, argv0: string): HolderRecord | undefined {
  let rec: HolderRecord;
  try {
    rec = JSON.parse(readFileSync(file, 'utf8')) as HolderRecord;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(rec.pid) || rec.pid <= 1 || startTime(rec.pid) !== rec.start) return undefined;
  try {
    if (readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0')[0] !== argv0) return undefined;
  } catch {
    return undefined;
  }
  return rec;
}

/** Hands a copy of the listening socket to a new holder process. */
export function spawnHolder(instance: string, fd: number): number {
  const child = spawn('sleep', ['infinity'], { argv0: holderArgv0(instance), detached: true, stdio: ['ignore', 'ignore', 'ignore', fd] });
  child.unref();
  const pid = child.pid;
  const start = pid === undefined ? undefined : startTime(pid);
  if (pid === undefined || start === undefined) throw new Error('the acceptor socket holder (sleep) did not start');
  ensureDir(runDir(instance));
  writeFileSync(recordPath(instance), JSON.stringify({ pid, start } satisfies HolderRecord), { mode: 0o600 });
  return pid;
}

/** `ino`: the socket's inode, which tells it from a later file given the same descriptor number. */
export type TakeResult = { fd: number; pid: number; ino: number } | { fd: undefined; reason: string };

/** A descriptor of the socket the instance's holder keeps, or why there is none to take. */
export function takeFromHolder(instance: string): TakeResult {
  const rec = liveHolder(instance);
  if (!rec) return { fd: undefined, reason: 'no holder runs' };
  const pidfd = syscall(SYS_PIDFD_OPEN, 'int', rec.pid, 'uint', 0);
  if (pidfd < 0) return { fd: undefined, reason: `pidfd_open: errno ${errno()}` };
  try {
    // The pidfd pins the process: checked again, it cannot be a later process with the same pid.
    if (startTime(rec.pid) !== rec.start) return { fd: undefined, reason: 'the holder exited' };
    const fd = syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', HOLDER_FD, 'uint', 0);
    if (fd < 0) return { fd: undefined, reason: `pidfd_getfd: errno ${errno()}` };
    const st = fstatSync(fd);
    if (!st.isSocket()) {
      closeFd(fd);
      return { fd: undefined, reason: 'the holder\'s fd 3 is not a socket' };
    }
    return { fd, pid: rec.pid, ino: st.ino };
  } finally {
    closeFd(pidfd);
  }
}

/**
 * Closes a taken descriptor that a failed listen left open. Node closes it itself when listen(2)
 * fails, but not when it refuses the descriptor's type (a UDP socket, say): that one would leak.
 * Checked by inode, so a later file that reuses the number is never closed; false when already closed.
 */
export function dropTaken(t: { fd: number; ino: number }): boolean {
  try {
    const st = fstatSync(t.fd);
    if (!st.isSocket() || st.ino !== t.ino) return false;
  } catch {
    return false;
  }
  closeFd(t.fd);
  return true;
}

/** Ends the instance's holder (its socket closes, lb_sni_socks empties); false when none ran. */
export function endHolder(instance: string): boolean {
  const rec = liveHolder(instance);
  rmSync(recordPath(instance), { force: true });
  return endRecorded(rec);
}

/** Kills a recorded keeper process (liveRecord's answer); false when there was none to end. */
export function endRecorded(rec: HolderRecord | undefined): boolean {
  if (!rec) return false;
  try {
    process.kill(rec.pid, 'SIGKILL');
  } catch {
    return false;
  }
  return true;
}
