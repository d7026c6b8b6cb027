// The instance lock, /run/lb/<instance>/lock: one lb process at a time may recover, plan against
// or apply to an instance. Without it, a `lb plan` started during an apply would take the running
// apply's journal for a leftover and "recover" it under the apply's feet.
//
// flock(2), not a pid file: the kernel drops the lock when its holder dies, SIGKILL included, so a
// crashed apply never leaves a lock behind that needs guessing about. The pid written into the
// file is only for the error message.

import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { LbError } from '../core/errors.js';
import { ensureDir } from '../state/run-dir.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

let flockFn: ((fd: number, op: number) => number) | undefined;
function flock(fd: number, op: number): number {
  flockFn ??= koffi.load('libc.so.6').func('int flock(int fd, int operation)') as (fd: number, op: number) => number;
  return flockFn(fd, op);
}

export interface InstanceLock {
  readonly path: string;
  release(): void;
}

/** Takes the instance lock without waiting; LB_APPLY_LOCKED names the holder when it is taken. */
export function acquireLock(dir: string, instance: string): InstanceLock {
  const path = join(ensureDir(dir), 'lock');
  const fd = openSync(path, 'a+', 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    closeSync(fd);
    let holder = '';
    try {
      holder = readFileSync(path, 'utf8').trim();
    } catch {
      // gone meanwhile: the message just lacks the pid
    }
    throw new LbError('LB_APPLY_LOCKED',
      `instance ${instance} is locked by another lb process${holder ? ` (${holder})` : ''}: an apply, plan or recovery is in progress; try again when it has finished`,
      { instance, path, holder });
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `pid ${process.pid}\n`);
  let held = true;
  return {
    path,
    release(): void {
      if (!held) return;
      held = false;
      flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}
