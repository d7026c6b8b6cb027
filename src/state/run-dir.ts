// The per-instance runtime directory /run/lb/<instance>: the apply inventory, the apply journal and
// the instance lock live there. /run is a tmpfs: like the pinned maps in bpffs, it is gone after a
// reboot, and so is everything it describes.

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { validateInstanceName } from '../dataplane/index.js';
import { LbError } from '../core/errors.js';

export const LB_RUN_ROOT = '/run/lb';

/** /run/lb/<instance> (not created). */
export function runDir(instance: string): string {
  return join(LB_RUN_ROOT, validateInstanceName(instance));
}

/**
 * Creates the directory (mode 0700) if needed and returns it. A directory that exists already is
 * repaired: mode 0700, and when running as root, owned by root. So are its ancestors up to `root`
 * (default /run/lb for a directory under it): whoever can write /run/lb could otherwise replace
 * the instance directory. A symlink or another file type in its place is refused, not followed.
 */
export function ensureDir(dir: string, opts: { root?: string } = {}): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = opts.root ?? (dir === LB_RUN_ROOT || dir.startsWith(`${LB_RUN_ROOT}/`) ? LB_RUN_ROOT : dir);
  for (let d = dir; ; d = dirname(d)) {
    repairDir(d);
    if (d === root || dirname(d) === d) break;
  }
  return dir;
}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** Mode 0700 and (as root) owner root, set through a descriptor so a swapped-in symlink cannot redirect it. */
function repairDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, DIR_FLAGS);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      throw new LbError('LB_STATE_RUNDIR', `${dir} is not a directory (a symlink or another file type is in its place); lb does not use it. Remove it and start again.`, { dir }, { cause: err });
    }
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const uid = process.geteuid?.();
    const gid = process.getegid?.();
    if (uid === 0 && gid !== undefined && (st.uid !== uid || st.gid !== gid)) fchownSync(fd, uid, gid);
    if ((st.mode & 0o7777) !== 0o700) fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

/** fsync of a directory: makes a rename or unlink in it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Create a new file, never open an existing one, never through a symlink. */
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const TEMP_NAME_TRIES = 8;

/**
 * Writes a file so that readers (and a crash at any instant) see either the old content or the
 * new, never a part: write a temporary file beside it, fsync it, rename it over the target, fsync
 * the directory. The temporary file has a random name and is created exclusively: in a directory
 * others can write (`lb plan --out /tmp/...`), a file or symlink planted at a guessed name makes
 * the open fail (and another name is tried); it never redirects the write. The rename replaces the
 * target's directory entry, so a symlink at the target itself is replaced, not followed.
 * `durable: false` leaves out both fsyncs (still all or nothing for readers and a process crash):
 * for files that need not survive a host crash.
 */
export function writeFileAtomic(path: string, content: string | Uint8Array, opts: { durable?: boolean } = {}): void {
  const durable = opts.durable ?? true;
  const dir = join(path, '..');
  let tmp = '';
  let fd: number | undefined;
  for (let attempt = 1; fd === undefined; attempt++) {
    tmp = `${path}.tmp-${randomBytes(12).toString('hex')}`;
    try {
      fd = openSync(tmp, TEMP_FLAGS, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= TEMP_NAME_TRIES) throw err;
    }
  }
  try {
    if (typeof content === 'string') writeSync(fd, content);
    else for (let off = 0; off < content.length;) off += writeSync(fd, content, off); // a short write continues
    if (durable) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (durable) fsyncDir(dir);
}

